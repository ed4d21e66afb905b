"""Clients trained per second: the vectorized executor against the sequential one (issue 14).

    python benchmarks/bench_vectorized.py [--repeats 3] [--rounds 6] [--device cpu] [--executors 1]

Each measurement is a whole child process (imports, data, model, one warm-up round, then
`--rounds` timed rounds of 10 sampled clients); the two executors alternate, and the table
shows the median of `--repeats` processes each and their ratio, from this one run. With
`--executors k` a measurement is k such processes at once on the same device, each with a 1/k
share of every round's clients (the fractional executors of `--client-gpus 1/k`); clients/s is
the total over the wall time of the slowest.

Beside clients/s, each row gives the FLOPs the executors did per second (torch's FLOP counter on
one forward + backward, times the rows trained) against this device's one-thread float32 matrix
multiply: an executor that already runs near that speed is compute-bound, and no batching of
clients can make it faster than `matmul / sequential` (the "ceiling" column).

Workloads, both with the digits split of the issue (50 clients, Dirichlet 0.1, 10 per round,
1 local epoch, batch 10, SGD lr 0.05):
- `cnn`: the real digits (1x8x8);
- `convnet`: DynaFed's ConvNet on random 3x32x32 inputs with the same client sizes;
- `resnet18` (group norm, so that vmap applies): random 3x32x32, same sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = {
    "cnn": ("cnn", None, "default"),
    "convnet": ("convnet", (3, 32, 32), "default"),
    "resnet18": ("resnet18", (3, 32, 32), "group"),
}


def child(args) -> None:
    import numpy as np
    import torch

    from gptfl_ray.data import load_dataset
    from gptfl_ray.data.partition import partition
    from gptfl_ray.fl.client import LocalTrainConfig
    from gptfl_ray.fl.executor import ClientExecutor, ExecutorSpec
    from gptfl_ray.fl.sampler import sample_clients
    from gptfl_ray.models.factory import ModelFactory
    from gptfl_ray.models.params import get_flat

    model, shape, norm = WORKLOADS[args.workload]
    ds = load_dataset("digits")
    parts = partition(ds.y_train, 50, "dirichlet", seed=0, alpha=0.1)
    y = ds.y_train.astype(np.int64)
    if shape is None:
        x, shape = ds.prepare(ds.x_train), ds.input_shape
    else:  # the same client sizes and labels, on inputs of the model's usual size
        x = np.random.default_rng(0).normal(size=(len(y), *shape)).astype(np.float32)
    factory = ModelFactory(model, shape, ds.num_classes, norm, seed=0)
    spec = ExecutorSpec(
        model_fn=factory, local=LocalTrainConfig(epochs=1, batch_size=10, lr=0.05), seed=0, executor=args.executor
    )
    ex = ClientExecutor(spec, x, y, parts, device=args.device)
    assert ex.mode == args.executor, f"{args.workload} cannot run {args.executor}: {ex.mode}"
    g = get_flat(factory())

    def share(r):
        ids = sample_clients(50, 10, 0, r)
        return np.array_split(np.asarray(ids), args.share_of)[args.share_index]

    ex.run(g, share(0), 0)  # warm-up: allocator, kernels, first vmap trace
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    if args.barrier:  # fractional executors start their timed rounds together, after every warm-up
        open(f"{args.barrier}.{args.share_index}", "w").close()
        while sum(os.path.exists(f"{args.barrier}.{i}") for i in range(args.share_of)) < args.share_of:
            time.sleep(0.005)
    t0 = time.perf_counter()
    n = rows = 0
    for r in range(1, args.rounds + 1):
        ids = share(r)
        ex.run(g, ids, r)
        n += len(ids)
        rows += sum(len(parts[int(c)]) for c in ids)  # 1 local epoch (batches of one skipped: within 1%)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    print(json.dumps({"clients": n, "seconds": seconds, "flops": rows * step_flops_per_row(factory, shape)}))


def step_flops_per_row(factory, shape) -> float:
    """Forward + backward FLOPs of one training row (torch's FLOP counter on a batch of 10)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    model = factory()
    x, y = torch.randn(10, *shape), torch.randint(0, 10, (10,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / 10


def sgemm_gflops(device: str, size: int = 1024, reps: int = 20) -> float:
    """This device's matrix-multiply speed in float32 on one thread (CPU): the ceiling of any executor."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(3):
        for _ in range(2):
            a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t) / reps)
    return 2 * size**3 / best / 1e9


def measure(workload, executor, rounds, device, executors) -> float:
    import tempfile

    barrier = os.path.join(tempfile.mkdtemp(prefix="bench_vec_"), "ready")

    def cmd(i):
        return [
            sys.executable,
            __file__,
            "--child",
            "--workload",
            workload,
            "--executor",
            executor,  # noqa: E731
            "--rounds",
            str(rounds),
            "--device",
            device,
            "--share-of",
            str(executors),
            "--share-index",
            str(i),
            "--barrier",
            barrier if executors > 1 else "",
        ]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd(i), stdout=subprocess.PIPE, text=True, env=env) for i in range(executors)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a child failed: {workload} {executor}")
    seconds = max(o["seconds"] for o in outs)
    return sum(o["clients"] for o in outs) / seconds, sum(o["flops"] for o in outs) / seconds / 1e9


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workload", default="cnn", choices=sorted(WORKLOADS))
    ap.add_argument("--workloads", default="cnn,convnet")
    ap.add_argument("--executor", default="vectorized")
    ap.add_argument("--executors", default="1", help="comma list of executors sharing the device, e.g. 1,2,4")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--share-of", type=int, default=1)
    ap.add_argument("--share-index", type=int, default=0)
    ap.add_argument("--barrier", default="")
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    load0 = os.getloadavg()[0]
    rows = []
    for workload in args.workloads.split(","):
        for k in (int(v) for v in args.executors.split(",")):
            got = {"sequential": [], "vectorized": []}
            gflops = {"sequential": [], "vectorized": []}
            for _ in range(args.repeats):
                for executor in got:
                    rate, gf = measure(workload, executor, args.rounds, args.device, k)
                    got[executor].append(rate)
                    gflops[executor].append(gf)
            seq, vec = statistics.median(got["sequential"]), statistics.median(got["vectorized"])
            gf = {e: statistics.median(v) for e, v in gflops.items()}
            rows.append((workload, k, seq, vec, vec / seq, got, gf))
    load1 = os.getloadavg()[0]
    peak = sgemm_gflops(args.device)
    print(
        f"device {args.device}; {args.rounds} timed rounds x 10 clients per process; median of {args.repeats}; "
        f"load average {load0:.2f} at start, {load1:.2f} at end; float32 matmul (1024^2, one thread) "
        f"{peak:.1f} GFLOP/s (the ceiling of k executors on CPU: k times that)\n"
    )
    print(
        "| model | executors on the device | sequential clients/s | vectorized clients/s | vectorized / sequential "
        "| sequential GFLOP/s (% of matmul) | vectorized GFLOP/s | ceiling: matmul / sequential | all runs (seq; vec) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for workload, k, seq, vec, ratio, got, gf in rows:
        runs = "; ".join(", ".join(f"{v:.1f}" for v in got[e]) for e in ("sequential", "vectorized"))
        s_gf, v_gf = gf["sequential"], gf["vectorized"]
        top = peak * k if args.device == "cpu" else peak  # k one-thread processes on CPU; one GPU
        print(
            f"| `{workload}` | {k} | {seq:.1f} | {vec:.1f} | {ratio:.2f}x | {s_gf:.1f} ({100 * s_gf / top:.0f}%) "
            f"| {v_gf:.1f} | {top / s_gf:.1f}x | {runs} |"
        )


if __name__ == "__main__":
    main()
