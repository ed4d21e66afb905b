"""Central differential privacy for the FedAvg family: DP-FedAvg with an accountant.

DP-FedAvg (McMahan, Ramage, Talwar and Zhang, "Learning differentially private recurrent
language models", ICLR 2018) protects a whole client (user-level DP). Each sampled client clips
its update to L2 norm C and scales it by a weight w_i <= 1; the server sums the contributions
(in the clear or through secure aggregation), adds Gaussian noise with standard deviation
z * sensitivity, and divides by a fixed denominator (the paper's f~_f estimator) so the
released mean has bounded sensitivity whoever took part:

    delta = (sum_i w_i * clip_C(Delta_i) + N(0, (z * s * C)^2 I)) / (q * W),  W = sum_all w_i,

with q the per-round sampling probability, w_i = 1 ("uniform") or min(n_i / cap, 1) ("capped",
the paper's weighting), and s the sensitivity of the sum per unit of C: 1 under Poisson sampling
(neighbouring populations differ by adding or removing one client) and 2 under fixed-size
sampling without replacement (neighbours replace one client; Wang, Balle and Kasiviswanathan
2019), matching what the accountant assumes for each.

Adaptive clipping (Andrew, Thakkar, McMahan and Ramaswamy, "Differentially private learning
with adaptive clipping", NeurIPS 2021): each client also reports the bit b_i = [||Delta_i|| <= C]
centred as b_i - 1/2; the server adds N(0, sigma_b^2) to their sum, estimates the fraction
b~ of clients under the clip and moves C geometrically, C <- C * exp(-eta * (b~ - gamma)),
toward the gamma-quantile of update norms. The two Gaussian queries together have the noise
multiplier z of the run when the update query gets z_D = (z^-2 - (sigma_b / s_b)^-2)^(-1/2),
s_b being the bit sum's sensitivity (1/2 or 1, as s).

Accounting uses Google's `dp-accounting` (RDP, or PLD for Poisson sampling): every round is one
sampled Gaussian mechanism with multiplier z, so epsilon after r rounds at delta is a function of
(z, q, r) alone and is reported every round; `dp_epsilon` calibrates z for the whole run.
Noise comes from a generator seeded by (seed, round): runs and resumes stay reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gptfl_ray.errors import ConfigError
from gptfl_ray.fields import check_instance

SAMPLINGS = ("poisson", "fixed")
WEIGHTINGS = ("uniform", "capped")
ACCOUNTANTS = ("rdp", "pld")
_NOISE_TAG = 0xD9C0  # separates the DP noise stream from sampling and client streams
# RDP orders from 2 up: the library's default fractional orders below 2 fail to converge (and are
# dropped with a warning) at the subsampling rates of cross-device FL; they only matter for huge epsilon.
RDP_ORDERS = tuple([2 + x / 4 for x in range(36)] + list(range(11, 64)) + [80, 96, 128, 256, 512, 1024])


def _check(cond: bool, option: str, problem: str) -> None:
    if not cond:
        raise ConfigError(option, problem)


@dataclass(frozen=True)
class DPConfig:
    """`[privacy]` in config.toml. DP is on when `dp_noise` or `dp_epsilon` is set."""

    dp_noise: float | None = None  # noise multiplier z (noise std / sensitivity)
    dp_epsilon: float | None = None  # target epsilon after the whole run: calibrates z
    dp_delta: float = 1e-5
    dp_clip: float = 1.0  # L2 clip of each client's update (the initial clip when adaptive)
    dp_clip_quantile: float | None = None  # None: fixed clip; gamma in (0, 1): adaptive clipping
    dp_clip_lr: float = 0.2  # eta of the geometric clip update (Andrew et al.'s default)
    dp_clip_noise: float | None = None  # sigma_b on the bit sum; None: expected clients / 20 (their advice)
    dp_sampling: str = "poisson"  # how clients are drawn when DP is on: poisson | fixed
    dp_weighting: str = "uniform"  # uniform | capped
    dp_weight_cap: float = 32.0  # samples at which a client's weight reaches 1 ("capped")
    dp_accountant: str = "rdp"  # rdp | pld

    def __post_init__(self):
        check_instance(self, "privacy")
        if self.dp_noise is not None:
            _check(
                self.dp_epsilon is None,
                "privacy.dp_noise",
                "give either `privacy.dp_noise` or `privacy.dp_epsilon`, not both",
            )
            _check(self.dp_noise > 0, "privacy.dp_noise", f"must be > 0, got {self.dp_noise}")
        if self.dp_epsilon is not None:
            _check(self.dp_epsilon > 0, "privacy.dp_epsilon", f"must be > 0, got {self.dp_epsilon}")
        _check(0 < self.dp_delta < 1, "privacy.dp_delta", f"must be in (0, 1), got {self.dp_delta}")
        _check(
            self.dp_clip > 0 and math.isfinite(self.dp_clip),
            "privacy.dp_clip",
            f"must be a positive number, got {self.dp_clip}",
        )
        if self.dp_clip_quantile is not None:
            _check(
                0 < self.dp_clip_quantile < 1,
                "privacy.dp_clip_quantile",
                f"must be in (0, 1), got {self.dp_clip_quantile}",
            )
        _check(self.dp_clip_lr > 0, "privacy.dp_clip_lr", f"must be > 0, got {self.dp_clip_lr}")
        if self.dp_clip_noise is not None:
            _check(self.dp_clip_noise > 0, "privacy.dp_clip_noise", f"must be > 0, got {self.dp_clip_noise}")
        _check(
            self.dp_sampling in SAMPLINGS,
            "privacy.dp_sampling",
            f"unknown sampling {self.dp_sampling!r}; choose from {', '.join(SAMPLINGS)}",
        )
        _check(
            self.dp_weighting in WEIGHTINGS,
            "privacy.dp_weighting",
            f"unknown weighting {self.dp_weighting!r}; choose from {', '.join(WEIGHTINGS)}",
        )
        _check(self.dp_weight_cap > 0, "privacy.dp_weight_cap", f"must be > 0, got {self.dp_weight_cap}")
        _check(
            self.dp_accountant in ACCOUNTANTS,
            "privacy.dp_accountant",
            f"unknown accountant {self.dp_accountant!r}; choose from {', '.join(ACCOUNTANTS)}",
        )
        if self.dp_accountant == "pld":
            _check(
                self.dp_sampling == "poisson",
                "privacy.dp_accountant",
                "the PLD accountant handles Poisson sampling only; use `privacy.dp_sampling` poisson or `privacy.dp_accountant` rdp",
            )

    @property
    def enabled(self) -> bool:
        return self.dp_noise is not None or self.dp_epsilon is not None

    @property
    def adaptive(self) -> bool:
        return self.dp_clip_quantile is not None


def check_compatible(dp: DPConfig, fl, devices, num_clients: int | None = None) -> None:
    """Settings DP-FedAvg's guarantee does not cover, refused before any work starts."""
    if not dp.enabled:
        return
    if dp.adaptive and dp.dp_noise is not None and num_clients:  # the noise split, when z is known up front
        from gptfl_ray.fl.sampler import clients_per_round

        k = math.ceil(clients_per_round(num_clients, fl.sample_rate, fl.clients_per_round) * devices.over_select - 1e-9)
        bit_noise = dp.dp_clip_noise if dp.dp_clip_noise is not None else min(k, num_clients) / 20.0  # as DPMechanism
        split_noise(dp.dp_noise, bit_noise, 0.5 if dp.dp_sampling == "poisson" else 1.0)
    option = "privacy.dp_noise" if dp.dp_noise is not None else "privacy.dp_epsilon"
    _check(
        fl.strategy != "scaffold",
        option,
        "SCAFFOLD's control variates would leave the server un-noised; use another `fl.strategy`",
    )
    _check(
        devices.availability == "always",
        "devices.availability",
        "the DP accountant assumes every client can be sampled in every round; use `devices.availability` always with `privacy.dp_noise`/`privacy.dp_epsilon`",
    )


