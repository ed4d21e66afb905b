"""The digits FedAvg job as a plain single-process PyTorch loop: no FL framework, no Ray.

The floor the FL systems in `bench_peers.py` are measured against (benchmarks/pfl/README.md).
The same job as

    gptfl-ray federate --dataset digits --model cnn --clients 50 --partition dirichlet --alpha 0.1 \
        --clients-per-round 10 --rounds 30 --local-epochs 1 --batch-size 10 --lr 0.05 \
        --momentum 0 --seed 0

written as the four lines of FedAvg around gptfl-ray's own pieces:

- data and split: `load_dataset("digits", seed)` + `Dataset.prepare`, `partition(..., "dirichlet")`;
- model: `ModelFactory("cnn", ..., seed)` (`torch.manual_seed(seed)` then `build_model`), so the
  initial weights are the CLI's;
- sampler: `sample_clients(clients, k, seed, round)`, the CLI's draws;
- local update: `client_update` with `client_seed(seed, round, client)` (batches from
  `client_batches`, plain SGD);
- aggregation: the sample-count weighted mean of the deltas, summed in float64 in client-id
  order as `PartialSum` does, then `params += mean` (FedAvg, server lr 1);
- evaluation: `HeldOut` (test and validation split) before round 1 and after every round, as
  `--eval-every 1`.

What it leaves out is what the CLI adds around the loop: its engine, checkpoints, metrics files.
Torch runs `--threads` intra-op threads (default 1, as gptfl-ray's executors; 0 keeps torch's
default). Prints one JSON object (also written to --json-out) in the format of
`flower/flower_digits.py` and `pfl/pfl_digits.py`.

Runs in gptfl-ray's own venv (needs torch and gptfl-ray only):

    .venv/bin/python benchmarks/plain_loop.py --rounds 2
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # before the heavy imports

import argparse  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from peer_job import add_job_args, emit  # noqa: E402  (benchmarks/peer_job.py, beside this script)

from gptfl_ray.data import load_dataset, partition  # noqa: E402
from gptfl_ray.fl.client import LocalTrainConfig, client_update  # noqa: E402
from gptfl_ray.fl.metrics import HeldOut  # noqa: E402
from gptfl_ray.fl.sampler import sample_clients  # noqa: E402
from gptfl_ray.models.factory import ModelFactory  # noqa: E402
from gptfl_ray.models.params import get_flat  # noqa: E402
from gptfl_ray.seeding import client_seed  # noqa: E402

DATASET, MODEL = "digits", "cnn"


def parse_args(argv=None) -> argparse.Namespace:
    p = add_job_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--json-out", default=None, help="also write the result JSON here")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    a = parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    ds = load_dataset(DATASET, seed=a.seed)
    parts = partition(ds.y_train, a.clients, "dirichlet", seed=a.seed, alpha=a.alpha)
    x = torch.from_numpy(ds.prepare(ds.x_train))
    y = torch.from_numpy(ds.y_train.astype(np.int64))
    model = ModelFactory(MODEL, ds.input_shape, ds.num_classes, seed=a.seed)()
    params = get_flat(model)
    local = LocalTrainConfig(epochs=a.local_epochs, batch_size=a.batch_size, lr=a.lr, momentum=a.momentum)
    held_out = HeldOut(ds)

    ends: dict[int, float] = {}
    history = []

    def evaluate(r: int) -> None:
        history.append({"round": r, **held_out(model, params)})
        ends[r] = time.perf_counter() - T_START

    evaluate(0)
    for r in range(1, a.rounds + 1):
        total, weight = None, 0.0
        for cid in sample_clients(a.clients, a.clients_per_round, a.seed, r):  # sorted ids
            idx = torch.as_tensor(parts[cid])
            res = client_update(model, params, x[idx], y[idx], local, client_seed(a.seed, r, int(cid)))
            d = res.num_samples * res.delta.astype(np.float64)
            total = d if total is None else total + d
            weight += res.num_samples
        params = (params + (total / weight).astype(np.float32)).astype(np.float32)
        evaluate(r)
    t_end = time.perf_counter()

    return emit(
        {"system": "plain", "torch_version": torch.__version__, "threads": torch.get_num_threads()},
        wall_s=t_end - T_START,
        ends=ends,
        history=history,
        rounds=a.rounds,
        json_out=a.json_out,
    )


if __name__ == "__main__":
    main()
    sys.exit(0)
