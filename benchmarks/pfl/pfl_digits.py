"""pfl-research's simulator on exactly gptfl-ray's digits workload (benchmarks/pfl/README.md).

The same job as

    gptfl-ray federate --dataset digits --model cnn --clients 50 --partition dirichlet --alpha 0.1 \
        --clients-per-round 10 --rounds 30 --local-epochs 1 --batch-size 10 --lr 0.05 \
        --momentum 0 --seed 0

in pfl-research (Apple's `pfl`, PyTorch), one process, built like `flower/flower_digits.py`: from
gptfl-ray's own data set, split, model, local update and evaluation, so that only the FL framework
differs.

pfl's parts (its standard FedAvg set-up, as in its tutorials and benchmarks):

- `pfl.data.FederatedDataset.from_slices`: one pfl `Dataset` per client, and the user sampler
  that draws each round's cohort (`--sampler`, below);
- `pfl.aggregate.simulate.SimulatedBackend`: the cohort loop, the postprocessors and the
  `SumAggregator`; `pfl.aggregate.weighting.WeightByDatapoints` weights each update by the
  client's sample count;
- `pfl.algorithm.FederatedAveraging` (subclassed, below): `simulate_one_user` (global weights
  saved before and restored after each client, update = `get_model_difference`),
  `process_aggregated_statistics` (`statistics.average()`, then `apply_model_update`);
- `pfl.model.pytorch.PyTorchModel`, with pfl's FedAvg central optimizer `SGD(lr=1.0)`: the
  averaged update is applied as a gradient step of size 1, i.e. `params += mean delta`;
- `FederatedAlgorithm.run`: the round loop and callbacks, and pfl's default per-round metrics
  printout.

gptfl-ray's parts, shared with the other sides:

- data and split: `load_dataset("digits", seed)` + `Dataset.prepare`, `partition(..., "dirichlet")`;
- model: `ModelFactory("cnn", ..., seed)`: identical initial weights (wrapped in a module that
  adds the `loss` and `metrics` methods `PyTorchModel` requires);
- local update: `FederatedAveraging.train_one_user` is overridden to call gptfl-ray's
  `client_update` with `client_seed(seed, round, client)`. pfl's own local loop
  (`sgd_bridge().do_sgd`) walks a user's data in stored order with no shuffle, every epoch, and
  keeps a last batch of one; gptfl-ray reshuffles every epoch from the client's seed and skips a
  batch of one (`client_batches`), so pfl's loop cannot express the same update;
- evaluation: a pfl `TrainingProcessCallback` that runs `HeldOut` (test and validation split)
  before round 1 and after every round, as `--eval-every 1`. pfl's client-side evaluation
  (`do_evaluation`, which evaluates each client before and after training) is switched off, as
  Flower's `fraction_evaluate=0`: gptfl-ray evaluates only on the server.

`--sampler gptfl` (default) gives pfl a user sampler that returns gptfl-ray's
`sample_clients(clients, k, seed, round)` draws in order, so both train the same clients and the
accuracy curves should agree; `random` and `minimize_reuse` are pfl's own samplers (`random`
draws with replacement: a client can appear twice in a cohort).

Torch runs `--threads` intra-op threads (default 1, as gptfl-ray's executors; 0 keeps torch's
default). Prints one JSON object (also written to --json-out) in the format of flower_digits.py.
Runs in its own venv (see README.md):

    /work/pfl-venv/bin/python benchmarks/pfl/pfl_digits.py --rounds 2
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # before the heavy imports: "including start-up" starts here

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from pfl.aggregate.simulate import SimulatedBackend  # noqa: E402
from pfl.aggregate.weighting import WeightByDatapoints  # noqa: E402
from pfl.algorithm import FederatedAveraging, NNAlgorithmParams  # noqa: E402
from pfl.callback.base import TrainingProcessCallback  # noqa: E402
from pfl.data.federated_dataset import FederatedDataset  # noqa: E402
from pfl.data.sampling import get_user_sampler  # noqa: E402
from pfl.hyperparam import NNEvalHyperParams, NNTrainHyperParams  # noqa: E402
from pfl.metrics import Metrics, StringMetricName, Weighted  # noqa: E402
from pfl.model.pytorch import PyTorchModel  # noqa: E402

from gptfl_ray.data import load_dataset, partition  # noqa: E402
from gptfl_ray.fl.client import LocalTrainConfig, client_update  # noqa: E402
from gptfl_ray.fl.metrics import HeldOut  # noqa: E402
from gptfl_ray.fl.sampler import sample_clients  # noqa: E402
from gptfl_ray.models.factory import ModelFactory  # noqa: E402
from gptfl_ray.models.params import get_flat  # noqa: E402
from gptfl_ray.seeding import client_seed  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: peer_job
from peer_job import add_job_args, emit  # noqa: E402

DATASET, MODEL = "digits", "cnn"


class PflNet(torch.nn.Module):
    """gptfl-ray's model with the `loss` and `metrics` methods pfl's PyTorchModel asks for."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)

    def loss(self, x, y):
        self.train()
        return F.cross_entropy(self(x), y)

    @torch.no_grad()
    def metrics(self, x, y):
        self.eval()
        out = self(x)
        n = len(y)
        return {
            "loss": Weighted(float(F.cross_entropy(out, y, reduction="sum")), n),
            "accuracy": Weighted(float((out.argmax(1) == y).sum()), n),
        }


