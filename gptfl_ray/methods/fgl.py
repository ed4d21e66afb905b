"""FGL: Federated Generative Learning (Zhang, Qi, Zhao: "Federated Generative Learning with
Foundation Models", Figure 2 and Algorithm 1), composed from the same stages as GPT-FL.

    clients: local data -> prompts (class- or instance-level)  --upload-->  server
    server:  all prompts -> synthetic data (GPT-FL's synth pipeline and generator)
             -> central training of the global model ("FGL one-shot", one communication round)
             -> optionally more FedAvg rounds from it, each followed by server fine-tuning on
                the synthetic data (FGL's multi-round variant for highly skewed data)

Prompts are built on the clients (methods/client_prompts.py: a plain loop for `--backend
local`, an actor pool for `--backend ray`) and only their text reaches the server, which scales
the clients' requested counts to the synthetic budget (`--per-class`/`--scale`, the same budget
GPT-FL gets), writes `<run>/fgl/prompts/` (the uploads and the server's prompt rows) and
`<run>/fgl/synthetic/` (Parquet shards, as `<run>/synthetic/` for GPT-FL), trains into
`<run>/fgl/model/`, and federates into `<run>/fgl/federate/`.

Communication accounting (float32 models of P weights, N clients):

- `fgl` (one-shot): every client uploads its prompts once (the UTF-8 JSON byte length of each
  upload, summed) and the trained model is deployed to every client once (N * 4P bytes): round 1
  costs `prompt bytes + N * 4P`. FGL's one communication round is exactly this exchange.
- `fgl_rounds`: the prompts go up once; then each FedAvg round costs what it costs `fedavg`
  (the model down to each sampled client, one update up from each that finished). The one-shot
  model reaches the clients with the first FedAvg round's download, so it is not deployed to all
  N separately, and, as for `fedavg`, the final model's deployment is not counted. Server
  fine-tuning moves no bytes. Round 1 is the one-shot model (prompt bytes only), round 1 + r is
  FedAvg round r.

Both report the prompt bytes beside the model bytes in summary.json (`prompt_upload_bytes`,
`model_download_bytes`, `model_update_bytes`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gptfl_ray.config import check_resumable
from gptfl_ray.data.base import Dataset
from gptfl_ray.fl.loop import run_federation
from gptfl_ray.fl.pool import EnginePool
from gptfl_ray.methods.client_prompts import ClientUpload, build_uploads, prompt_spec
from gptfl_ray.methods.simulate import SimContext, SimulateConfig, Variant, register_variant
from gptfl_ray.methods.stages import Progress, StageFn, ensure_pretrained, initial_params, preflight_generator
from gptfl_ray.methods.task import Task
from gptfl_ray.models.factory import ModelFactory
from gptfl_ray.models.params import params_sha256
from gptfl_ray.pretrain.config import PretrainConfig
from gptfl_ray.report import variant_summary
from gptfl_ray.runio import (
    atomic_write_text,
    drop_config_section,
    plain,
    read_config,
    same_section,
    write_config_section,
)
from gptfl_ray.seeding import derive_seed, row_rng

FGL_DIR = "fgl"
UPLOADS_FILE = "uploads.jsonl"
_SALT_ROWS, _SALT_FINETUNE, _SALT_APPORTION = 0xF62, 0xF63, 0xF64


# ------------------------------------------------------------------------------ server side


def apportion(weights: list[int] | np.ndarray, total: int, seed: int = 0) -> np.ndarray:
    """Integers proportional to `weights` that sum to exactly `total` (largest remainder).

    Ties among equal remainders (every instance prompt weighs 1) go to a seeded random order,
    not to the first clients, so no client's prompts are favoured by its id.
    """
    w = np.asarray(weights, np.float64)
    if len(w) == 0 or total <= 0 or w.sum() <= 0:
        return np.zeros(len(w), np.int64)
    quota = w * (total / w.sum())
    base = np.floor(quota).astype(np.int64)
    left = int(total - base.sum())
    if left:
        tiebreak = np.random.default_rng(derive_seed(seed, _SALT_APPORTION)).permutation(len(w))
        order = np.lexsort((tiebreak, -(quota - base)))  # largest remainder first
        base[order[:left]] += 1
    return base


def server_prompt_rows(
    uploads: list[ClientUpload],
    dataset: Dataset,
    per_class: int,
    seed: int,
    guidance: tuple = (1.0, 5.0, "integer", 0.5),
    style_words: bool = True,
) -> list[dict]:
    """The server's generation rows from every client's prompts.

    The budget is `per_class` samples for each class some client holds (GPT-FL's budget). Each
    uploaded prompt gets a share in proportion to its count (class prompts) or one share each
    (instance prompts). Rows carry the synth pipeline's columns: label, label_name, prompt,
    guidance (drawn as the prompts stage draws it: `synth.prompts.draw_guidance`), seed, style.
    """
    from gptfl_ray.synth.prompts import draw_guidance, prompt_kind, style_suffix

    index = {name: i for i, name in enumerate(dataset.class_names)}
    entries: list[tuple[int, dict]] = []
    for up in uploads:
        for p in up.prompts:
            if p["label"] not in index:
                raise ValueError(
                    f"client {up.client_id} sent a prompt for {p['label']!r}, not a class of {dataset.name}"
                )
            entries.append((up.client_id, p))
    classes = {p["label"] for _, p in entries}
    shares = apportion([int(p.get("count", 1)) for _, p in entries], per_class * len(classes), seed)
    # Class prompts are one template per class: style words are the server's diversity device,
    # as for GPT-FL. Instance prompts already carry a description of a real sample.
    words = style_words and prompt_kind(dataset) in ("digits", "image") and all(u.style == "class" for u in uploads)
    rows: list[dict] = []
    for (_cid, p), k in zip(entries, shares):
        for _ in range(int(k)):
            s = derive_seed(seed, len(rows), _SALT_ROWS)
            rng = row_rng(s)
            rows.append(
                {
                    "label": index[p["label"]],
                    "label_name": p["label"],
                    "prompt": p["prompt"] + style_suffix(rng, words),
                    "guidance": draw_guidance(rng, *guidance),
                    "seed": s,
                    "style": f"fgl-{uploads[0].style}" if uploads else "fgl",
                }
            )
    return rows


# ------------------------------------------------------------------------------ stages


def fgl_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / FGL_DIR


def preflight_fgl(cfg: SimulateConfig, task: Task) -> None:
    """What can fail on user input, before any stage runs: prompt style, captioner, generator."""
    from gptfl_ray.synth.hub import check_model_ref

    prompt_spec(task.dataset, cfg.fgl.prompts, cfg.prompts.seed, cfg.fgl.captioner)
    if cfg.fgl.prompts == "instance" and cfg.fgl.captioner is not None:
        check_model_ref(cfg.fgl.captioner, option="fgl.captioner")
    preflight_generator(cfg, task)


def client_uploads(
    cfg: SimulateConfig, task: Task, run_dir: Path, progress: Progress | None = None
) -> list[ClientUpload]:
    """Every client's upload, built on the clients; reused from `<run>/fgl/prompts/uploads.jsonl`
    when the same prompt settings and client split made it."""
    ds, fgl = task.dataset, cfg.fgl
    out = fgl_dir(run_dir)
    path = out / "prompts" / UPLOADS_FILE
    key = {
        "style": fgl.prompts,
        "captioner": fgl.captioner,
        "caption_size": fgl.caption_size,
        "caption_tokens": fgl.caption_tokens,
        "seed": cfg.prompts.seed,
        "data": cfg.federate.data,
        "split_seed": cfg.federate.fl.seed,
        "parts_sha256": _parts_sha(task.parts),
    }
    if path.is_file() and same_section(out, "uploads_key", key):
        rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
        uploads = [ClientUpload(int(r["client"]), str(r["body"]["style"]), list(r["body"]["prompts"])) for r in rows]
        if progress:
            progress(len(uploads))
        return uploads
    spec = prompt_spec(
        ds,
        fgl.prompts,
        cfg.prompts.seed,
        fgl.captioner,
        caption_size=fgl.caption_size,
        caption_tokens=fgl.caption_tokens,
        caption_batch=fgl.caption_batch,
    )
    eng = cfg.federate.engine
    uploads = build_uploads(
        spec,
        ds.x_train,
        ds.y_train,
        task.parts,
        backend=eng.backend,
        num_actors=eng.num_actors,
        client_cpus=eng.client_cpus,
        client_gpus=eng.client_gpus,
        on_client=progress,
    )
    # What each client put on the wire, byte for byte, with its length beside it. The old key
    # goes first: a kill before the new key is written leaves uploads no key vouches for.
    drop_config_section(out, "uploads_key")
    atomic_write_text(
        path,
        "".join(
            json.dumps({"client": u.client_id, "bytes": u.nbytes, "body": u.body()}, ensure_ascii=False) + "\n"
            for u in uploads
        ),
    )
    write_config_section(out, "uploads_key", key)
    return uploads


def _parts_sha(parts: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(np.asarray(p, np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


def synthesize(
    cfg: SimulateConfig, dataset: Dataset, rows: list[dict], run_dir: Path, progress: Progress | None = None
) -> dict:
    """GPT-FL's generation stage over the server's FGL rows, into `<run>/fgl/synthetic/`."""
    from gptfl_ray.synth import pipeline, store
    from gptfl_ray.synth import prompts as prompts_mod
    from gptfl_ray.synth.format import TargetFormat

    out = fgl_dir(run_dir)
    prompts_mod.write_prompts(out, rows)
    target = TargetFormat.from_dataset(dataset)
    plan = pipeline.make_plan(pipeline.plan_rows(rows, cfg.generate.seed), target, dataset.class_names, cfg.generate)
    try:
        stale = store.read_manifest(out).get("plan_sha256") != plan["plan_sha256"]
    except Exception:  # noqa: BLE001 - missing or unreadable: nothing worth keeping
        stale = True
    if stale:
        shutil.rmtree(store.synth_dir(out), ignore_errors=True)  # simulate owns <run>/fgl
    return pipeline.generate_with_progress(rows, target, dataset.class_names, cfg.generate, out, progress)


@dataclass
class OneShot:
    params: np.ndarray
    init_eval: dict
    eval: dict
    uploads: list[ClientUpload]
    synthetic_rows: int
    synthetic_sha: str


def one_shot(cfg: SimulateConfig, task: Task, factory: ModelFactory, run_dir: str | Path, stage: StageFn) -> OneShot:
    """Client prompts -> server synthesis -> central training; every step reused when unchanged."""
    from gptfl_ray.fl.metrics import HeldOut
    from gptfl_ray.synth.config import per_class_count

    run_dir = Path(run_dir)
    ds, out = task.dataset, fgl_dir(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    uploads = client_uploads(cfg, task, run_dir, stage("fgl prompt", len(task.parts)))
    gen, pr = cfg.generate, cfg.prompts
    per_class = per_class_count(
        gen.per_class if gen.per_class is not None else pr.per_class,
        gen.scale if gen.scale is not None else pr.scale,
        len(ds.x_train),
        ds.num_classes,
    )
    rows = server_prompt_rows(
        uploads,
        ds,
        per_class,
        pr.seed,
        (pr.guidance_min, pr.guidance_max, pr.guidance_draw, pr.guidance_grid),
        pr.style_words,
    )
    manifest = synthesize(cfg, ds, rows, run_dir, stage("fgl synth"))

    init = initial_params(cfg, factory)
    params = ensure_pretrained(
        cfg,
        factory,
        task,
        out,
        out / "model",
        manifest.get("sha256", ""),
        stage("fgl train", cfg.pretrain.epochs),
        init,
    )
    held_out = HeldOut(ds)
    return OneShot(
        params=params,
        init_eval=held_out(factory(), init),
        eval=held_out(factory(), params),
        uploads=uploads,
        synthetic_rows=int(manifest.get("total_rows", len(rows))),
        synthetic_sha=manifest.get("sha256", ""),
    )


def _upload_stats(uploads: list[ClientUpload]) -> dict:
    sizes = [u.nbytes for u in uploads]
    return {
        "prompt_style": uploads[0].style if uploads else None,
        "prompt_upload_bytes": int(sum(sizes)),
        "prompt_upload_bytes_per_client_mean": float(np.mean(sizes)) if sizes else 0.0,
        "prompt_upload_bytes_per_client_max": int(max(sizes)) if sizes else 0,
        "prompts_uploaded": int(sum(len(u.prompts) for u in uploads)),
    }


def run_fgl_variants(ctx: SimContext) -> dict[str, dict]:
    """`fgl` (one-shot) and, with --fgl-rounds > 0, `fgl_rounds`, sharing one one-shot model."""
    cfg, task = ctx.cfg, ctx.task
    # The one-shot stage generates with Ray Data and trains with Ray Train; an earlier FL variant's
    # executor actors may hold every CPU they need, and Ray would wait for them forever. The pool
    # lets go here and starts again for fgl_rounds.
    ctx.engines.close()
    shot = one_shot(cfg, task, ctx.factory, ctx.run_dir, ctx.stage)
    out = {"fgl": _one_shot_summary(shot, task)}
    if cfg.fgl.rounds > 0:
        out["fgl_rounds"] = run_fgl_rounds_variant(
            cfg, task, ctx.factory, ctx.run_dir, ctx.stage, shot=shot, engines=ctx.engines
        )
    return out


def _one_shot_summary(shot: OneShot, task: Task) -> dict:
    up = _upload_stats(shot.uploads)
    deploy = len(task.parts) * len(shot.params) * 4  # float32 model to every client
    hist = [
        {"round": 0, **shot.init_eval, "cum_bytes": 0},
        {"round": 1, **shot.eval, "cum_bytes": up["prompt_upload_bytes"] + deploy},
    ]
    return variant_summary(
        hist,
        None,
        len(shot.params),
        extra={
            **up,
            "model_download_bytes": deploy,
            "model_update_bytes": 0,
            "synthetic_samples": shot.synthetic_rows,
            "fgl_rounds": 0,
        },
    )


class ServerFinetune:
    """FGL's multi-round variant: after each aggregation the server trains the global model on
    the synthetic data for a few epochs. Deterministic in (seed, round), so resume stays exact."""

    def __init__(
        self, factory: ModelFactory, x: np.ndarray, y: np.ndarray, pretrain_cfg: PretrainConfig, epochs: int, seed: int
    ):
        import torch

        from gptfl_ray.fl.client import LocalTrainConfig, param_layout

        self.model = factory()
        self.layout = param_layout(self.model)
        self.x = torch.tensor(np.asarray(x, np.float32))  # a copy: loaded arrays may be read-only
        self.y = torch.tensor(np.asarray(y, np.int64))
        # The synthetic-data settings GPT-FL section 3.3 advises (small lr, larger weight decay).
        self.cfg = LocalTrainConfig(
            epochs=epochs,
            batch_size=pretrain_cfg.batch_size,
            lr=pretrain_cfg.lr,
            momentum=pretrain_cfg.momentum,
            weight_decay=pretrain_cfg.weight_decay,
        )
        self.seed = seed

    def __call__(self, params: np.ndarray, round_idx: int) -> np.ndarray:
        from gptfl_ray.fl.client import client_update

        res = client_update(
            self.model,
            params,
            self.x,
            self.y,
            self.cfg,
            derive_seed(self.seed, round_idx, _SALT_FINETUNE),
            layout=self.layout,
        )
        return (np.asarray(params, np.float32) + res.delta).astype(np.float32)


def run_fgl_rounds_variant(
    cfg: SimulateConfig,
    task: Task,
    factory: ModelFactory,
    run_dir: str | Path,
    stage: StageFn,
    shot: OneShot | None = None,
    engines: EnginePool | None = None,
) -> dict:
    """`fgl_rounds`: FedAvg (or any --strategy) for --fgl-rounds rounds from the one-shot model,
    with server fine-tuning after each round when --server-finetune-epochs > 0."""
    from gptfl_ray.synth import store

    run_dir = Path(run_dir)
    shot = shot or one_shot(cfg, task, factory, run_dir, stage)
    up = _upload_stats(shot.uploads)
    fl = dataclasses.replace(cfg.federate.fl, rounds=cfg.fgl.rounds)
    fcfg = dataclasses.replace(cfg.federate, fl=fl)
    out = fgl_dir(run_dir) / "federate"
    key = {
        "start": params_sha256(shot.params),
        "finetune_epochs": cfg.fgl.server_finetune_epochs,
        "pretrain": cfg.pretrain,
        "synthetic": shot.synthetic_sha,
        "federate": {s: getattr(fcfg, s) for s in ("data", "model")}
        | {"fl": dataclasses.replace(fl, rounds=0, eval_every=1, checkpoint_every=0)},
    }
    saved = read_config(out)
    same = bool(saved)
    if saved:  # never silently replaced: `simulate --overwrite` clears the run first
        check_resumable(
            "fgl_rounds",
            out,
            {"key": saved.get("fgl_rounds_key"), "rounds": saved.get("rounds", {}).get("n", 0)},
            {"key": plain(key), "rounds": fl.rounds},
        )
    write_config_section(out, "fgl_rounds_key", key)
    write_config_section(out, "rounds", {"n": fl.rounds})
    hook = None
    if cfg.fgl.server_finetune_epochs > 0:
        x_syn, y_syn = store.load_synthetic(fgl_dir(run_dir), task.dataset)
        hook = ServerFinetune(
            factory, task.dataset.prepare(x_syn), y_syn, cfg.pretrain, cfg.fgl.server_finetune_epochs, fl.seed
        )
    bar = stage("fgl+rounds", fl.rounds)
    res = run_federation(
        fcfg,
        task.dataset,
        task.parts,
        out,
        resume=same,
        init_params=shot.params,
        on_round=lambda m: bar(m["round"]),
        server_hook=hook,
        engines=engines,
    )
    pb = up["prompt_upload_bytes"]
    # FL round r is FGL round 1 + r: the one-shot exchange was round 1.
    hist = [{"round": 0, **shot.init_eval, "cum_bytes": 0}] + [
        {**h, "round": h["round"] + 1, "cum_bytes": pb + h.get("cum_bytes", 0)} for h in res.history
    ]
    rounds = [{**r, "round": r["round"] + 1} for r in res.rounds]
    fl_bytes = res.history[-1].get("cum_bytes", 0)
    return variant_summary(
        hist,
        None,
        res.num_params,
        rounds=rounds,
        extra={
            **up,
            "model_download_bytes": res.history[-1].get("cum_bytes_down", 0),
            "model_update_bytes": res.history[-1].get("cum_bytes_up", 0),
            "model_bytes": fl_bytes,
            "synthetic_samples": shot.synthetic_rows,
            "fgl_rounds": fl.rounds,
            "server_finetune_epochs": cfg.fgl.server_finetune_epochs,
        },
    )


register_variant(Variant("fgl", "fgl", run_fgl_variants, preflight=preflight_fgl))
