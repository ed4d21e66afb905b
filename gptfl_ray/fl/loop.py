"""The round loop (docs/architecture.md rule 10): sample, run, aggregate, update, evaluate, checkpoint.

Writes into `out_dir`: `metrics.jsonl` (one line per evaluated round: test accuracy under
`accuracy`, validation accuracy under `val_accuracy`, see fl/metrics.HeldOut), `rounds.jsonl` (one line per round: gradient diversity, bytes, dropped clients),
`checkpoints/` and `model.safetensors` (the final global model). With `resume=True` it continues
from the newest checkpoint and, because every random choice derives from (seed, round, client),
ends on exactly the weights an uninterrupted run reaches.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gptfl_ray.config import FederateConfig, config_dict
from gptfl_ray.data.base import Dataset
from gptfl_ray.errors import ConfigError, RunError, find_config_error
from gptfl_ray.faults import fault_point
from gptfl_ray.fl.aggregator import build_aggregator
from gptfl_ray.fl.algorithms import build_algorithm
from gptfl_ray.fl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from gptfl_ray.fl.client import LocalTrainConfig
from gptfl_ray.fl.crossdevice import CrossDevice
from gptfl_ray.fl.executor import ExecutorSpec, driver_threads
from gptfl_ray.fl.metrics import HeldOut, round_bytes
from gptfl_ray.fl.pool import EnginePool
from gptfl_ray.fl.state_store import ClientStateStore
from gptfl_ray.models.export import model_metadata
from gptfl_ray.models.factory import ModelFactory
from gptfl_ray.models.io import load_model_file, save_model_file
from gptfl_ray.models.params import get_flat
from gptfl_ray.runio import atomic_write_text


@dataclass
class FederationResult:
    params: np.ndarray
    history: list[dict] = field(default_factory=list)  # evaluated rounds
    rounds: list[dict] = field(default_factory=list)  # every round
    num_params: int = 0
    wall_s: float = 0.0


def _read_jsonl(path: Path, upto_round: int) -> list[dict]:
    """Rows up to the checkpoint's round; a torn last line (a kill mid-append) is dropped."""
    if not path.exists():
        return []
    lines = [l for l in path.read_text("utf-8").splitlines() if l.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ConfigError(str(path), f"line {i + 1} is not JSON; the file is damaged") from None
    return [r for r in rows if isinstance(r, dict) and r.get("round", upto_round + 1) <= upto_round]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def run_federation(
    cfg: FederateConfig,
    dataset: Dataset,
    parts: list[np.ndarray],
    out_dir: str | Path,
    *,
    resume: bool = False,
    init_params: np.ndarray | None = None,
    engines: EnginePool | None = None,
    on_round: Callable[[dict], None] | None = None,
    server_hook: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> FederationResult:
    """`server_hook(params, round) -> params` runs on the server after each update (FGL's
    fine-tuning on synthetic data); it must be deterministic in its inputs for exact resume.
    `engines`: the run's executor pool (fl/pool.py), kept running for the next federation;
    without one the engine is started here and closed at the end."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fl = cfg.fl
    num_clients = len(parts)
    factory = ModelFactory(cfg.model.name, dataset.input_shape, dataset.num_classes, cfg.model.norm, seed=fl.seed)
    eval_model = factory()
    if init_params is None and cfg.init:
        init_params = get_flat(load_model_file(eval_model, cfg.init, option="init"))
    params0 = get_flat(eval_model) if init_params is None else np.asarray(init_params, np.float32)
    algo = build_algorithm(
        fl.strategy,
        num_clients=num_clients,
        server_lr=fl.server_lr,
        prox_mu=fl.prox_mu,
        server_momentum=fl.server_momentum,
        beta1=fl.beta1,
        beta2=fl.beta2,
        tau=fl.tau,
    )
    state = algo.init(params0)
    ckpt_dir = out / "checkpoints"
    ck = latest_checkpoint(ckpt_dir) if resume else None
    if ck is None:  # a fresh start (or a resume before the first checkpoint): nothing earlier may leak in
        for stale in (ckpt_dir, out / "state"):
            shutil.rmtree(stale, ignore_errors=True)
    client = algo.client  # what the algorithm adds to local training and keeps per client
    store = ClientStateStore(out / "state" / "controls.f32", num_clients, len(params0)) if client.keeps_state else None

    history: list[dict] = []
    rounds: list[dict] = []
    cum_down = cum_up = 0
    meta: dict = {}
    if ck is not None:
        state, meta, client_state = load_checkpoint(ck)
        if len(state.params) != len(params0):
            raise ConfigError(
                "resume", f"checkpoint {ck} holds {len(state.params)} weights, the model has {len(params0)}"
            )
        if store is not None:
            store.restore(client_state)
        history = _read_jsonl(out / "metrics.jsonl", state.round)
        rounds = _read_jsonl(out / "rounds.jsonl", state.round)
        cum_down, cum_up = meta["cum_bytes_down"], meta["cum_bytes_up"]
    else:
        for name in ("metrics.jsonl", "rounds.jsonl"):
            (out / name).unlink(missing_ok=True)
    _write_jsonl(out / "metrics.jsonl", history)
    _write_jsonl(out / "rounds.jsonl", rounds)
    aggregator = build_aggregator(fl)  # plain or secure summation, chosen once
    xdev = CrossDevice(cfg, parts, len(params0), client.wire_copies, aggregator, resumed=meta.get("cross_device"))

    held_out = HeldOut(dataset)
    if state.round == 0 and not history:
        first = {
            "round": 0,
            **held_out(eval_model, state.params),
            "cum_bytes": 0,
            "cum_bytes_down": 0,
            "cum_bytes_up": 0,
            **({"epsilon": 0.0} if xdev.dp is not None else {}),
            **({"sim_time_s": 0.0} if xdev.devices is not None else {}),
        }
        history.append(first)
        _append_jsonl(out / "metrics.jsonl", first)
        if on_round:
            on_round(first)

    own_pool = engines is None
    engines = EnginePool() if engines is None else engines
    engine = None
    if state.round < fl.rounds:
        spec = ExecutorSpec(
            model_fn=factory,
            local=LocalTrainConfig(
                epochs=fl.local_epochs,
                batch_size=fl.batch_size,
                lr=fl.lr,
                momentum=fl.momentum,
                weight_decay=fl.weight_decay,
            ),
            seed=fl.seed,
            client=client,
            dropout=fl.dropout,
            secagg_scale=float(max(len(p) for p in parts)) if fl.secure_aggregation else 0.0,
            dp_weighting=cfg.privacy.dp_weighting if xdev.dp is not None else None,
            dp_weight_cap=cfg.privacy.dp_weight_cap,
            dp_with_bit=xdev.dp is not None and xdev.dp.with_bit,
            executor=cfg.engine.executor,
        )
        engine = engines.get(cfg, spec, dataset, parts)
        # where the clients ran: the executors' nodes, pids and devices
        atomic_write_text(
            out / "engine.json",
            json.dumps(
                {"engine": engine.describe(), "actors": getattr(engine, "actor_info", []), **xdev.describe()},
                default=str,
                indent=2,
            )
            + "\n",
        )
    P = len(state.params)
    try:
        with driver_threads(engine.driver_threads if engine is not None else None):
            while state.round < fl.rounds:
                r = state.round + 1
                sel = xdev.select(r)  # the plain sampler's pick unless devices or DP shape the round
                ids = sel.ids
                broadcast = client.broadcast(state)
                states = store.get(ids) if store is not None else None
                try:
                    res = engine.run_round(state.params, ids, r, broadcast, states, dp_clip=xdev.client_clip)
                except (ConfigError, KeyboardInterrupt):
                    raise
                except Exception as exc:  # noqa: BLE001 - a client's failure is the run's, reported in one line
                    found = find_config_error(exc)
                    if found is not None:
                        raise found from None
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
                    raise RunError(
                        f"round {r}: a client failed ({type(exc).__name__}: {first[:300]}); "
                        "the run stops at its last checkpoint (`resume` continues it)"
                    ) from exc
                extra = dict(sel.info)
                if xdev.dp is not None:  # noised on the server after the (plain or secure) sum
                    agg, secagg, dp_info = xdev.aggregate(res, r)
                    extra.update(dp_info)
                else:  # None when nobody was heard from in time: the model stays as it is
                    agg, secagg = aggregator.mean(res, r)
                state = algo.server_update(state, agg) if agg is not None else state.with_(round=r)
                if server_hook is not None:  # server-side work moves no bytes; checkpointed below
                    state = state.with_(params=np.asarray(server_hook(state.params, r), np.float32))
                if store is not None:
                    store.put(res.new_states)
                finished = 0 if agg is None else agg.num_clients
                down, up = round_bytes(P, sel.selected, finished, client.wire_copies)
                if secagg is not None:  # the protocol's own traffic replaces the plain float uploads
                    down, up = down + secagg.bytes_down, secagg.bytes_up
                cum_down, cum_up = cum_down + down, cum_up + up
                row = {
                    "round": r,
                    "clients": int(len(ids)),
                    "finished": finished,
                    "dropped": len(res.partial.dropped),
                    "train_loss": float("nan") if agg is None else agg.train_loss,
                    "gradient_diversity": float("nan") if agg is None else agg.gradient_diversity,
                    "bytes_down": down,
                    "bytes_up": up,
                    "cum_bytes_down": cum_down,
                    "cum_bytes_up": cum_up,
                    "cum_bytes": cum_down + cum_up,
                    **(
                        {}
                        if secagg is None
                        else {
                            "secagg_bytes_up": secagg.bytes_up,
                            "secagg_bytes_down": secagg.bytes_down,
                            "secagg_error_bound": secagg.extra["mean_error_bound"],
                        }
                    ),
                    **extra,
                }
                rounds.append(row)
                _append_jsonl(out / "rounds.jsonl", row)
                fault_point("round")
                if r % fl.eval_every == 0 or r == fl.rounds:
                    ev = {
                        "round": r,
                        **held_out(eval_model, state.params),
                        **{
                            k2: row[k2]
                            for k2 in (
                                "cum_bytes",
                                "cum_bytes_down",
                                "cum_bytes_up",
                                "gradient_diversity",
                                "dropped",
                                "epsilon",
                                "sim_time_s",
                            )
                            if k2 in row
                        },
                    }
                    history.append(ev)
                    _append_jsonl(out / "metrics.jsonl", ev)
                    if on_round:
                        on_round(ev)
                elif on_round:
                    on_round({"round": r})
                if (fl.checkpoint_every and r % fl.checkpoint_every == 0) or r == fl.rounds:
                    save_checkpoint(
                        ckpt_dir,
                        state,
                        {
                            "cum_bytes_down": cum_down,
                            "cum_bytes_up": cum_up,
                            "config": config_dict(cfg),
                            "cross_device": xdev.state(),
                        },
                        store.snapshot() if store is not None else None,
                    )
    finally:
        if own_pool:
            engines.close()
    # self-describing: gptfl_ray.load_model rebuilds it from the file alone
    save_model_file(
        eval_model,
        state.params,
        out / "model.safetensors",
        metadata=model_metadata(cfg.model.name, cfg.model.norm, dataset),
    )
    return FederationResult(
        params=state.params, history=history, rounds=rounds, num_params=P, wall_s=time.perf_counter() - t0
    )
