"""Benchmark of the Ray engine (gptfl_ray/fl/engine.py): overhead and scale. Prints markdown.

    python benchmarks/bench_engine.py            # both sections, ~4-6 min on 2 busy cores
    python benchmarks/bench_engine.py --quick    # a smoke run

It needs psutil, which gptfl-ray's own venv does not install (Ray 2.60 no longer brings it):
`pip install --target /tmp/psu psutil` and `PYTHONPATH=/tmp/psu` in front of the command do.

(1) Overhead. The engine's wall time for R rounds against a plain single-process loop that does
exactly the same local SGD steps: `client_update` called in a for loop over the same sampled
clients with the same per-client seeds (same model, same batches), summed into a `PartialSum`.
Every path also pays the same `finalize` + FedAvg step. The paths run interleaved round by round
(the order rotates every round) inside one process and one Ray runtime, so a neighbour's load
spike hits all of them alike and the ratio is taken within one run; the in-process `LocalEngine`
row is a control whose distance from the plain loop shows the noise left. Ray start-up
(ray.init, actor creation, the untimed warm-up round) is reported separately and excluded.

(2) Scale. 100, 1,000 and 10,000 virtual clients, 100 sampled per round, on a 2-actor pool.
One synthetic digits-shaped data set (1x8x8 float32 N(0,1) inputs, 10 random labels) of
10 x 10,000 samples is shared by all three populations and client i holds samples
[10 i, 10 i + 10): every round trains the same amount (100 clients x 10 samples), and the data
held in memory is the same, so whatever grows with the population is the engine's own cost
(index arrays, sampling, per-client bookkeeping). The three pools exist at once and run their
rounds interleaved (paired timing under the same load); a psutil thread samples the RSS (and
PSS, which counts shared object-store pages once) of the driver and every Ray process in its
tree, and a population's memory is that sum less the other two pools' idle actors.

Ray workers run at niceness 15 by default (Ray's `worker_niceness`): on a machine shared with
other busy processes that alone makes actors slower than a plain loop at niceness 0. The
benchmark sets `RAY_worker_niceness` (default 0, `--worker-niceness`) so both sides compete
for the CPU on equal terms. (With Linux's autogroup scheduling, the driver and its actors share
one session's CPU share, so on a loaded machine two actors gain less than two free cores would.)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only (docs/architecture.md)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# The plain loop gets the thread environment Ray gives a 1-CPU actor (OMP_NUM_THREADS=1, which
# OpenBLAS honours). Unset, numpy's OpenBLAS keeps a spin-waiting thread per core after each
# dot product (PartialSum.add's squared norm): measured here, twice the CPU time for the same
# digits round, which would make the engine look faster than a plain loop.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import psutil  # noqa: E402  (not a gptfl-ray dependency: see the module text)
import ray  # noqa: E402
import torch  # noqa: E402

from gptfl_ray.config import EngineConfig  # noqa: E402
from gptfl_ray.data.digits import load_digits_dataset  # noqa: E402
from gptfl_ray.data.partition import partition  # noqa: E402
from gptfl_ray.fl.aggregate import PartialSum, finalize  # noqa: E402
from gptfl_ray.fl.client import LocalTrainConfig, client_update, param_layout  # noqa: E402
from gptfl_ray.fl.engine import RayEngine  # noqa: E402
from gptfl_ray.fl.executor import ExecutorSpec, LocalEngine  # noqa: E402
from gptfl_ray.fl.sampler import sample_clients  # noqa: E402
from gptfl_ray.models.factory import ModelFactory  # noqa: E402
from gptfl_ray.models.params import get_flat  # noqa: E402
from gptfl_ray.seeding import client_seed  # noqa: E402

MiB = 2**20
SEED = 0


class PlainLoop:
    """The same local SGD steps as an executor, as a bare for loop in this process."""

    def __init__(self, spec: ExecutorSpec, x, y, parts):
        torch.set_num_threads(spec.num_threads)
        self.spec, self.parts = spec, parts
        self.model = spec.model_fn()
        self.layout = param_layout(self.model)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def run_round(self, params, ids, round_idx):
        partial = PartialSum()
        for cid in ids:
            idx = torch.from_numpy(self.parts[int(cid)])
            r = client_update(
                self.model,
                params,
                self.x[idx],
                self.y[idx],
                self.spec.local,
                client_seed(self.spec.seed, round_idx, int(cid)),
                client_id=int(cid),
                layout=self.layout,
            )
            partial.add(r.delta, r.num_samples, r.loss)
        return partial


def fedavg_round(path, params, num_clients, per_round, r):
    ids = sample_clients(num_clients, per_round, SEED, r)
    out = path.run_round(params, ids, r)
    partial = out.partial if hasattr(out, "partial") else out
    return params + finalize(partial).delta


def make_spec(model: str, input_shape, epochs: int, batch_size: int) -> ExecutorSpec:
    return ExecutorSpec(
        model_fn=ModelFactory(model, input_shape, 10, seed=SEED),
        local=LocalTrainConfig(epochs=epochs, batch_size=batch_size, lr=0.05, momentum=0.9),
        seed=SEED,
        num_threads=1,  # what an actor with --client-cpus 1 uses
    )


def tree_cpu() -> float:
    """CPU seconds used so far by this process and every descendant (Ray's gcs, raylet, agents,
    workers, actors): a measure of work that, unlike wall time, a busy neighbour cannot inflate."""
    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


# ------------------------------------------------------------------------------ (1) overhead


def overhead_workloads(args):
    ds = load_digits_dataset(seed=SEED)
    digits_parts = partition(ds.y_train, 50, "dirichlet", SEED, alpha=0.1)
    yield (
        "digits, `cnn`, 50 clients, 10/round, dirichlet 0.1, 2 local epochs, batch 16",
        make_spec("cnn", ds.input_shape, 2, 16),
        ds.prepare(ds.x_train),
        ds.y_train.astype(np.int64),
        digits_parts,
        10,
        args.rounds_digits,
    )
    rng = np.random.default_rng(SEED)
    n = 50 * args.convnet_samples
    x = rng.standard_normal((n, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    conv_parts = partition(y, 50, "iid", SEED)  # equal clients: one batch of 16 per client
    yield (
        f"random 3x32x32, `convnet`, 50 clients x {args.convnet_samples} samples (iid), 10/round, 1 local epoch, batch 16",
        make_spec("convnet", (3, 32, 32), 1, 16),
        x,
        y,
        conv_parts,
        10,
        args.rounds_convnet,
    )


def bench_overhead(args) -> list[str]:
    lines = [
        "| workload | path | timed rounds | wall (s) | per round (ms) | wall ratio vs plain loop | CPU (s), all processes | CPU ratio | start-up (s): actors + warm-up round | max abs weight diff vs plain |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for title, spec, x, y, parts, per_round, rounds in overhead_workloads(args):
        paths: dict[str, object] = {}
        startup: dict[str, float] = {}
        base = "plain loop (1 thread)"
        paths[base], startup[base] = timed(lambda: PlainLoop(spec, x, y, parts))
        # A control: the same executor as the actors, in this process. Its distance from the
        # plain loop shows how much of a difference is noise from the machine's other load.
        paths["local engine (in-process executor)"], startup["local engine (in-process executor)"] = timed(
            lambda: LocalEngine(spec, x, y, parts)
        )
        for k in (1, 2):
            name = f"ray, {k} actor{'s' if k > 1 else ''} x 1 CPU"
            paths[name], startup[name] = timed(
                lambda k=k: RayEngine(spec, x, y, parts, EngineConfig(backend="ray", num_actors=k))
            )
        p0 = get_flat(spec.model_fn())
        params = {name: p0 for name in paths}
        wall = {name: 0.0 for name in paths}
        cpu = {name: 0.0 for name in paths}
        for name, path in paths.items():  # warm-up round 0: lazy initialisation, first calls
            _, dt = timed(lambda: fedavg_round(path, p0, len(parts), per_round, 0))
            startup[name] += dt
        names = list(paths)
        for r in range(1, rounds + 1):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate: no path always first
                c0 = tree_cpu()
                params[name], dt = timed(lambda: fedavg_round(paths[name], params[name], len(parts), per_round, r))
                cpu[name] += tree_cpu() - c0
                wall[name] += dt
        for name in paths:
            diff = float(np.abs(params[name] - params[base]).max())
            lines.append(
                f"| {title} | {name} | {rounds} | {wall[name]:.2f} | {1000 * wall[name] / rounds:.0f} | "
                f"{wall[name] / wall[base]:.3f} | {cpu[name]:.2f} | {cpu[name] / cpu[base]:.3f} | {startup[name]:.1f} | {diff:.1e} |"
            )
        for path in paths.values():
            if isinstance(path, RayEngine):
                path.close()
        print(f"  overhead: {title} done", flush=True)
    return lines


# ------------------------------------------------------------------------------ (2) scale


class TreeMemory(threading.Thread):
    """Samples RSS and PSS of this process and all its descendants (gcs, raylet, agents, workers,
    actors) every `interval` s, tagged with whatever `tag` is set to at the time."""

    def __init__(self, interval: float = 0.4):
        super().__init__(daemon=True)
        self.interval, self.tag, self.samples = interval, None, []
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            tag = self.tag
            if tag is not None:
                self.snapshot(tag)
            self._halt.wait(self.interval)

    def snapshot(self, tag) -> None:
        """One sample now, tagged `tag`: a round shorter than the interval still gets one."""
        me, snap = psutil.Process(), {}
        for p in [me, *me.children(recursive=True)]:
            try:
                m = p.memory_full_info()
                snap[p.pid] = (m.rss, getattr(m, "pss", m.rss))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        self.samples.append((tag, snap))

    def stop(self):
        self._halt.set()
        self.join()


def bench_scale(args) -> list[str]:
    pops = [int(p) for p in args.populations.split(",")]
    spc, per_round = args.samples_per_client, args.per_round
    n = spc * max(pops)
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((n, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    spec = make_spec("cnn", (1, 8, 8), 1, 16)
    engines, startup = {}, {}
    for pop in pops:
        parts = [np.arange(i * spc, (i + 1) * spc, dtype=np.int64) for i in range(pop)]
        engines[pop], startup[pop] = timed(
            lambda: RayEngine(spec, x, y, parts, EngineConfig(backend="ray", num_actors=2))
        )
    actor_pids = {pop: {i["pid"] for i in eng.actor_info} for pop, eng in engines.items()}
    p0 = get_flat(spec.model_fn())
    params = {pop: p0 for pop in pops}
    for pop, eng in engines.items():  # warm-up round 0
        _, dt = timed(lambda: fedavg_round(eng, p0, pop, per_round, 0))
        startup[pop] += dt
    mem = TreeMemory()
    mem.start()
    times = {pop: [] for pop in pops}
    cpus = {pop: [] for pop in pops}
    for r in range(1, args.rounds_scale + 1):
        for pop in pops[r % len(pops) :] + pops[: r % len(pops)]:  # rotate the order each round
            eng = engines[pop]
            c0 = tree_cpu()
            mem.tag = pop
            params[pop], dt = timed(lambda: fedavg_round(eng, params[pop], pop, per_round, r))
            mem.tag = None
            cpus[pop].append(tree_cpu() - c0)
            times[pop].append(dt)
            mem.snapshot(pop)  # untimed, uncounted: the actors still hold this round's memory
    mem.stop()
    for eng in engines.values():
        eng.close()

    peak = {}
    for pop in pops:
        others = set().union(*(actor_pids[q] for q in pops if q != pop))
        rss = pss = act = 0
        for tag, snap in mem.samples:
            if tag != pop:
                continue
            mine = {pid: v for pid, v in snap.items() if pid not in others}
            rss = max(rss, sum(v[0] for v in mine.values()))
            pss = max(pss, sum(v[1] for v in mine.values()))
            act = max(act, sum(v[0] for pid, v in mine.items() if pid in actor_pids[pop]))
        peak[pop] = (rss, pss, act)
    b = pops[0]
    mean_b = statistics.mean(times[b])
    lines = [
        f"Data: {n:,} synthetic samples (1x8x8 float32, {x.nbytes / MiB:.1f} MiB) shared by every population; "
        f"client i holds {spc} samples; `cnn`, 1 local epoch, batch 16; {per_round} clients/round; "
        f"2 actors x 1 CPU; {args.rounds_scale} timed rounds after one warm-up round, interleaved across populations.",
        "",
        f"| clients | mean round (s) | median round (s) | round-time ratio vs {b:,} | CPU per round (s) | CPU ratio | peak RSS, all Ray processes + driver (MiB) | RSS ratio | peak PSS (MiB) | PSS ratio | actors' peak RSS (MiB) | start-up (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cpu_b = statistics.mean(cpus[b])
    for pop in pops:
        m = statistics.mean(times[pop])
        rss, pss, act = peak[pop]
        c = statistics.mean(cpus[pop])
        lines.append(
            f"| {pop:,} | {m:.3f} | {statistics.median(times[pop]):.3f} | {m / mean_b:.3f} | {c:.3f} | {c / cpu_b:.3f} | {rss / MiB:.0f} | "
            f"{rss / peak[b][0]:.3f} | {pss / MiB:.0f} | {pss / peak[b][1]:.3f} | {act / MiB:.0f} | {startup[pop]:.1f} |"
        )
    print("  scale done", flush=True)
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="overhead,scale")
    ap.add_argument("--rounds-digits", type=int, default=30)
    ap.add_argument("--rounds-convnet", type=int, default=4)
    ap.add_argument("--convnet-samples", type=int, default=16, help="samples per convnet client")
    ap.add_argument("--rounds-scale", type=int, default=10)
    ap.add_argument("--populations", default="100,1000,10000")
    ap.add_argument("--per-round", type=int, default=100)
    ap.add_argument("--samples-per-client", type=int, default=10)
    ap.add_argument("--worker-niceness", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="2 rounds each, smaller populations")
    args = ap.parse_args()
    if args.quick:
        args.rounds_digits = args.rounds_convnet = args.rounds_scale = 2
        args.populations, args.per_round = "100,1000", 20
    os.environ["RAY_worker_niceness"] = str(args.worker_niceness)  # read by the raylet at start
    sections = args.sections.split(",")

    load0 = os.getloadavg()
    # Logical CPUs: one pool computes at a time, the others sit idle between their rounds.
    _, t_init = timed(lambda: ray.init(num_cpus=6, include_dashboard=False, configure_logging=False))
    out = [
        f"Machine: {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.python_version()}, "
        f"ray {ray.__version__}, torch {torch.__version__}; load average at start {load0[0]:.1f}; "
        f"ray.init {t_init:.1f} s (excluded below); Ray worker niceness {args.worker_niceness}; "
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}."
    ]
    if "overhead" in sections:
        out += ["", "### Engine overhead vs a plain loop (same clients, same SGD steps)", ""] + bench_overhead(args)
        print("\n".join(out), flush=True)  # a table in hand even if a later section fails
    if "scale" in sections:
        out += ["", "### Scale: population size at a fixed 100 clients per round", ""] + bench_scale(args)
    ray.shutdown()
    out += ["", f"Load average at end: {os.getloadavg()[0]:.1f}."]
    print("\n".join(out))


if __name__ == "__main__":
    main()
