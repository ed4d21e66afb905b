"""Clients/s sequential vs vectorized on one GPU, with 1, 2 and 4 fractional executors (issue 14).

    python benchmarks/device/bench_vectorized_gpu.py            # on a machine with a CUDA GPU, < 5 min
    python benchmarks/device/bench_vectorized_gpu.py --cpu-smoke  # proves the script runs, no GPU

Runs `benchmarks/bench_vectorized.py` for `cnn` (digits), `convnet` and `resnet18` (group norm,
random 3x32x32) with k = 1, 2, 4 executor processes sharing the device, each with a 1/k share of
every round's 10 clients (what `--client-gpus 1/k` gives the Ray engine), and prints its table.
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import bench_vectorized  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny run on the CPU (no GPU needed)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if args.cpu_smoke:
        argv = [
            "--device",
            "cpu",
            "--rounds",
            "1",
            "--repeats",
            "1",
            "--executors",
            "1,2",
            "--workloads",
            "cnn,convnet,resnet18",
        ]
    else:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device visible; use --cpu-smoke to check the script on a CPU")
        argv = [
            "--device",
            "cuda",
            "--rounds",
            str(args.rounds),
            "--repeats",
            str(args.repeats),
            "--executors",
            "1,2,4",
            "--workloads",
            "cnn,convnet,resnet18",
        ]
    bench_vectorized.main(argv)


if __name__ == "__main__":
    main()
