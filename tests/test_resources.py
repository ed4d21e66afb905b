"""Resource requests against the cluster before any work (ray_runtime.check_resources)."""

import pytest

from gptfl_ray.errors import ConfigError
from gptfl_ray.ray_runtime import Request, check_reachable, check_resources

NODES = [
    {"Alive": True, "NodeID": "a", "Resources": {"CPU": 4.0, "GPU": 1.0}},
    {"Alive": True, "NodeID": "b", "Resources": {"CPU": 2.0}},
    {"Alive": False, "NodeID": "c", "Resources": {"CPU": 64.0, "GPU": 8.0}},
]


def req(count, cpus, gpus):
    return Request("generator actor", count, cpus, gpus, "generate.gen_actors", "generate.gen_gpus")


@pytest.mark.parametrize(
    "r, option",
    [
        (req(1, 1, 2), "generate.gen_gpus"),  # one actor of 2 GPUs: no node has 2
        (req(2, 1, 1), "generate.gen_actors"),  # two 1-GPU actors: one GPU in the cluster
        (req(7, 1, 0), "generate.gen_actors"),  # 6 CPUs alive (the dead node does not count)
    ],
)
def test_requests_that_can_never_be_granted(r, option):
    with pytest.raises(ConfigError) as exc:
        check_resources([r], NODES)
    assert exc.value.subject == option


def test_requests_that_fit():
    check_resources([req(4, 0.5, 0.25), req(6, 1, 0), req(None, 1, 0)], NODES)


def test_unreachable_address_is_quick():
    with pytest.raises(ConfigError) as exc:
        check_reachable("127.0.0.1:1")
    assert exc.value.subject == "address"


@pytest.mark.ray
def test_against_a_real_ray_with_one_logical_gpu():
    import ray

    from gptfl_ray.ray_runtime import ensure_ray

    if ray.is_initialized():
        ray.shutdown()
    ensure_ray(num_cpus=2, num_gpus=1)
    try:
        check_resources([req(1, 1, 1)])
        with pytest.raises(ConfigError, match="generate.gen_gpus"):
            check_resources([req(1, 1, 2)])
    finally:
        ray.shutdown()