# ---------------------------------------------------------------- client side


def clip_update(delta: np.ndarray, clip: float) -> tuple[np.ndarray, float]:
    """delta * min(1, C / ||delta||) and the norm before clipping."""
    d = np.asarray(delta, dtype=np.float64)
    norm = float(np.sqrt(d @ d))
    scale = min(1.0, clip / norm) if norm > 0 else 1.0
    return d * scale, norm


def client_weight(num_samples: int, weighting: str, cap: float) -> float:
    """w_i <= 1, so w_i * clip(Delta_i) has norm <= C (the bound the noise is sized for)."""
    if weighting == "uniform":
        return 1.0
    return min(float(num_samples) / cap, 1.0)


def client_contribution(
    delta: np.ndarray, num_samples: int, clip: float, weighting: str, cap: float, with_bit: bool
) -> np.ndarray:
    """What a DP client sends: w_i * clip_C(Delta_i), then b_i - 1/2 when clipping is adaptive."""
    clipped, norm = clip_update(delta, clip)
    vec = client_weight(num_samples, weighting, cap) * clipped
    if with_bit:
        vec = np.concatenate([vec, [(1.0 if norm <= clip else 0.0) - 0.5]])
    return vec


# ---------------------------------------------------------------- server side


def noise_rng(seed: int, round_idx: int) -> np.random.Generator:
    """The round's noise stream, from (seed, round) only: the same noise on every rerun and resume."""
    return np.random.default_rng([int(seed), int(round_idx), _NOISE_TAG])


