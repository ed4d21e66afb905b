"""Starting or joining Ray, once per command.

`--address` (or RAY_ADDRESS, which `ray job submit` sets) joins an existing cluster (`auto`
included). Without either a single-node Ray starts
that listens on 127.0.0.1 only, so nothing of a laptop run is reachable from the network:
Ray picks its node address from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when it is imported, and
"0" selects loopback (docs/architecture.md).

Start-up and exit are on the critical path of every short run, so they overlap what they can:

- `start_ray` begins that same start on a background thread and returns at once; the command
  goes on importing torch and loading data while Ray's processes come up, and the next
  `ensure_ray` waits for it. The thread stays alive until the process ends: Ray starts its node
  processes with PR_SET_PDEATHSIG, which fires when the *thread* that spawned them exits.
- A local Ray started here can preload modules into its worker processes (`preload`): the
  workers Ray starts as soon as the driver connects then import torch and the executor before any
  actor is asked for, instead of after.
- `stop_ray` (also run at exit for a local Ray started here) first ends the autoscaler monitor,
  which a single-node Ray without an autoscaling config does not use and which ignores SIGTERM
  until `ray.shutdown`'s one-second grace period runs out, then shuts Ray down.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from gptfl_ray.errors import ConfigError

_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# What an executor actor's process imports (fl/engine.py): the `preload` of a federating command.
ACTOR_MODULES = ("gptfl_ray.fl.engine",)


def verbose() -> bool:
    """`--log-level info|debug` (GPTFL_LOG_LEVEL): Ray's own logs and the workers' output come back."""
    return os.environ.get("GPTFL_LOG_LEVEL", "").lower() in ("debug", "info")


def quiet_ray_logs() -> None:
    """Ray Data and Train log every dataset execution at INFO on the driver; our rich progress
    bars already say what runs, so keep their loggers to warnings (unless `verbose()`).
    Called where Ray Data or Train is used, after importing it (importing Ray Data, ~1 s, sets its
    loggers up), not in `ensure_ray`: federating needs neither."""
    import logging

    import ray.data  # noqa: F401 - importing configures Ray Data's loggers; set levels after that

    if verbose():
        return

    for name in ("ray.train", "ray.tune", "ray.air"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # ERROR: Ray Data also warns that its own progress bars are off (we draw ours)
    logging.getLogger("ray.data").setLevel(logging.ERROR)


@dataclass
class _Start:
    """A start of Ray in flight on its own thread (`start_ray`)."""

    args: tuple
    done: threading.Event
    started: bool = False
    error: BaseException | None = None


_pending: _Start | None = None
_lock = threading.Lock()
_START_EXIT_WAIT_S = 120.0  # a start still in flight at exit gets this long to finish, then is stopped


class _NotMainThread(logging.Filter):
    """Ray warns that a ray.init off the main thread sets no SIGTERM handler; `start_ray` sets it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def start_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: float | None = None,
    preload: Sequence[str] = (),
) -> None:
    """Begin `ensure_ray(address, num_cpus, num_gpus, preload)` on a background thread and return
    at once; the next `ensure_ray` waits for it and raises what it raised. Does nothing when Ray
    already runs in this process or a start is already in flight."""
    global _pending
    import ray

    with _lock:
        if _pending is not None or ray.is_initialized():
            return
        if threading.current_thread() is threading.main_thread():
            # What ray.init does on the main thread: SIGTERM exits through atexit, so Ray is shut down.
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
            logging.getLogger("ray._private.worker").addFilter(_NotMainThread())
        start = _pending = _Start((address, num_cpus, num_gpus, tuple(preload)), threading.Event())
        atexit.register(_finish_start_at_exit, start)

    def run() -> None:
        try:
            start.started = _ensure_ray(*start.args)
        except BaseException as exc:  # noqa: BLE001 - handed to the ensure_ray that waits for it
            start.error = exc
        finally:
            start.done.set()
        threading.Event().wait()  # keep Ray's processes alive: their parent-death signal is this thread's

    threading.Thread(target=run, name="gptfl-ray-start", daemon=True).start()


def _finish_start_at_exit(start: _Start) -> None:
    """A process that exits (bad input, Ctrl-C) while its start is in flight lets the start end and
    then stops Ray: killed half-way, Ray's raylet would leave its agent processes running."""
    if start.done.is_set():
        return  # a finished start registered `_stop_at_exit`, which ran before this
    start.done.wait(_START_EXIT_WAIT_S)
    if start.done.is_set() and start.error is None and start.started:
        stop_ray()


def _join_pending() -> _Start | None:
    global _pending
    with _lock:
        start, _pending = _pending, None
    if start is not None:
        start.done.wait()
    return start


