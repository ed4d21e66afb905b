"""`train_loop_per_worker`: the per-worker body of server pre-training (DESIGN rule 8).

Trains the downstream model on synthetic samples (GPT-FL section 3.3) and evaluates it on the
real validation and test sets every epoch; the "best" epoch is the best on validation (the
test columns are only reported; without a validation split the last epoch is the best). Under Ray Train it uses `prepare_model`/`prepare_data_loader`
(DDP and a distributed sampler when there are several workers, device placement on GPUs) and
reports each epoch with a checkpoint; with `in_ray=False` the same body runs in-process.
Each checkpoint carries `last.safetensors`, `best.safetensors` and `history.json`, so the final
checkpoint alone holds everything the driver saves.
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
from gptfl_ray.models.io import save_model_file
from gptfl_ray.models.params import set_flat
from gptfl_ray.pretrain.augment import augment_batch


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def train_loop_per_worker(config: dict) -> None:
    in_ray = config.get("in_ray", True)
    if in_ray:
        import ray
        import ray.train
        import ray.train.torch

        data = ray.get(config["data"])
        rank = ray.train.get_context().get_world_rank()
    else:
        data, rank = config["data"], 0
    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    torch.manual_seed(config["seed"])
    model = config["model_fn"]()
    if config.get("init_params") is not None:  # e.g. ImageNet weights (paper Table 5)
        set_flat(model, config["init_params"])
    if in_ray:
        model = ray.train.torch.prepare_model(model)
    device = next(model.parameters()).device

    # object-store arrays are read-only views; torch wants tensors it may write
    x, y = torch.tensor(data["x"]), torch.tensor(data["y"])
    x_test = torch.tensor(data["x_test"]).to(device)
    y_test = torch.tensor(data["y_test"]).to(device)
    x_val = torch.tensor(data["x_val"]).to(device) if len(data.get("y_val", ())) else None
    y_val = torch.tensor(data["y_val"]).to(device) if x_val is not None else None
    gen = torch.Generator().manual_seed(config["seed"])
    loader = DataLoader(TensorDataset(x, y), batch_size=config["batch_size"], shuffle=True, generator=gen, drop_last=len(y) > config["batch_size"])
    if in_ray:
        loader = ray.train.torch.prepare_data_loader(loader)
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"], weight_decay=config["weight_decay"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config["epochs"])
    aug_gen = torch.Generator().manual_seed(config["seed"] + 1)

    history, best_val = [], -1.0
    with tempfile.TemporaryDirectory() as keep:
        best_path = os.path.join(keep, "best.safetensors")
        for epoch in range(1, config["epochs"] + 1):
            if in_ray and hasattr(loader, "sampler") and hasattr(loader.sampler, "set_epoch"):
                loader.sampler.set_epoch(epoch)
            model.train()
            loss_sum, seen = 0.0, 0
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                if config["augment"]:
                    xb = augment_batch(xb.cpu(), config["dataset"], config["modality"], aug_gen).to(device)
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                loss_sum += float(loss.detach()) * len(yb)
                seen += len(yb)
            sched.step()
            ev = evaluate(_unwrap(model), None, x_test, y_test)
            if x_val is not None:
                ev.update({f"val_{k}": v for k, v in evaluate(_unwrap(model), None, x_val, y_val).items()})
            row = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), **ev}
            history.append(row)
            if rank != 0:
                if in_ray:
                    ray.train.report(row)
                continue
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
            if in_ray:
                ray.train.report(row, checkpoint=ray.train.Checkpoint.from_directory(ckpt_dir))
            else:
                config["report"](row, ckpt_dir)


def numpy_payload(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                  x_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> dict:
    out = {
        "x": np.ascontiguousarray(x, dtype=np.float32),
        "y": np.ascontiguousarray(y, dtype=np.int64),
        "x_test": np.ascontiguousarray(x_test, dtype=np.float32),
        "y_test": np.ascontiguousarray(y_test, dtype=np.int64),
    }
    if y_val is not None and len(y_val):
        out["x_val"] = np.ascontiguousarray(x_val, dtype=np.float32)
        out["y_val"] = np.ascontiguousarray(y_val, dtype=np.int64)
    return out