def adaptive_clip_step(
    clip: float, noisy_centred_bits: float, expected_clients: float, quantile: float, lr: float
) -> float:
    """Andrew et al. 2021, geometric update: C * exp(-eta * (b~ - gamma))."""
    frac = noisy_centred_bits / expected_clients + 0.5
    return float(clip * math.exp(-lr * (frac - quantile)))


def split_noise(z: float, bit_noise: float, bit_sensitivity: float) -> float:
    """The update query's multiplier z_D such that both queries together have multiplier z."""
    z_bits = bit_noise / bit_sensitivity
    if z_bits <= z:
        raise ConfigError(
            "privacy.dp_clip_noise",
            f"the clip-bit noise {bit_noise:g} leaves no budget for the update "
            f"(it needs a bit-noise multiplier above z = {z:.3g}; raise `privacy.dp_clip_noise` or lower the noise)",
        )
    return (z**-2 - z_bits**-2) ** -0.5


# ---------------------------------------------------------------- accounting


def _event(z: float, rounds: int, sampling: str, num_clients: int, sample_rate: float):
    import dp_accounting as dpa

    gauss = dpa.GaussianDpEvent(z)
    if sampling == "poisson":
        one = dpa.PoissonSampledDpEvent(sample_rate, gauss)
    else:
        one = dpa.SampledWithoutReplacementDpEvent(num_clients, int(round(sample_rate * num_clients)), gauss)
    return dpa.SelfComposedDpEvent(one, rounds)


def _accountant(kind: str, sampling: str):
    import dp_accounting as dpa

    if kind == "pld":
        return dpa.pld.PLDAccountant(dpa.NeighboringRelation.ADD_OR_REMOVE_ONE)
    rel = dpa.NeighboringRelation.ADD_OR_REMOVE_ONE if sampling == "poisson" else dpa.NeighboringRelation.REPLACE_ONE
    return dpa.rdp.RdpAccountant(RDP_ORDERS, neighboring_relation=rel)


@lru_cache(maxsize=4096)
def epsilon(
    z: float, rounds: int, delta: float, *, sampling: str, num_clients: int, sample_rate: float, accountant: str = "rdp"
) -> float:
    """Epsilon at `delta` after `rounds` sampled Gaussian rounds with multiplier z."""
    if rounds <= 0:
        return 0.0
    acc = _accountant(accountant, sampling)
    acc.compose(_event(z, rounds, sampling, num_clients, sample_rate))
    return float(acc.get_epsilon(delta))


def calibrate_noise(
    target_epsilon: float,
    rounds: int,
    delta: float,
    *,
    sampling: str,
    num_clients: int,
    sample_rate: float,
    accountant: str = "rdp",
) -> float:
    """The smallest z whose epsilon after `rounds` is at most `target_epsilon` (dp-accounting's search)."""
    import dp_accounting as dpa

    _check(rounds >= 1, "privacy.dp_epsilon", "needs at least one round to calibrate for")
    try:
        z = dpa.calibrate_dp_mechanism(
            lambda: _accountant(accountant, sampling),
            lambda x: _event(x, rounds, sampling, num_clients, sample_rate),
            target_epsilon,
            delta,
            bracket_interval=dpa.LowerEndpointAndGuess(0.05, 1.0),
            tol=1e-4,
        )
    except Exception as exc:  # no bracket: the target needs more noise than 2^30 or less than 0.05
        raise ConfigError(
            "privacy.dp_epsilon",
            f"cannot reach epsilon {target_epsilon:g} at delta {delta:g} in {rounds} rounds ({exc})",
        ) from None
    return float(z)


