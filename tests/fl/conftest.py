"""Fixtures shared by the fl/ tests."""

import pytest
import ray


@pytest.fixture(scope="module")
def ray_runtime():
    """A 2-CPU loopback Ray for one module (test_engine.py keeps its own, with a logical GPU)."""
    if ray.is_initialized():  # another module left one running
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()
