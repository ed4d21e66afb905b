"""Starting or joining Ray, once per command.

`--address` (or RAY_ADDRESS, which `ray job submit` sets) joins an existing cluster (`auto`
included). Without either a single-node Ray starts
that listens on 127.0.0.1 only, so nothing of a laptop run is reachable from the network:
Ray picks its node address from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when it is imported, and
"0" selects loopback (docs/architecture.md).
"""

from __future__ import annotations

import os

from gptfl_ray.errors import ConfigError

_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def quiet_ray_logs() -> None:
    """Ray Data and Train log every dataset execution at INFO on the driver; our rich progress
    bars already say what runs, so keep their loggers to warnings."""
    import logging

    import ray.data  # noqa: F401 - importing configures Ray Data's loggers; set levels after that

    for name in ("ray.train", "ray.tune", "ray.air"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # ERROR: Ray Data also warns that its own progress bars are off (we draw ours)
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def ensure_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: float | None = None) -> bool:
    """Initialise Ray unless it already is; True when this call started it (and owns shutdown)."""
    os.environ.setdefault(_LOOPBACK_ENV, "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # The driver's C++ core worker logs advisory "E" lines (e.g. Ray Data's actor-restart note)
    # straight to the terminal; real failures still surface as Python exceptions.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    import ray

    quiet_ray_logs()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")  # set by `ray job submit` on a cluster
    if address and address != "local":
        try:
            ray.init(address=address, configure_logging=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError("--address", f"cannot connect to a Ray cluster at {address!r} ({str(exc).splitlines()[0]})") from None
        return True
    if os.environ[_LOOPBACK_ENV] == "0":
        import ray._private.ray_constants as ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    kwargs = {}
    if num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    if num_gpus is not None:
        kwargs["num_gpus"] = num_gpus
    # address="local": always our own instance, never another session's cluster found on this machine
    ray.init(address="local", include_dashboard=False, configure_logging=False, log_to_driver=False, **kwargs)
    return True