def ensure_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: float | None = None,
    preload: Sequence[str] = (),
) -> bool:
    """Initialise Ray unless it already is; True when this call started it (and owns shutdown).
    A start begun by `start_ray` is waited for first; the first call after it returns whether
    that start started Ray, and raises what it raised. `preload`: modules a local Ray's worker
    processes import as they start."""
    start = _join_pending()
    if start is not None:
        if start.error is not None:
            raise start.error
        # The early start was for this command; a call that asks for another cluster is still
        # checked against the running one below.
        if start.args[0] == address or address is None:
            return start.started
    return _ensure_ray(address, num_cpus, num_gpus, tuple(preload))


def _ensure_ray(address, num_cpus, num_gpus, preload) -> bool:
    os.environ.setdefault(_LOOPBACK_ENV, "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # The driver's C++ core worker logs advisory "E" lines (e.g. Ray Data's actor-restart note)
    # straight to the terminal; real failures still surface as Python exceptions.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    import ray

    if ray.is_initialized():
        # An explicit --address must not be ignored because this process (a test, a notebook)
        # already runs Ray: an address nobody answers on is still bad input, and another
        # cluster than the one joined cannot be honoured without ray.shutdown().
        if address and address != "local":
            check_reachable(address)
            try:  # Ray Client (ray://) sessions have no GCS address here: nothing to compare
                current = ray.get_runtime_context().gcs_address
            except Exception:  # noqa: BLE001
                current = None
            if (
                current
                and address != "auto"
                and not address.startswith("ray://")
                and _host_port(address) != _host_port(current)
            ):
                raise ConfigError(
                    "address",
                    f"this process already runs Ray at {current}; it cannot also "
                    f"join {address!r} (call ray.shutdown() first)",
                )
        return False
    address = address or os.environ.get("RAY_ADDRESS")  # set by `ray job submit` on a cluster
    if address and address != "local":
        check_reachable(address)
        if os.environ[_LOOPBACK_ENV] == "0" and _is_loopback(address):
            # A head on 127.0.0.1 (README: many short runs on one machine): unless this process
            # imported Ray with the variable already at 0, Ray rewrites a loopback address to
            # this machine's network address, where nothing listens, and ray.init retries for
            # minutes instead of connecting.
            _force_loopback()
        try:
            ray.init(address=address, configure_logging=False, log_to_driver=verbose())
        except Exception as exc:  # noqa: BLE001 - every failure to join is one line about --address
            raise ConfigError(
                "address", f"cannot connect to a Ray cluster at {address!r} ({str(exc).splitlines()[0]})"
            ) from None
        return True
    if os.environ[_LOOPBACK_ENV] == "0":
        _force_loopback()
    kwargs = {}
    if num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    if num_gpus is not None:
        kwargs["num_gpus"] = num_gpus
    if preload:
        kwargs["_system_config"] = {"preload_python_modules": list(preload)}
    # address="local": always our own instance, never another session's cluster found on this machine
    context = ray.init(
        address="local", include_dashboard=False, configure_logging=False, log_to_driver=verbose(), **kwargs
    )
    gcs_address = getattr(context, "address_info", {}).get("gcs_address")
    if gcs_address:  # (None where ray.init is replaced, as in a test)
        atexit.register(_stop_at_exit, gcs_address)
    return True


def stop_ray() -> None:
    """`ray.shutdown()`, ending the local node's autoscaler monitor first (see the module text)."""
    import ray

    if not ray.is_initialized():
        return
    _end_monitor()
    ray.shutdown()


def _stop_at_exit(gcs_address: str) -> None:
    import ray

    # Only the local Ray this registration was made for; one started later registers its own.
    if ray.is_initialized() and ray.get_runtime_context().gcs_address == gcs_address:
        stop_ray()


def _end_monitor() -> None:
    """SIGKILL the autoscaler monitor of a head node this process started (none when it joined a
    cluster). Checked against Ray 2.60.0, like `_force_loopback`; any other layout is left alone."""
    import ray._private.ray_constants as ray_constants
    import ray._private.worker as ray_worker

    node = getattr(ray_worker, "_global_node", None)
    procs = getattr(node, "all_processes", None) or {}
    for info in procs.get(getattr(ray_constants, "PROCESS_TYPE_MONITOR", "monitor"), []):
        proc = getattr(info, "process", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=1.0)
            except Exception:  # noqa: BLE001 - ray.shutdown reaps it as before
                pass


def _force_loopback() -> None:
    """Ray's private API, fenced here: this is the package's only use of it (tests/test_ray_runtime.py
    checks that no other module touches `ray._private`). Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER
    into `ray._private.ray_constants.ENABLE_RAY_CLUSTER` once, at `import ray`; a process that imported
    Ray before setting the variable still binds to loopback when the constant is set again before
    `ray.init`. Checked against Ray 2.60.0, the release this project's venv resolves; pyproject.toml
    admits older ones, and a Ray without the constant is refused below rather than left on the network."""
    import ray._private.ray_constants as ray_constants

    if not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        raise RuntimeError(
            "this Ray has no ray._private.ray_constants.ENABLE_RAY_CLUSTER; gptfl_ray/ray_runtime.py cannot "
            "keep a local Ray on 127.0.0.1 (checked against Ray 2.60.0)"
        )
    ray_constants.ENABLE_RAY_CLUSTER = False


CONNECT_TIMEOUT_S = 3.0


def _host_port(address: str) -> tuple[str, int] | None:
    if address == "auto":  # the address `ray start` left for this machine, if any
        try:
            with open(os.path.join(os.environ.get("RAY_TMPDIR", "/tmp/ray"), "ray_current_cluster")) as fh:
                address = fh.read().strip()
        except OSError:
            return None  # ray.init says there is no cluster to join, at once
    for scheme in ("ray://", "http://", "https://"):
        if address.startswith(scheme):
            address = address[len(scheme) :]
    host, sep, port = address.rstrip("/").rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def _is_loopback(address: str) -> bool:
    import ipaddress

    hp = _host_port(address)
    if hp is None:
        return False
    if hp[0] == "localhost":
        return True
    try:
        return ipaddress.ip_address(hp[0]).is_loopback
    except ValueError:
        return False


def check_reachable(address: str) -> None:
    """An address nobody answers on fails within seconds, not after ray.init's long retries."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ConfigError(
            "address", f"no Ray cluster answers at {address!r} ({hp[0]}:{hp[1]}: {exc.strerror or exc})"
        ) from None


@dataclass(frozen=True)
class Request:
    """`count` actors (None: as many as fit) of `cpus` CPUs and `gpus` GPUs each."""

    what: str  # "client executor", "generator actor", "training worker"
    count: int | None
    cpus: float
    gpus: float
    count_option: str
    gpu_option: str
    cpu_option: str = ""


def _fit(nodes: list[dict], cpus: float, gpus: float) -> int:
    """How many such actors the alive nodes hold, each actor on one node."""
    eps = 1e-9
    total = 0
    for node in nodes:
        if not node.get("Alive", False):
            continue
        res = node.get("Resources", {})
        n = math.floor(res.get("CPU", 0.0) / cpus + eps) if cpus > 0 else 10**9
        if gpus > 0:
            n = min(n, math.floor(res.get("GPU", 0.0) / gpus + eps))
        total += n
    return total


def check_resources(requests: list[Request], nodes: list[dict] | None = None) -> None:
    """Every resource request against the cluster, before any work: a request Ray can never
    grant would otherwise wait forever. One ConfigError naming the setting that asks too much."""
    requests = [r for r in requests if r is not None]
    if not requests:
        return
    import ray

    nodes = ray.nodes() if nodes is None else nodes
    have = {"CPU": 0.0, "GPU": 0.0}
    for node in nodes:
        if node.get("Alive", False):
            for k in have:
                have[k] += node.get("Resources", {}).get(k, 0.0)
    cluster = f"the cluster has {have['CPU']:g} CPU and {have['GPU']:g} GPU"
    for r in requests:
        need = f"{r.cpus:g} CPU" + (f" + {r.gpus:g} GPU" if r.gpus > 0 else "")
        n = _fit(nodes, r.cpus, r.gpus)
        if n == 0:
            option = r.gpu_option if r.gpus > 0 and _fit(nodes, r.cpus, 0) > 0 else (r.cpu_option or r.gpu_option)
            raise ConfigError(option, f"no Ray node has room for one {r.what} of {need}; {cluster}")
        if r.count is not None and r.count > n:
            raise ConfigError(
                r.count_option, f"{r.count} {r.what}s of {need} each do not fit; {cluster} (room for {n})"
            )


def client_requests(engine) -> list[Request]:
    """The FL client-executor pool of an EngineConfig (nothing for the local backend)."""
    if engine.backend != "ray":
        return []
    return [
        Request(
            "client executor",
            engine.num_actors,
            engine.client_cpus,
            engine.client_gpus,
            "engine.num_actors",
            "engine.client_gpus",
            "engine.client_cpus",
        )
    ]


def generate_request(gen) -> Request | None:
    """A GenerateConfig's Ray Data actor pool (one CPU each, Ray Data's default for actors)."""
    if gen.engine != "ray":
        return None
    return Request("generator actor", gen.gen_actors, 1.0, gen.gen_gpus, "generate.gen_actors", "generate.gen_gpus")


def train_request(pre) -> Request | None:
    """A PretrainConfig's Ray Train workers (one CPU each, plus --train-gpus)."""
    if pre.train_workers == 0:
        return None
    return Request(
        "training worker", pre.train_workers, 1.0, pre.train_gpus, "pretrain.train_workers", "pretrain.train_gpus"
    )
