"""Flower's simulation engine on exactly gptfl-ray's default digits workload (benchmarks/flower/README.md).

The same task as

    gptfl-ray federate --dataset digits --model cnn --clients 50 --partition dirichlet --alpha 0.1 \
        --clients-per-round 10 --rounds 30 --local-epochs 1 --batch-size 10 --lr 0.05 \
        --momentum 0 --seed 0

(issue 14's workload, the defaults here; bench_flower.py passes its older 2 epochs / batch 16 /
momentum 0.9 explicitly)

built from gptfl-ray's own code so that only the FL framework differs: the data set
(`load_dataset('digits', seed)` + `prepare`), the Dirichlet split, the model (`build_model('cnn')`
after `torch.manual_seed(seed)`), the local SGD loop (`client_update`, with the same per-client
seed derivation) and the server-side evaluation (`HeldOut`: test and validation split, as the
CLI's). Flower does the rest with its current message API (flwr 1.41 and 1.42): a `ClientApp` with a `@train()` function, a `ServerApp` whose main runs
`flwr.serverapp.strategy.FedAvg.start(...)` (weighted by "num-examples", fraction_train =
10/50 with min_train_nodes = 10, no client-side evaluation, a server-side `evaluate_fn` after
every round as gptfl-ray's `--eval-every 1`), launched with `flwr.simulation.run_simulation`
on the Ray backend (deprecated in favour of `flwr run`, which adds a SuperLink process on top;
the in-process API is the leaner of the two).

Client resources are 1 CPU per virtual client (Flower's default is 2), so on this 2-core machine
Flower's pool, like gptfl-ray's `--client-cpus 1`, holds two actors. Each actor keeps the data
set and a model in a module-level cache (as Flower's examples keep their `FederatedDataset`), so
only the first message an actor handles pays for loading them.

Prints one JSON object (also written to --json-out): wall time including and excluding Ray's
start-up, the per-round timestamps, the peak RSS/PSS of the whole process tree (this driver,
raylet, GCS, actors) sampled every 0.2 s, and the final test accuracy.

Runs in its own venv (Flower pins ray 2.55.1); see README.md.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # before the heavy imports: "including start-up" starts here

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402

# Loopback-only Ray, no auth token in $HOME, no usage stats, no Flower telemetry (no network here).
for _k, _v in (("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"), ("RAY_AUTH_MODE", "disabled"),
               ("RAY_USAGE_STATS_ENABLED", "0"), ("FLWR_TELEMETRY_ENABLED", "0")):
    os.environ.setdefault(_k, _v)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402

from gptfl_ray.data import load_dataset, partition  # noqa: E402
from gptfl_ray.fl.client import LocalTrainConfig, client_update  # noqa: E402
from gptfl_ray.fl.metrics import HeldOut  # noqa: E402
from gptfl_ray.fl.sampler import sample_clients  # noqa: E402
from gptfl_ray.models.params import get_flat  # noqa: E402
from gptfl_ray.models.registry import build_model  # noqa: E402
from gptfl_ray.seeding import client_seed  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: peer_job
from peer_job import add_job_args, emit  # noqa: E402

DATASET, MODEL = "digits", "cnn"


def build_task(seed: int, clients: int, alpha: float):
    """The data set and its client split, as `gptfl-ray federate` builds them in `load_task`."""
    ds = load_dataset(DATASET, seed=seed)
    parts = partition(ds.y_train, clients, "dirichlet", seed=seed, alpha=alpha)
    return ds, parts


def build_global_model(ds, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # gptfl-ray's ModelFactory: identical initial weights
    return build_model(MODEL, ds.input_shape, ds.num_classes)


# ----------------------------------------------------------------------------- ClientApp

_ACTOR_CACHE: dict = {}  # per actor process: data and one model, built on the first message


def _client_state(seed: int, clients: int, alpha: float):
    key = (seed, clients, alpha)
    if key not in _ACTOR_CACHE:
        torch.set_num_threads(1)  # as gptfl-ray's executors with --client-cpus 1
        ds, parts = build_task(seed, clients, alpha)
        x = torch.from_numpy(ds.prepare(ds.x_train))
        y = torch.from_numpy(ds.y_train.astype(np.int64))
        _ACTOR_CACHE[key] = (parts, x, y, build_global_model(ds, seed))
    return _ACTOR_CACHE[key]


client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    cfg = msg.content["config"]
    seed, rnd = int(cfg["seed"]), int(cfg["server-round"])
    parts, x, y, model = _client_state(seed, int(cfg["clients"]), float(cfg["alpha"]))
    cid = int(context.node_config["partition-id"])
    if cfg["same-draws"] and cid not in sample_clients(int(cfg["clients"]), int(cfg["clients-per-round"]), seed, rnd):
        # --same-draws: every node got the message; the ones gptfl-ray would not sample this
        # round send the global model back with weight 0, so FedAvg averages exactly its clients.
        content = RecordDict({"arrays": msg.content["arrays"],
                              "metrics": MetricRecord({"train_loss": 0.0, "num-examples": 0})})
        return Message(content=content, reply_to=msg)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    idx = torch.as_tensor(parts[cid])
    local = LocalTrainConfig(epochs=int(cfg["local-epochs"]), batch_size=int(cfg["batch-size"]),
                             lr=float(cfg["lr"]), momentum=float(cfg["momentum"]))
    res = client_update(model, get_flat(model), x[idx], y[idx], local, client_seed(seed, rnd, cid), client_id=cid)
    content = RecordDict({
        "arrays": ArrayRecord(model.state_dict()),
        "metrics": MetricRecord({"train_loss": float(res.loss), "num-examples": int(res.num_samples)}),
    })
    return Message(content=content, reply_to=msg)


# ----------------------------------------------------------------------------- ServerApp

ARGS: argparse.Namespace | None = None  # set by main(); the ServerApp runs in this process
TIMELINE: dict = {"round_end_s": {}}  # round -> seconds since T_START when its evaluation ran
RESULT: dict = {}

server_app = ServerApp()


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    a = ARGS
    # Flower samples with `random.sample` over node ids, which are random on every run, so the
    # draws still differ between runs (use --same-draws to train gptfl-ray's clients instead).
    random.seed(a.seed)
    ds, _ = build_task(a.seed, a.clients, a.alpha)
    model = build_global_model(ds, a.seed)
    held_out = HeldOut(ds)  # the CLI's evaluation: test split, and validation where there is one

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        m = held_out(model, None)
        TIMELINE["round_end_s"][server_round] = time.perf_counter() - T_START
        RESULT["history"].append({"round": server_round, **m})
        return MetricRecord({"accuracy": m["accuracy"], "loss": m["loss"]})

    RESULT["history"] = []
    k = a.clients if a.same_draws else a.clients_per_round
    strategy = FedAvg(
        fraction_train=k / a.clients,  # int(50 * 0.2) = 10 sampled per round
        fraction_evaluate=0.0,  # gptfl-ray evaluates only on the server
        min_train_nodes=k,
        min_available_nodes=a.clients,
    )
    train_config = ConfigRecord({
        "seed": a.seed, "clients": a.clients, "clients-per-round": a.clients_per_round, "alpha": a.alpha,
        "local-epochs": a.local_epochs, "batch-size": a.batch_size, "lr": a.lr, "momentum": a.momentum,
        "same-draws": bool(a.same_draws),
    })
    strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()), num_rounds=a.rounds,
                   train_config=train_config, evaluate_fn=evaluate_fn)


# ----------------------------------------------------------------------------- driver


def parse_args(argv=None) -> argparse.Namespace:
    p = add_job_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    p.add_argument("--client-cpus", type=float, default=1.0,
                   help="CPUs per virtual client (Flower's default is 2; 1 gives two actors on two cores)")
    p.add_argument("--same-draws", action="store_true",
                   help="a check, not a benchmark: train exactly gptfl-ray's clients each round (all nodes get "
                        "the message, the others answer with weight 0), so the accuracy curve should match "
                        "gptfl-ray's metrics.jsonl")
    p.add_argument("--json-out", default=None, help="also write the result JSON here")
    return p.parse_args(argv)


def main(argv=None, t_start: float | None = None) -> dict:
    global ARGS, T_START
    if t_start is not None:
        T_START = t_start
    ARGS = a = parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from proctree import TreeSampler

    import flwr
    import ray
    from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend
    from flwr.simulation import run_simulation

    sampler = TreeSampler(os.getpid())
    sampler.start()
    backend_config = {
        "client_resources": {"num_cpus": a.client_cpus, "num_gpus": 0.0},
        # run_simulation's own defaults, spelled out so the pre-start below uses them too.
        "init_args": {"logging_level": "WARNING", "log_to_driver": True},
    }
    # Start Ray with Flower's own RayBackend.init_ray (the same ray.init call and arguments the
    # backend would make; it then finds Ray running and skips it), so its start-up can be timed.
    t_ray0 = time.perf_counter()
    pre = RayBackend.__new__(RayBackend)
    pre.init_args_key = "init_args"
    pre.init_ray(backend_config)
    t_ray1 = time.perf_counter()

    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=a.clients,
                   backend_name="ray", backend_config=backend_config)
    t_fl_end = time.perf_counter()
    ray.shutdown()
    sampler.stop()
    t_end = time.perf_counter()

    ends = TIMELINE["round_end_s"]
    hist = RESULT.get("history", [])
    if not hist or max(ends) != a.rounds:
        raise SystemExit(f"flower run did not finish: evaluated rounds {sorted(ends)}")
    return emit(
        {
            "system": "flower",
            "flwr_version": flwr.__version__,
            "ray_version": ray.__version__,
            "torch_version": torch.__version__,
            "client_cpus": a.client_cpus,
            "same_draws": bool(a.same_draws),
            "ray_startup_s": round(t_ray1 - t_ray0, 3),
            "wall_excl_ray_startup_s": round((t_end - T_START) - (t_ray1 - t_ray0), 3),
            "simulation_s": round(t_fl_end - t_ray1, 3),  # run_simulation: actor pool + all rounds
            **sampler.report(),
        },
        wall_s=t_end - T_START,
        ends=ends,
        history=hist,
        rounds=a.rounds,
        json_out=a.json_out,
    )


if __name__ == "__main__":
    # Run the module under its importable name, not __main__: Flower pickles the ClientApp into
    # every message it sends an actor, and cloudpickle copies __main__ functions by value (with a
    # fresh, empty _ACTOR_CACHE each time) but references importable ones, so the cache survives.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import flower_digits

    flower_digits.main(t_start=T_START)
