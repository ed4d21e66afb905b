"""`ensure_ray` with a Ray already running in this process (a test, a notebook, a second stage)."""

import pytest
import ray

from gptfl_ray.errors import ConfigError
from gptfl_ray.ray_runtime import ensure_ray


@pytest.mark.ray
def test_running_ray_is_reused_but_a_bad_address_is_never_ignored():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=1, include_dashboard=False)
    try:
        gcs = ray.get_runtime_context().gcs_address
        assert ensure_ray(gcs) is False  # the cluster this process already joined: reused
        assert ensure_ray(None) is False
        # Before the fix a running Ray made --address a no-op: the run went ahead locally.
        with pytest.raises(ConfigError, match="no Ray cluster answers"):
            ensure_ray("127.0.0.1:1")
    finally:
        ray.shutdown()