class GptflRoundSampler:
    """pfl user sampler (`callable() -> user id`) that replays gptfl-ray's per-round draws.

    pfl's `FederatedDataset.get_cohort(k)` calls it k times per round, so the i-th call of
    round r returns the i-th of `sample_clients(clients, k, seed, r)`.
    """

    def __init__(self, clients: int, k: int, seed: int):
        self.clients, self.k, self.seed = clients, k, seed
        self.round, self.todo = 0, []

    def __call__(self) -> int:
        if not self.todo:
            self.round += 1
            self.todo = [int(c) for c in sample_clients(self.clients, self.k, self.seed, self.round)]
        return self.todo.pop(0)


class GptflFedAvg(FederatedAveraging):
    """pfl's FederatedAveraging with gptfl-ray's local update and no client-side evaluation."""

    def __init__(self, seed: int, momentum: float):
        super().__init__()
        self.seed, self.momentum = seed, momentum

    def get_next_central_contexts(self, model, iteration, algorithm_params, model_train_params, model_eval_params=None):
        contexts, model, metrics = super().get_next_central_contexts(
            model, iteration, algorithm_params, model_train_params, model_eval_params
        )
        if contexts is not None:  # server-side evaluation only (HeldOutEvaluation below)
            contexts = tuple(dataclasses.replace(c, do_evaluation=False) for c in contexts)
        return contexts, model, metrics

    def train_one_user(self, initial_model_state, model, user_dataset, central_context):
        tp = central_context.model_train_params
        local = LocalTrainConfig(
            epochs=tp.get("local_num_epochs"),
            batch_size=tp.get("local_batch_size"),
            lr=tp.get("local_learning_rate"),
            momentum=self.momentum,
        )
        r = central_context.current_central_iteration + 1  # gptfl-ray counts rounds from 1
        cid = int(user_dataset.user_id)
        x, y = user_dataset.raw_data
        net = model.pytorch_model.net
        client_update(net, get_flat(net), x, y, local, client_seed(self.seed, r, cid), client_id=cid)
        # pfl's own update and weight from here on: local - initial, weighted by WeightByDatapoints.
        return model.get_model_difference(initial_model_state), Metrics()


