"""The cross-device parts of a round: who is asked and heard from, and what DP releases.

It sits between the sampler and the server step of `fl/loop.py`:

- with a device model (`--devices`, fl/devices.py) only online clients are asked, over-selection
  asks more than k, the round keeps who finishes first or within the deadline, and a simulated
  clock advances by each round's duration;
- with central DP (`--dp-noise` / `--dp-epsilon`, privacy/dp.py) clients are sampled as the
  accountant assumes (Poisson, or a fixed-size draw), each client clips and weights its update
  with the round's clip, and the server adds the Gaussian noise to the sum (plain, or after the
  secure sum: the server never sees an un-noised individual update either way) and spends
  privacy, reported as epsilon after every round.

Without either it picks exactly what the plain sampler picks. The adaptive clip and the clock
are the only state; they travel in the checkpoint's metadata, so resume is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gptfl_ray.errors import ConfigError
from gptfl_ray.fl.aggregate import Aggregate
from gptfl_ray.fl.aggregator import Aggregator
from gptfl_ray.fl.devices import DeviceModel
from gptfl_ray.fl.sampler import clients_per_round, poisson_sample, sample_among, sample_clients
from gptfl_ray.privacy.dp import DPMechanism


@dataclass(frozen=True)
class Selection:
    ids: np.ndarray  # who trains and whose update counts
    selected: int  # who was asked (each downloads the model)
    info: dict  # round-log fields


class CrossDevice:
    def __init__(
        self, cfg, parts, num_params: int, wire_copies: int, aggregator: Aggregator, resumed: dict | None = None
    ):
        fl = self.fl = cfg.fl
        self.aggregator = aggregator  # plain or secure summation of DP's contributions
        self.n = len(parts)
        self.sizes = np.array([len(p) for p in parts], dtype=np.int64)
        self.k = clients_per_round(self.n, fl.sample_rate, fl.clients_per_round)
        self.num_params = int(num_params)
        self.model_bytes = 4 * self.num_params * wire_copies
        self.devices = DeviceModel(cfg.devices, self.n, fl.seed) if cfg.devices.enabled else None
        self.k_select = self.devices.selection_size(self.k) if self.devices else self.k
        resumed = resumed or {}
        self.dp = None
        if cfg.privacy.enabled:
            # the accountant sees the selection rate; the denominator the rate of kept updates
            self.dp = DPMechanism(
                cfg.privacy,
                num_clients=self.n,
                client_sizes=self.sizes,
                sample_rate=min(self.k_select / self.n, 1.0),
                rounds=fl.rounds,
                seed=fl.seed,
                keep_rate=self.k / self.n,
            )
            saved_z = resumed.get("dp_noise_multiplier")
            if saved_z is not None and abs(saved_z - self.dp.z) > 1e-9 * max(1.0, saved_z):
                raise ConfigError(
                    "fl.rounds",
                    f"this run's noise was calibrated for its `privacy.dp_epsilon` over {resumed.get('dp_rounds')} rounds; "
                    "a resumed DP run keeps its rounds",
                )
        self.clip = float(resumed.get("dp_clip", cfg.privacy.dp_clip))
        self.clock = float(resumed.get("sim_time_s", 0.0))

    @property
    def client_clip(self) -> float | None:
        return self.clip if self.dp is not None else None

    def select(self, r: int) -> Selection:
        fl = self.fl
        online = None
        if self.dp is not None and self.dp.cfg.dp_sampling == "poisson":
            sel = poisson_sample(self.n, self.dp.sample_rate, fl.seed, r)
        elif self.devices is not None:
            cand = np.flatnonzero(self.devices.online(self.clock, r))
            online = len(cand)
            sel = sample_among(cand, self.k_select, fl.seed, r)
        else:
            sel = sample_clients(self.n, self.k_select, fl.seed, r)
        if self.devices is None:
            return Selection(ids=sel, selected=len(sel), info={})
        plan = self.devices.plan(
            sel, self.k, self.sizes, fl.local_epochs, self.model_bytes, self.model_bytes, online=online
        )
        self.clock += plan.duration
        info = {
            "selected": len(sel),
            "online": plan.online,
            "stragglers": len(plan.stragglers),
            "surplus": len(plan.surplus),
            "round_time_s": plan.duration,
            "sim_time_s": self.clock,
        }
        return Selection(ids=plan.kept, selected=len(sel), info=info)

    def aggregate(self, res, r: int):
        """DP's release: (Aggregate, secure-aggregation result or None, round-log fields)."""
        dp = self.dp
        dim = self.num_params + (1 if dp.with_bit else 0)
        clip = self.clip
        total, secagg = self.aggregator.dp_sum(
            res, r, clip=clip, num_params=self.num_params, denominator=dp.denominator
        )
        if total is None:  # nobody reported: the release is noise alone, as the accountant assumes it is
            total = np.zeros(dim)
        rel = dp.release(total, r, clip)
        self.clip = rel.next_clip
        info = {
            "epsilon": rel.epsilon,
            "dp_delta": dp.cfg.dp_delta,
            "dp_clip": clip,
            "dp_noise_std": rel.noise_std / dp.denominator,
        }  # per coordinate of the released mean
        # the server releases only noisy quantities: per-client norms and losses stay unlogged
        agg = Aggregate(delta=rel.delta, num_clients=res.partial.count, total_weight=dp.denominator)
        return agg, secagg, info

    def state(self) -> dict:
        out: dict = {}
        if self.devices is not None:
            out["sim_time_s"] = self.clock
        if self.dp is not None:
            out.update(dp_clip=self.clip, dp_noise_multiplier=self.dp.z, dp_rounds=self.fl.rounds)
        return out

    def describe(self) -> dict:
        return {
            **({"devices": self.devices.describe()} if self.devices else {}),
            **({"privacy": self.dp.describe()} if self.dp else {}),
        }
