"""The Ray engine on a multi-node cluster (ray.cluster_utils.Cluster: a head and two worker
nodes in this process tree, all on 127.0.0.1), reached through `address` as a user would."""

from __future__ import annotations

import numpy as np
import pytest

from gptfl_ray.config import EngineConfig
from gptfl_ray.data.digits import load_digits_dataset
from gptfl_ray.data.partition import partition
from gptfl_ray.fl.aggregate import finalize
from gptfl_ray.fl.client import LocalTrainConfig
from gptfl_ray.fl.executor import ExecutorSpec, LocalEngine
from gptfl_ray.fl.sampler import sample_clients
from gptfl_ray.models.factory import ModelFactory
from gptfl_ray.models.params import get_flat

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from gptfl_ray.fl.engine import RayEngine  # noqa: E402

NUM_CLIENTS, PER_ROUND = 12, 6


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def test_actors_land_on_every_node_and_match_local(cluster):
    ds = load_digits_dataset()
    parts = partition(ds.y_train, NUM_CLIENTS, "iid", 0)
    spec = ExecutorSpec(
        model_fn=ModelFactory("mlp", ds.input_shape, ds.num_classes), local=LocalTrainConfig(epochs=1), seed=0
    )
    x, y = ds.prepare(ds.x_train), ds.y_train.astype(np.int64)

    def federate(engine):
        params = get_flat(spec.model_fn())
        for r in (1, 2):
            ids = sample_clients(NUM_CLIENTS, PER_ROUND, 0, r)
            params = params + finalize(engine.run_round(params, ids, r).partial).delta
        return params

    expected = federate(LocalEngine(spec, x, y, parts))
    assert not ray.is_initialized()
    eng = RayEngine(spec, x, y, parts, EngineConfig(backend="ray", address=cluster.address))
    try:
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        assert len(alive) == 3
        assert eng.num_actors == 3  # one 1-CPU slot per node, sized from the nodes' resources
        assert {i["node_id"] for i in eng.actor_info} == alive
        assert eng.describe() == "ray: 3 actors x 1 CPU on 3 node(s)"
        got = federate(eng)
    finally:
        eng.close()
    assert not ray.is_initialized()  # it connected, so close() disconnects
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
