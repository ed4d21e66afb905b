"""`gptfl-ray simulate --address` against a running multi-node Ray cluster (head + 2 nodes on
loopback, `ray.cluster_utils.Cluster`): the run completes and client work lands on every node."""

import json

import pytest
import ray
from ray.cluster_utils import Cluster
from typer.testing import CliRunner

from gptfl_ray.cli.main import app


@pytest.mark.ray
def test_simulate_against_a_three_node_cluster(tmp_path):
    # An earlier test's in-process Ray would be reused by --address; start from none.
    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        run = tmp_path / "run"
        res = CliRunner().invoke(
            app,
            [
                "simulate",
                "--address",
                cluster.address,
                "--clients",
                "6",
                "--clients-per-round",
                "3",
                "--rounds",
                "2",
                "--local-epochs",
                "1",
                "--per-class",
                "8",
                "--pretrain-epochs",
                "1",
                "--train-workers",
                "0",
                "--client-cpus",
                "1",
                "--variants",
                "fedavg",
                "--output-dir",
                str(run),
            ],
        )
        assert res.exit_code == 0, res.output
        engine = json.loads((run / "federate" / "fedavg" / "engine.json").read_text())
        nodes = {a["node_id"] for a in engine["actors"]}
        assert len(engine["actors"]) == 3 and len(nodes) == 3  # one executor on each node
        assert len({n["NodeID"] for n in ray.nodes() if n["Alive"]}) == 3
        summary = json.loads((run / "summary.json").read_text())
        assert summary["variants"]["fedavg"]["final_round"] == 2
    finally:
        ray.shutdown()
        cluster.shutdown()
