"""GPT-FL (Zhang et al., CVPR-W 2024, Figure 1) composed from the stages, with its baselines.

    label names -> prompts -> synthetic data -> server pre-training -> FL fine-tuning

and the variants the paper compares (Tables 2-4): `fedavg` (standard FL from random init),
`synthetic` (the pre-trained model alone, zero-shot on the real test set) and `gptfl` (the
pre-trained model fine-tuned by FL with any strategy). The server-side stages live in
`methods/stages.py` (FGL shares them) and run once per simulate run; every stage's output is
reused when its config matches, so a rerun regenerates nothing and an interrupted run resumes
where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from gptfl_ray.config import FederateConfig, check_resumable
from gptfl_ray.fl.loop import FederationResult, run_federation
from gptfl_ray.fl.metrics import HeldOut
from gptfl_ray.fl.pool import EnginePool
from gptfl_ray.methods.simulate import SimContext, Variant, register_variant
from gptfl_ray.methods.stages import Progress
from gptfl_ray.methods.task import Task
from gptfl_ray.models.params import params_sha256
from gptfl_ray.report import variant_summary
from gptfl_ray.runio import plain, read_config, write_config_section


def run_synthetic(ctx: SimContext) -> dict[str, dict]:
    """`synthetic`: the pre-trained model alone, scored on the real held-out sets."""
    assert ctx.pretrained is not None  # needs_pretrained: simulate ran the synthetic stages
    ev = HeldOut(ctx.task.dataset)(ctx.factory(), ctx.pretrained)
    hist = [{"round": 0, **ev, "cum_bytes": 0}]
    return {"synthetic": variant_summary(hist, None, len(ctx.pretrained))}


def _fl_runner(name: str, start: Callable[[SimContext], np.ndarray | None]) -> Callable[[SimContext], dict[str, dict]]:
    def run(ctx: SimContext) -> dict[str, dict]:
        cfg = ctx.cfg
        res = federate_variant(
            cfg.federate,
            ctx.task,
            ctx.federate_root / name,
            start(ctx),
            ctx.stage(name, cfg.federate.fl.rounds),
            on_metrics=ctx.metrics_hook(name) if ctx.metrics_hook else None,
            engines=ctx.engines,
        )
        return {name: variant_summary(res.history, None, res.num_params, rounds=res.rounds)}

    return run


def federate_variant(
    fcfg: FederateConfig,
    task: Task,
    out: Path,
    start: np.ndarray | None,
    on_round: Progress,
    on_metrics: Callable[[dict], None] | None = None,
    engines: EnginePool | None = None,
) -> FederationResult:
    """Run (or resume, or reuse) one FL variant in its own directory."""
    start_key = {"sha256": "random-init" if start is None else params_sha256(start)}
    saved = read_config(out) if out.exists() else {}
    if saved:  # never silently replaced: `simulate --overwrite` clears the run first
        check_resumable(
            f"federate/{out.name}",
            out,
            {"federate": saved.get("federate"), "start": saved.get("start")},
            {"federate": plain(fcfg), "start": start_key},
        )
    write_config_section(out, "federate", fcfg)
    write_config_section(out, "start", start_key)

    def cb(m: dict) -> None:
        on_round(m["round"])
        if on_metrics is not None:
            on_metrics(m)

    return run_federation(
        fcfg, task.dataset, task.parts, out, resume=bool(saved), init_params=start, on_round=cb, engines=engines
    )


# Registration order is the order `--variants` lists them in its help and errors.
register_variant(Variant("fedavg", "fl", _fl_runner("fedavg", lambda ctx: ctx.init)))
register_variant(Variant("synthetic", "gptfl", run_synthetic, needs_pretrained=True))
register_variant(Variant("gptfl", "gptfl", _fl_runner("gptfl", lambda ctx: ctx.pretrained), needs_pretrained=True))
