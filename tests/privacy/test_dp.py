import math

import dp_accounting as dpa
import numpy as np
import pytest

from gptfl_ray.errors import ConfigError
from gptfl_ray.privacy.dp import (
    RDP_ORDERS,
    DPConfig,
    DPMechanism,
    adaptive_clip_step,
    calibrate_noise,
    client_contribution,
    clip_update,
    epsilon,
    split_noise,
)


def _mech(sampling="poisson", **kw):
    cfg = DPConfig(dp_noise=kw.pop("z", 1.3), dp_clip=kw.pop("clip", 0.5), dp_sampling=sampling, **kw)
    return DPMechanism(cfg, num_clients=50, client_sizes=[30] * 50, sample_rate=0.2, rounds=10, seed=7)


@pytest.mark.parametrize("sampling, per_clip", [("poisson", 1.0), ("fixed", 2.0)])
def test_noise_has_the_stated_standard_deviation(sampling, per_clip):
    m = _mech(sampling, z=1.3, clip=0.5)
    stated = 1.3 * per_clip * 0.5
    dim = 40_000
    rel = m.release(np.zeros(dim), round_idx=3, clip=0.5)
    assert rel.noise_std == pytest.approx(stated)
    noise = rel.delta.astype(np.float64) * m.denominator  # undo the fixed denominator (10 clients)
    assert m.denominator == pytest.approx(10.0)
    # the sample std of 40k normals is within 1.5% of the truth with overwhelming probability (8 sigma);
    # a noise std off by a factor sqrt(2) (sensitivity) or 10 (denominator) fails by far.
    assert noise.std() == pytest.approx(stated, rel=0.015)
    assert abs(noise.mean()) < 5 * stated / math.sqrt(dim)
    # Gaussian, not merely the right scale: kurtosis of a normal is 3
    k = ((noise - noise.mean()) ** 4).mean() / noise.var() ** 2
    assert k == pytest.approx(3.0, abs=0.15)


def test_noise_is_a_function_of_seed_and_round():
    m = _mech()
    a = m.release(np.zeros(100), 4, 0.5).delta
    assert np.array_equal(a, _mech().release(np.zeros(100), 4, 0.5).delta)
    assert not np.array_equal(a, m.release(np.zeros(100), 5, 0.5).delta)
    other = DPMechanism(m.cfg, num_clients=50, client_sizes=[30] * 50, sample_rate=0.2, rounds=10, seed=8)
    assert not np.array_equal(a, other.release(np.zeros(100), 4, 0.5).delta)


def test_release_adds_noise_to_the_sum_and_divides_by_the_fixed_denominator():
    m = _mech(z=1e-9)  # no noise to speak of
    s = np.arange(6, dtype=np.float64)
    assert np.allclose(m.release(s, 1, 0.5).delta, s / 10.0, atol=1e-6)


@pytest.mark.parametrize("weighting", ["uniform", "capped"])
def test_clipping_bounds_every_contribution(weighting):
    rng = np.random.default_rng(0)
    clip = 0.7
    for _i in range(50):
        d = rng.normal(0, 10.0 ** rng.uniform(-3, 2), size=257).astype(np.float32)
        n = int(rng.integers(1, 100))
        v = client_contribution(d, n, clip, weighting, cap=32.0, with_bit=False)
        assert np.linalg.norm(v) <= clip * (1 + 1e-9)
        if np.linalg.norm(d) <= clip and weighting == "uniform":
            assert np.allclose(v, d)  # small updates pass unchanged
        if weighting == "capped":
            assert np.linalg.norm(v) <= clip * min(n / 32.0, 1.0) * (1 + 1e-9)


def test_clip_keeps_the_direction_and_reports_the_norm():
    d = np.array([3.0, 4.0])
    c, norm = clip_update(d, 1.0)
    assert norm == pytest.approx(5.0)
    assert np.allclose(c, [0.6, 0.8])
    v = client_contribution(d, 10, 1.0, "uniform", 32.0, with_bit=True)
    assert v[-1] == -0.5  # norm above the clip: bit 0, centred
    assert client_contribution(d, 10, 6.0, "uniform", 32.0, with_bit=True)[-1] == 0.5


@pytest.mark.parametrize("z, rounds, q", [(1.0, 30, 0.2), (0.7, 100, 0.05), (2.0, 5, 0.5)])
def test_epsilon_matches_the_library_for_the_same_parameters(z, rounds, q):
    # Poisson: RDP under add/remove-one; fixed size: RDP under replace-one (Wang et al. 2019)
    acc = dpa.rdp.RdpAccountant(RDP_ORDERS, dpa.NeighboringRelation.ADD_OR_REMOVE_ONE)
    acc.compose(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(z)), rounds)
    assert epsilon(z, rounds, 1e-5, sampling="poisson", num_clients=100, sample_rate=q) == pytest.approx(
        acc.get_epsilon(1e-5), rel=1e-9
    )
    acc = dpa.rdp.RdpAccountant(RDP_ORDERS, dpa.NeighboringRelation.REPLACE_ONE)
    acc.compose(dpa.SampledWithoutReplacementDpEvent(100, int(q * 100), dpa.GaussianDpEvent(z)), rounds)
    assert epsilon(z, rounds, 1e-5, sampling="fixed", num_clients=100, sample_rate=q) == pytest.approx(
        acc.get_epsilon(1e-5), rel=1e-9
    )
    # PLD is tighter than RDP for the same mechanism, and close to it
    pld = epsilon(z, rounds, 1e-5, sampling="poisson", num_clients=100, sample_rate=q, accountant="pld")
    rdp = epsilon(z, rounds, 1e-5, sampling="poisson", num_clients=100, sample_rate=q)
    assert 0.6 * rdp < pld <= rdp * 1.001