class HeldOutEvaluation(TrainingProcessCallback):
    """Server-side evaluation with gptfl-ray's HeldOut, before training and after every round."""

    def __init__(self, held_out: HeldOut):
        self.held_out = held_out
        self.history: list[dict] = []
        self.round_end_s: dict[int, float] = {}

    def _evaluate(self, model, r: int) -> dict:
        row = {"round": r, **self.held_out(model.pytorch_model.net, None)}
        self.history.append(row)
        self.round_end_s[r] = time.perf_counter() - T_START
        return row

    def on_train_begin(self, *, model) -> Metrics:
        self._evaluate(model, 0)
        return Metrics()

    def after_central_iteration(self, aggregate_metrics, model, *, central_iteration):
        row = self._evaluate(model, central_iteration + 1)
        return False, Metrics([(StringMetricName("central test accuracy"), Weighted.from_unweighted(row["accuracy"]))])


def parse_args(argv=None) -> argparse.Namespace:
    p = add_job_args(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    p.add_argument(
        "--sampler",
        choices=("gptfl", "random", "minimize_reuse"),
        default="gptfl",
        help="gptfl: gptfl-ray's draws through a pfl user sampler; random / minimize_reuse: pfl's own",
    )
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--json-out", default=None, help="also write the result JSON here")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    a = parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    np.random.seed(a.seed)  # pfl's own random states (algorithm, backend, data) draw from np.random
    ds = load_dataset(DATASET, seed=a.seed)
    parts = partition(ds.y_train, a.clients, "dirichlet", seed=a.seed, alpha=a.alpha)
    x = torch.from_numpy(ds.prepare(ds.x_train))
    y = torch.from_numpy(ds.y_train.astype(np.int64))
    net = ModelFactory(MODEL, ds.input_shape, ds.num_classes, seed=a.seed)()

    if a.sampler == "gptfl":
        sampler = GptflRoundSampler(a.clients, a.clients_per_round, a.seed)
    else:
        sampler = get_user_sampler(a.sampler, list(range(a.clients)))
    train_data = FederatedDataset.from_slices(
        {cid: [x[torch.as_tensor(idx)], y[torch.as_tensor(idx)]] for cid, idx in enumerate(parts)}, sampler
    )
    backend = SimulatedBackend(training_data=train_data, val_data=None, postprocessors=[WeightByDatapoints()])
    pytorch_net = PflNet(net)
    model = PyTorchModel(
        model=pytorch_net,
        local_optimizer_create=torch.optim.SGD,  # unused: the local update is client_update's
        central_optimizer=torch.optim.SGD(pytorch_net.parameters(), lr=1.0),
    )
    algorithm_params = NNAlgorithmParams(
        central_num_iterations=a.rounds,
        evaluation_frequency=1,  # pfl's client-side evaluation; off anyway (GptflFedAvg)
        train_cohort_size=a.clients_per_round,
        val_cohort_size=0,
    )
    train_params = NNTrainHyperParams(
        local_num_epochs=a.local_epochs, local_learning_rate=a.lr, local_batch_size=a.batch_size
    )
    evaluation = HeldOutEvaluation(HeldOut(ds))
    GptflFedAvg(a.seed, a.momentum).run(
        algorithm_params=algorithm_params,
        backend=backend,
        model=model,
        model_train_params=train_params,
        model_eval_params=NNEvalHyperParams(local_batch_size=None),
        callbacks=[evaluation],
    )
    t_end = time.perf_counter()

    import pfl

    ends, hist = evaluation.round_end_s, evaluation.history
    if max(ends) != a.rounds:
        raise SystemExit(f"pfl run did not finish: evaluated rounds {sorted(ends)}")
    return emit(
        {
            "system": "pfl",
            "pfl_version": getattr(pfl, "__version__", None) or _dist_version("pfl"),
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "sampler": a.sampler,
        },
        wall_s=t_end - T_START,
        ends=ends,
        history=hist,
        rounds=a.rounds,
        json_out=a.json_out,
    )


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
    sys.exit(0)
