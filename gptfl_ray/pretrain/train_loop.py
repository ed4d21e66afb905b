"""`train_loop_per_worker`: the per-worker body of server pre-training (docs/architecture.md rule 8).

Trains the downstream model on synthetic samples (GPT-FL section 3.3) and evaluates it on the
real validation and test sets every epoch, on rank 0 only; the "best" epoch is the best on
validation (the test columns are only reported; without a validation split the last epoch is
the best).

Input: under Ray Train the synthetic set arrives as the "train" dataset shard
(`get_dataset_shard("train").iter_torch_batches()`, decoded and prepared in Ray Data, see
ingest.py), shuffled per epoch from (seed, epoch); `prepare_model` wraps DDP when there are
several workers. In-process (`in_ray=False`, or an in-memory payload) the same body trains on
tensors with a seeded DataLoader.

Each epoch's checkpoint carries `last.safetensors`, `best.safetensors`, `history.json` and
`state.pt` (optimizer, scheduler, best score): the last checkpoint alone resumes training at the
next epoch, and every random draw of an epoch derives from (seed, epoch), so a resumed run ends
on the weights of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from gptfl_ray.fl.metrics import evaluate
from gptfl_ray.models.io import load_model_file, save_model_file
from gptfl_ray.models.params import set_flat
from gptfl_ray.pretrain.augment import augment_batch

LOCAL_SHUFFLE_ROWS = 4096  # Ray Data's per-worker shuffle buffer (blocks are also visited in random order)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 101 + stream) & 0x7FFFFFFF


def _batches(config: dict, epoch: int, device, data: dict | None, shard):
    """(x, y) batches of one epoch: from the in-memory tensors or the Ray Data shard."""
    bs = config["batch_size"]
    if data is not None:
        x, y = data["x_t"], data["y_t"]
        gen = torch.Generator().manual_seed(epoch_seed(config["seed"], epoch, 0))
        loader = DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=True, generator=gen, drop_last=len(y) > bs)
        for xb, yb in loader:
            yield xb.to(device), yb.to(device)
        return
    n = config["num_rows"]
    for batch in shard.iter_torch_batches(
        batch_size=bs,
        drop_last=n > bs * config.get("world_size", 1),
        local_shuffle_buffer_size=min(LOCAL_SHUFFLE_ROWS, max(bs, n)),
        local_shuffle_seed=epoch_seed(config["seed"], epoch, 0),
        device=device,
    ):
        yield batch["x"], batch["y"]


def _restore(ckpt_dir: str, model, opt, sched) -> tuple[int, list[dict], float, bytes]:
    load_model_file(_unwrap(model), os.path.join(ckpt_dir, "last.safetensors"))
    state = torch.load(os.path.join(ckpt_dir, "state.pt"), map_location="cpu", weights_only=False)
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    with open(os.path.join(ckpt_dir, "history.json")) as fh:
        history = json.load(fh)
    with open(os.path.join(ckpt_dir, "best.safetensors"), "rb") as fh:
        best = fh.read()
    return int(state["epoch"]), history, float(state["best_val"]), best


def train_loop_per_worker(config: dict) -> None:
    in_ray = config.get("in_ray", True)
    shard, data = None, config.get("data")
    if in_ray:
        import ray
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        rank = ctx.get_world_rank()
        config = {**config, "world_size": ctx.get_world_size()}
        if data is None:
            shard = ray.train.get_dataset_shard("train")
        else:
            data = ray.get(data)
        # Only rank 0 evaluates: only rank 0 fetches the real validation and test sets.
        held_out = ray.get(config["eval"]) if rank == 0 else None
        resume = ray.train.get_checkpoint()
    else:
        rank, held_out = 0, config["eval"]
        resume = config.get("resume")
    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    torch.manual_seed(config["seed"])
    model = config["model_fn"]()
    if config.get("init_params") is not None:  # e.g. ImageNet weights (paper Table 5)
        set_flat(model, config["init_params"])
    if in_ray:
        model = ray.train.torch.prepare_model(model)
    device = next(model.parameters()).device
    if data is not None:  # object-store arrays are read-only views; torch wants tensors it may write
        data = {"x_t": torch.tensor(data["x"]), "y_t": torch.tensor(data["y"])}
    if held_out is not None:
        held_out = {k: torch.tensor(v).to(device) for k, v in held_out.items()}
    opt = torch.optim.SGD(
        model.parameters(), lr=config["lr"], momentum=config["momentum"], weight_decay=config["weight_decay"]
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config["epochs"])

    history, best_val, start = [], -1.0, 1
    with tempfile.TemporaryDirectory() as keep:
        best_path = os.path.join(keep, "best.safetensors")
        if resume is not None:
            with resume.as_directory() if hasattr(resume, "as_directory") else _plain_dir(resume) as d:
                done, history, best_val, best_bytes = _restore(d, model, opt, sched)
            with open(best_path, "wb") as fh:
                fh.write(best_bytes)
            start = done + 1
        # `epoch_budget` cuts training into calls (each resumes the last): a stop at a known epoch.
        budget = config.get("epoch_budget") or config["epochs"]
        for epoch in range(start, min(config["epochs"], start - 1 + budget) + 1):
            model.train()
            aug_gen = torch.Generator().manual_seed(epoch_seed(config["seed"], epoch, 1))
            loss_sum, seen = 0.0, 0
            for xb, yb in _batches(config, epoch, device, data, shard):
                if config["augment"]:
                    xb = augment_batch(xb.cpu(), config["dataset"], config["modality"], aug_gen).to(device)
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                loss_sum += float(loss.detach()) * len(yb)
                seen += len(yb)
            sched.step()
            if rank != 0:
                ray.train.report({"epoch": epoch})  # every worker reports; rank 0 carries the checkpoint
                continue
            ev = evaluate(_unwrap(model), None, held_out["x_test"], held_out["y_test"])
            if "x_val" in held_out:
                ev.update(
                    {
                        f"val_{k}": v
                        for k, v in evaluate(_unwrap(model), None, held_out["x_val"], held_out["y_val"]).items()
                    }
                )
            row = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), **ev}
            history.append(row)
            score = ev.get("val_accuracy", float(epoch))  # selection reads validation only
            if score > best_val:
                best_val = score
                save_model_file(_unwrap(model), None, best_path)
            ckpt_dir = tempfile.mkdtemp(dir=keep)
            save_model_file(_unwrap(model), None, os.path.join(ckpt_dir, "last.safetensors"))
            with open(best_path, "rb") as src, open(os.path.join(ckpt_dir, "best.safetensors"), "wb") as dst:
                dst.write(src.read())
            with open(os.path.join(ckpt_dir, "history.json"), "w") as fh:
                json.dump(history, fh)
            torch.save(
                {"epoch": epoch, "opt": opt.state_dict(), "sched": sched.state_dict(), "best_val": best_val},
                os.path.join(ckpt_dir, "state.pt"),
            )
            if in_ray:
                ray.train.report(row, checkpoint=ray.train.Checkpoint.from_directory(ckpt_dir))
            else:
                config["report"](row, ckpt_dir)


class _plain_dir:
    """A directory path used like `Checkpoint.as_directory()` (the in-process resume)."""

    def __init__(self, path):
        self.path = str(path)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        return False


def eval_payload(
    x_test: np.ndarray, y_test: np.ndarray, x_val: np.ndarray | None = None, y_val: np.ndarray | None = None
) -> dict:
    out = {
        "x_test": np.ascontiguousarray(x_test, dtype=np.float32),
        "y_test": np.ascontiguousarray(y_test, dtype=np.int64),
    }
    if y_val is not None and len(y_val):
        out["x_val"] = np.ascontiguousarray(x_val, dtype=np.float32)
        out["y_val"] = np.ascontiguousarray(y_val, dtype=np.int64)
    return out