def test_epsilon_without_sampling_matches_the_gaussian_mechanism_in_closed_form():
    z, rounds, delta = 3.0, 9, 1e-5
    # T Gaussian rounds with multiplier z are one Gaussian with multiplier z / sqrt(T); the library's
    # exact (Balle and Wang 2018) epsilon for it is the reference for the PLD accountant...
    exact = dpa.get_epsilon_gaussian(z / math.sqrt(rounds), delta)
    assert epsilon(
        z, rounds, delta, sampling="poisson", num_clients=10, sample_rate=1.0, accountant="pld"
    ) == pytest.approx(exact, rel=0.02)
    # ... and RDP's closed form rdp(a) = T a / (2 z^2) with the library's conversion for the RDP one
    a = np.asarray(RDP_ORDERS)
    rdp = rounds * a / (2 * z * z)
    eps = np.min(rdp + np.log1p(-1 / a) - (np.log(delta) + np.log(a)) / (a - 1))
    assert epsilon(z, rounds, delta, sampling="poisson", num_clients=10, sample_rate=1.0) == pytest.approx(
        eps, rel=1e-6
    )
    assert exact <= eps


def test_epsilon_grows_with_rounds_and_falls_with_noise():
    e = [epsilon(1.0, r, 1e-5, sampling="poisson", num_clients=50, sample_rate=0.2) for r in (1, 5, 30)]
    assert e[0] < e[1] < e[2]
    assert epsilon(2.0, 30, 1e-5, sampling="poisson", num_clients=50, sample_rate=0.2) < e[2]
    assert epsilon(1.0, 0, 1e-5, sampling="poisson", num_clients=50, sample_rate=0.2) == 0.0


@pytest.mark.parametrize("sampling", ["poisson", "fixed"])
def test_calibration_reaches_the_target_epsilon(sampling):
    z = calibrate_noise(4.0, 30, 1e-5, sampling=sampling, num_clients=50, sample_rate=0.2)
    got = epsilon(z, 30, 1e-5, sampling=sampling, num_clients=50, sample_rate=0.2)
    assert got <= 4.0 and got == pytest.approx(4.0, rel=0.01)
    m = DPMechanism(
        DPConfig(dp_epsilon=4.0, dp_sampling=sampling),
        num_clients=50,
        client_sizes=[1] * 50,
        sample_rate=0.2,
        rounds=30,
        seed=0,
    )
    assert m.z == pytest.approx(z) and m.epsilon(30) <= 4.0


def test_adaptive_clip_moves_toward_the_quantile():
    # every update under the clip: the clip shrinks by exp(-lr * (1 - gamma)); none under: it grows
    assert adaptive_clip_step(1.0, 10 * 0.5, 10, 0.5, 0.2) == pytest.approx(math.exp(-0.1))
    assert adaptive_clip_step(1.0, -10 * 0.5, 10, 0.5, 0.2) == pytest.approx(math.exp(0.1))
    # with bit noise, iterating on a fixed norm distribution lands near its gamma-quantile
    cfg = DPConfig(dp_noise=0.5, dp_clip=5.0, dp_clip_quantile=0.3, dp_clip_noise=2.0)
    m = DPMechanism(cfg, num_clients=1000, client_sizes=[1] * 1000, sample_rate=0.1, rounds=200, seed=1)
    rng = np.random.default_rng(0)
    clip = 5.0
    for r in range(1, 200):
        norms = rng.lognormal(0.0, 0.5, size=100)
        bits = float(np.sum((norms <= clip) - 0.5))
        clip = m.release(np.concatenate([np.zeros(3), [bits]]), r, clip).next_clip
    target = float(np.exp(0.5 * -0.5244))  # 0.3-quantile of lognormal(0, 0.5)
    assert clip == pytest.approx(target, rel=0.15)


def test_noise_split_keeps_the_total_multiplier():
    z, sb = 1.0, 2.5
    zd = split_noise(z, sb, 0.5)
    assert zd**-2 + (sb / 0.5) ** -2 == pytest.approx(z**-2)
    with pytest.raises(ConfigError, match="privacy.dp_clip_noise"):
        split_noise(1.0, 0.4, 0.5)
    m = DPMechanism(
        DPConfig(dp_noise=1.0, dp_clip_quantile=0.5),
        num_clients=400,
        client_sizes=[1] * 400,
        sample_rate=0.25,
        rounds=3,
        seed=0,
    )
    assert m.bit_noise == pytest.approx(100 / 20) and m.z_update > m.z


@pytest.mark.parametrize(
    "kw, option",
    [
        ({"dp_noise": 1.0, "dp_epsilon": 2.0}, "privacy.dp_noise"),
        ({"dp_noise": -1.0}, "privacy.dp_noise"),
        ({"dp_epsilon": 0.0}, "privacy.dp_epsilon"),
        ({"dp_delta": 1.0}, "privacy.dp_delta"),
        ({"dp_clip": 0.0}, "privacy.dp_clip"),
        ({"dp_clip_quantile": 1.0}, "privacy.dp_clip_quantile"),
        ({"dp_sampling": "shuffle"}, "privacy.dp_sampling"),
        ({"dp_weighting": "linear"}, "privacy.dp_weighting"),
        ({"dp_accountant": "pld", "dp_sampling": "fixed"}, "privacy.dp_accountant"),
    ],
)
def test_bad_settings_name_the_option(kw, option):
    with pytest.raises(ConfigError, match=option):
        DPConfig(**kw)
    assert not DPConfig().enabled and DPConfig(dp_epsilon=1.0).enabled