# ---------------------------------------------------------------- one run's mechanism


@dataclass(frozen=True)
class DPRelease:
    """One round's released aggregate and what the round log shows of it."""

    delta: np.ndarray  # the noisy mean update (float32)
    next_clip: float
    noise_std: float  # on the sum of contributions, per coordinate
    epsilon: float  # after this round, at the run's delta


class DPMechanism:
    """The server half of DP-FedAvg for one run; the client half is `client_contribution`.

    `sample_rate` is the chance a client is selected in a round (Poisson q, or k/N for a
    fixed-size draw); `keep_rate` (<= sample_rate, default equal) the expected share whose
    updates are kept (over-selection keeps only the first k), which sets the denominator.
    """

    def __init__(
        self,
        cfg: DPConfig,
        *,
        num_clients: int,
        client_sizes,
        sample_rate: float,
        rounds: int,
        seed: int,
        keep_rate: float | None = None,
    ):
        if not cfg.enabled:
            raise ValueError("DPMechanism needs dp_noise or dp_epsilon")
        self.cfg = cfg
        self.seed = int(seed)
        self.num_clients = int(num_clients)
        self.sample_rate = float(sample_rate)
        self.rounds = int(rounds)
        _check(
            0 < self.sample_rate <= 1,
            "fl.sample_rate",
            f"the DP sampling rate must be in (0, 1], got {self.sample_rate}",
        )
        self.sensitivity = 1.0 if cfg.dp_sampling == "poisson" else 2.0
        total_weight = float(sum(client_weight(int(n), cfg.dp_weighting, cfg.dp_weight_cap) for n in client_sizes))
        self.denominator = (keep_rate if keep_rate is not None else self.sample_rate) * total_weight
        self.expected_clients = self.sample_rate * self.num_clients
        acct = dict(
            sampling=cfg.dp_sampling,
            num_clients=self.num_clients,
            sample_rate=self.sample_rate,
            accountant=cfg.dp_accountant,
        )
        self._acct = acct
        if cfg.dp_noise is not None:
            self.z = float(cfg.dp_noise)
        else:
            self.z = calibrate_noise(cfg.dp_epsilon, self.rounds, cfg.dp_delta, **acct)
        self.bit_noise = 0.0
        self.z_update = self.z
        if cfg.adaptive:
            self.bit_noise = cfg.dp_clip_noise if cfg.dp_clip_noise is not None else self.expected_clients / 20.0
            bit_sens = 0.5 if cfg.dp_sampling == "poisson" else 1.0
            self.z_update = split_noise(self.z, self.bit_noise, bit_sens)

    @property
    def with_bit(self) -> bool:
        return self.cfg.adaptive

    def epsilon(self, rounds_done: int) -> float:
        return epsilon(self.z, int(rounds_done), self.cfg.dp_delta, **self._acct)

    def release(self, contribution_sum: np.ndarray, round_idx: int, clip: float) -> DPRelease:
        """Noise the sum of client contributions (and bits), divide by the fixed denominator."""
        s = np.asarray(contribution_sum, dtype=np.float64)
        dim = len(s) - (1 if self.with_bit else 0)
        std = self.z_update * self.sensitivity * clip
        rng = noise_rng(self.seed, round_idx)
        noisy = s[:dim] + rng.normal(0.0, std, size=dim)
        next_clip = clip
        if self.with_bit:
            bits = float(s[dim]) + float(rng.normal(0.0, self.bit_noise))
            next_clip = adaptive_clip_step(
                clip, bits, self.expected_clients, self.cfg.dp_clip_quantile, self.cfg.dp_clip_lr
            )
        return DPRelease(
            delta=(noisy / self.denominator).astype(np.float32),
            next_clip=next_clip,
            noise_std=std,
            epsilon=self.epsilon(round_idx),
        )

    def describe(self) -> dict:
        return {
            "noise_multiplier": self.z,
            "update_noise_multiplier": self.z_update,
            "bit_noise": self.bit_noise,
            "sensitivity_per_clip": self.sensitivity,
            "denominator": self.denominator,
            "sample_rate": self.sample_rate,
            "sampling": self.cfg.dp_sampling,
            "accountant": self.cfg.dp_accountant,
            "delta": self.cfg.dp_delta,
            "epsilon_at_end": self.epsilon(self.rounds),
        }
