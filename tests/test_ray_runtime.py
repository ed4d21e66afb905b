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


def test_rays_private_api_is_used_in_ray_runtime_only():
    """Every use of `ray._private` (or another underscore module of Ray) sits in gptfl_ray/ray_runtime.py."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    users = set()
    for path in [*(root / "gptfl_ray").rglob("*.py"), *(root / "cli").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ray":
                names = [f"ray.{node.attr}"]
            if any(n.startswith("ray.") and any(part.startswith("_") for part in n.split(".")[1:]) for n in names):
                users.add(path.relative_to(root).as_posix())
    assert users == {"gptfl_ray/ray_runtime.py"}


def _shutdown():
    if ray.is_initialized():
        ray.shutdown()


def test_a_start_in_the_background_hands_its_error_to_the_next_ensure_ray():
    from gptfl_ray.ray_runtime import start_ray

    _shutdown()
    start_ray("127.0.0.1:1")  # returns at once; the failure is raised where the command waits
    with pytest.raises(ConfigError, match="no Ray cluster answers"):
        ensure_ray("127.0.0.1:1")
    assert not ray.is_initialized()


@pytest.mark.ray
def test_a_background_start_outlives_its_thread_preloads_workers_and_stop_ray_ends_the_monitor():
    import time

    from gptfl_ray.ray_runtime import start_ray, stop_ray

    _shutdown()
    start_ray(num_cpus=1, preload=("gptfl_ray.fl.engine",))
    start_ray(num_cpus=1)  # a second call while the first is in flight does nothing
    try:
        assert ensure_ray() is True  # the background start started Ray: this command owns it
        assert ensure_ray() is False
        time.sleep(1.0)  # Ray's processes are children of the start thread; they must still run

        @ray.remote(num_cpus=1)
        def preloaded():
            import sys

            return "gptfl_ray.fl.engine" in sys.modules

        assert ray.get(preloaded.remote(), timeout=60) is True
        import ray._private.worker as ray_worker

        monitors = ray_worker._global_node.all_processes["monitor"]
        assert monitors and all(m.process.poll() is None for m in monitors)
    finally:
        stop_ray()
    assert not ray.is_initialized()
    assert all(m.process.poll() is not None for m in monitors)
