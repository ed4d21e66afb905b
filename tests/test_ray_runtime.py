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


def _ray_processes() -> set[int]:
    """pids of Ray's own processes on this machine (its binaries, its Python services, its workers)."""
    from pathlib import Path

    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if cmd.startswith("ray::") or any(k in cmd for k in ("gcs_server", "/raylet", "ray/dashboard", "ray/_private")):
            found.add(int(proc.name))
    return found


@pytest.mark.ray
def test_a_process_that_exits_while_its_start_is_in_flight_leaves_no_ray_process():
    """Bad input found while Ray still starts (federate loads the data meanwhile): the command exits
    with its code, and Ray's processes end with it - killed half-way, the raylet's agents lived on."""
    import subprocess
    import sys
    import time

    before = _ray_processes()
    # The child exits once its raylet has started its agents, while ray.init still waits for the raylet.
    child = """
import os, sys, time
from pathlib import Path
import ray
from gptfl_ray.ray_runtime import start_ray

def children(pid):
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    except OSError:
        return []

start_ray(num_cpus=1)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    raylets = [c for c in children(os.getpid()) if b"/raylet" in Path(f"/proc/{c}/cmdline").read_bytes()]
    if raylets and children(raylets[0]):
        break
    time.sleep(0.01)
print("in flight" if not ray.is_initialized() else "already up", flush=True)
sys.exit(2)
"""
    done = subprocess.run([sys.executable, "-c", child], timeout=120, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    deadline = time.monotonic() + 15
    while (left := _ray_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left
    if "in flight" not in done.stdout:
        pytest.skip("Ray came up before the child could exit during its start: the case was not reached")


@pytest.mark.parametrize(
    "address, loopback",
    [("127.0.0.1:6379", True), ("localhost:6379", True), ("[::1]:6379", True), ("10.0.0.5:6379", False)],
)
def test_joining_a_loopback_head_keeps_ray_on_loopback(monkeypatch, address, loopback):
    """`--address 127.0.0.1:PORT` from a process that imported Ray without
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: before the fix Ray rewrote the address to the machine's
    network address, where the head does not listen, and `ray.init` hung."""
    import ray._private.ray_constants as ray_constants

    import gptfl_ray.ray_runtime as rt

    _shutdown()
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", True)  # as if Ray was imported without it
    monkeypatch.setattr(rt, "check_reachable", lambda a: None)
    seen = {}
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw, cluster=ray_constants.ENABLE_RAY_CLUSTER))
    assert ensure_ray(address) is True
    assert seen["address"] == address
    assert seen["cluster"] is (not loopback)
