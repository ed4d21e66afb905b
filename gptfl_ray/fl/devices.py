"""Device heterogeneity: how fast each client is, when it is online, and how long a round takes.

Cross-device FL runs on phones that differ by an order of magnitude in speed and are online only
part of the day (Bonawitz et al. 2019, "Towards federated learning at scale"; FedScale, Lai et
al. 2022, whose device-capacity and availability traces this module reads). Nothing here trains:
the simulator keeps running every client on whatever executor is free, and this module decides,
from simulated device speeds, which of the selected clients the server would have heard from in
time and what the round's wall-clock time would have been.

- Speed: every client gets seconds per training sample and a link bandwidth, either drawn from a
  named distribution (`lognormal`: median `sec_per_sample` and `bandwidth_kbps`, log-std
  `speed_sigma`, FedScale's default tail skew 0.6) or read from a FedScale device-capacity file
  (`{client: {"computation": ms per sample (inference), "communication": kbit/s}}`, pickle or JSON;
  like FedScale, training costs 3x the inference latency). A client's time for a round is
  samples x epochs x sec_per_sample + (bits down + bits up) / bandwidth.
- Availability: `always`; `bernoulli` (online with probability `avail_p` each round); `diurnal`
  (online for an `avail_p` share of every `diurnal_period` seconds, at a phase drawn per client);
  or a FedScale availability trace (`{client: {"active": [...], "inactive": [...], "finish_time": T}}`:
  online while active[j] <= t mod T <= inactive[j]). Only online clients can be selected.
- A round either has a `deadline` (updates later than it are dropped and counted as
  stragglers; the server waits until the deadline if anyone is late) or over-selects
  (`over_select` x k clients are asked, the first k to finish are kept, the round ends with
  the k-th; both can be combined).

Every draw derives from the seed (and the round for `bernoulli`), never from the executors, so
the schedule is the same whatever the actor count, and resumes replay it from the saved clock.
Trace clients map onto simulated clients as FedScale maps them: the i-th simulated client takes
the (i mod size)-th entry of the trace in key order.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gptfl_ray.errors import ConfigError
from gptfl_ray.fields import check_instance

SPEEDS = ("lognormal", "uniform")
AVAILABILITIES = ("always", "bernoulli", "diurnal")
_DEVICE_TAG = 0xDE71CE
_AVAIL_TAG = 0xA7A1
IDLE_WAIT_S = 60.0  # with nobody online and no deadline, the server tries again a minute later


def _check(cond: bool, option: str, problem: str) -> None:
    if not cond:
        raise ConfigError(option, problem)


def _is_file(name: str) -> bool:
    return name.endswith((".pkl", ".pickle", ".json"))


@dataclass(frozen=True)
class DeviceConfig:
    """`[devices]` in config.toml; `devices=None` (the default) simulates no device at all."""

    devices: str | None = None  # lognormal | uniform | a FedScale device-capacity file (.pkl/.json)
    availability: str = "always"  # always | bernoulli | diurnal | a FedScale availability trace
    sec_per_sample: float = 0.005  # median seconds per training sample (FedScale's mean_seconds_per_sample)
    bandwidth_kbps: float = 10_000.0  # median link speed, kbit/s
    speed_sigma: float = 0.6  # log-std of compute speed and bandwidth (FedScale's tail_skew)
    avail_p: float = 0.8  # bernoulli: chance to be online per round; diurnal: share of the period online
    diurnal_period: float = 86_400.0  # seconds
    deadline: float | None = None  # seconds a round waits for updates
    over_select: float = 1.0  # ask ceil(over_select * k) clients, keep the first k to finish

    def __post_init__(self):
        check_instance(self, "devices")
        if self.devices is not None:
            _check(
                self.devices in SPEEDS or _is_file(self.devices),
                "devices.devices",
                f"unknown device model {self.devices!r}; choose from {', '.join(SPEEDS)} or a FedScale .pkl/.json device-capacity file",
            )
        _check(
            self.availability in AVAILABILITIES or _is_file(self.availability),
            "devices.availability",
            f"unknown availability {self.availability!r}; choose from {', '.join(AVAILABILITIES)} or a FedScale .pkl/.json trace",
        )
        _check(self.sec_per_sample > 0, "devices.sec_per_sample", f"must be > 0, got {self.sec_per_sample}")
        _check(self.bandwidth_kbps > 0, "devices.bandwidth_kbps", f"must be > 0, got {self.bandwidth_kbps}")
        _check(self.speed_sigma >= 0, "devices.speed_sigma", f"must be >= 0, got {self.speed_sigma}")
        _check(0 < self.avail_p <= 1, "devices.avail_p", f"must be in (0, 1], got {self.avail_p}")
        _check(self.diurnal_period > 0, "devices.diurnal_period", f"must be > 0, got {self.diurnal_period}")
        if self.deadline is not None:
            _check(self.deadline > 0, "devices.deadline", f"must be > 0 seconds, got {self.deadline}")
        _check(self.over_select >= 1, "devices.over_select", f"must be >= 1, got {self.over_select}")
        for option, value in (("devices.devices", self.devices), ("devices.availability", self.availability)):
            if value is not None and _is_file(value):  # found missing before anything is written
                _check(Path(value).is_file(), option, f"trace file {value} does not exist")
        if self.devices is None:
            _check(
                self.deadline is None and self.over_select == 1 and self.availability == "always",
                "devices.devices",
                "`devices.deadline`, `devices.over_select` and `devices.availability` need a device model (`devices.devices` lognormal, uniform or a trace file)",
            )

    @property
    def enabled(self) -> bool:
        return self.devices is not None


# ---------------------------------------------------------------- trace files


class _PlainUnpickler(pickle.Unpickler):
    """Trace pickles are plain dicts of numbers: refuse anything that would run code."""

    _ALLOWED = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing {module}.{name}: a trace holds only numbers, lists and dicts")


def load_trace(path: str, option: str) -> list[dict]:
    """A FedScale trace (pickle or JSON dict keyed by client) as a list in key order."""
    p = Path(path)
    try:
        if p.suffix == ".json":
            data = json.loads(p.read_text("utf-8"))
        else:
            with open(p, "rb") as fh:
                data = _PlainUnpickler(fh).load()
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
        raise ConfigError(option, f"cannot read trace {path} ({exc})") from None
    if not isinstance(data, dict) or not data or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(option, f"{path} is not a FedScale trace (a non-empty dict of per-client dicts)")

    def key(k):
        try:
            return (0, float(k), "")
        except (TypeError, ValueError):
            return (1, 0.0, str(k))

    return [data[k] for k in sorted(data, key=key)]


def _capacity_from_trace(path: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    rows = load_trace(path, "devices.devices")
    try:
        comp = np.array([float(r["computation"]) for r in rows])
        comm = np.array([float(r["communication"]) for r in rows])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            "devices.devices", f"{path}: every client needs numeric 'computation' and 'communication' ({exc})"
        ) from None
    if not (np.all(comp > 0) and np.all(comm > 0)):
        raise ConfigError("devices.devices", f"{path}: 'computation' and 'communication' must be > 0")
    idx = np.arange(n) % len(rows)
    # FedScale: 'computation' is inference ms per sample; a training pass costs about 3x that.
    return 3.0 * comp[idx] / 1000.0, comm[idx]


def _availability_from_trace(path: str, n: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    rows = load_trace(path, "devices.availability")
    out = []
    for r in rows:
        try:
            act = np.asarray(r["active"], dtype=float)
            ina = np.asarray(r["inactive"], dtype=float)
            fin = float(r["finish_time"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                "devices.availability", f"{path}: every client needs 'active', 'inactive' and 'finish_time' ({exc})"
            ) from None
        if len(act) != len(ina) or fin <= 0:
            raise ConfigError(
                "devices.availability", f"{path}: 'active' and 'inactive' must pair up and 'finish_time' be > 0"
            )
        out.append((act, ina, fin))
    return [out[i % len(out)] for i in range(n)]


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class RoundPlan:
    """Who the server hears from in time, and how long the round takes in simulated seconds."""

    selected: np.ndarray  # asked to train (sorted ids)
    kept: np.ndarray  # whose updates count (sorted ids)
    stragglers: np.ndarray  # finished after the deadline: dropped
    surplus: np.ndarray  # over-selected and slower than the first k: discarded
    duration: float
    online: int  # clients online when the round started


class DeviceModel:
    """Per-client speeds and availability for one run, all drawn from the seed."""

    def __init__(self, cfg: DeviceConfig, num_clients: int, seed: int):
        if not cfg.enabled:
            raise ValueError("DeviceModel needs a device model (cfg.devices)")
        self.cfg = cfg
        self.n = int(num_clients)
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, _DEVICE_TAG])
        if cfg.devices == "uniform":
            self.sec_per_sample = np.full(self.n, cfg.sec_per_sample)
            self.bandwidth = np.full(self.n, cfg.bandwidth_kbps)
        elif cfg.devices == "lognormal":
            # speed and link drawn independently: a fast phone may sit on a slow network
            self.sec_per_sample = cfg.sec_per_sample * rng.lognormal(0.0, cfg.speed_sigma, self.n)
            self.bandwidth = cfg.bandwidth_kbps * rng.lognormal(0.0, cfg.speed_sigma, self.n)
        else:
            self.sec_per_sample, self.bandwidth = _capacity_from_trace(cfg.devices, self.n)
        self.phase = rng.random(self.n)  # diurnal: where in its day each client starts
        self.trace = _availability_from_trace(cfg.availability, self.n) if _is_file(cfg.availability) else None

    def online(self, t: float, round_idx: int) -> np.ndarray:
        """Mask of clients online at simulated time t (seconds since the run's start)."""
        kind = self.cfg.availability
        if kind == "always":
            return np.ones(self.n, bool)
        if kind == "bernoulli":
            rng = np.random.default_rng([self.seed, int(round_idx), _AVAIL_TAG])
            return rng.random(self.n) < self.cfg.avail_p
        if kind == "diurnal":
            return np.mod(t / self.cfg.diurnal_period + self.phase, 1.0) < self.cfg.avail_p
        out = np.zeros(self.n, bool)
        for i, (act, ina, fin) in enumerate(self.trace):
            tt = t % fin
            out[i] = bool(np.any((act <= tt) & (tt <= ina)))
        return out

    def completion_times(
        self, ids: np.ndarray, sizes: np.ndarray, epochs: int, bytes_down: int, bytes_up: int
    ) -> np.ndarray:
        """Seconds from the model's broadcast until each client's update arrives."""
        ids = np.asarray(ids, dtype=np.int64)
        compute = np.asarray(sizes, dtype=float)[ids] * epochs * self.sec_per_sample[ids]
        comm = (bytes_down + bytes_up) * 8.0 / 1000.0 / self.bandwidth[ids]
        return compute + comm

    def selection_size(self, k: int) -> int:
        return int(math.ceil(k * self.cfg.over_select - 1e-9))

    def plan(
        self,
        selected: np.ndarray,
        k: int,
        sizes: np.ndarray,
        epochs: int,
        bytes_down: int,
        bytes_up: int,
        online: int | None = None,
    ) -> RoundPlan:
        """Keep the first k of `selected` to finish (all of them without over-selection) within the deadline."""
        selected = np.sort(np.asarray(selected, dtype=np.int64))
        empty = np.zeros(0, np.int64)
        if len(selected) == 0:
            wait = self.cfg.deadline if self.cfg.deadline is not None else IDLE_WAIT_S
            return RoundPlan(selected, empty, empty, empty, float(wait), int(online or 0))
        t = self.completion_times(selected, sizes, epochs, bytes_down, bytes_up)
        order = np.lexsort((selected, t))  # by finish time, ties by id
        deadline = self.cfg.deadline
        on_time = order if deadline is None else order[t[order] <= deadline]
        first = on_time[:k] if self.cfg.over_select > 1 else on_time
        kept = np.sort(selected[first])
        late = np.setdiff1d(selected, selected[on_time])
        surplus = np.setdiff1d(selected[on_time], kept)
        if len(first) == 0:
            duration = float(deadline)
        elif self.cfg.over_select > 1 and len(first) == k:
            duration = float(t[first[-1]])  # the k-th update closes the round
        elif len(late):
            duration = float(deadline)  # someone is late: the server waits out the deadline
        else:
            duration = float(t[first].max())
        return RoundPlan(selected, kept, late, surplus, duration, int(len(selected) if online is None else online))

    def describe(self) -> dict:
        return {
            "devices": self.cfg.devices,
            "availability": self.cfg.availability,
            "sec_per_sample_median": float(np.median(self.sec_per_sample)),
            "bandwidth_kbps_median": float(np.median(self.bandwidth)),
            "deadline": self.cfg.deadline,
            "over_select": self.cfg.over_select,
        }
