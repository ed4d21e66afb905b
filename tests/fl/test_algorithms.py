"""Server steps on 3-parameter models with values computed by hand (fedjax fed_avg_test style)."""

import numpy as np
import pytest

from gptfl_ray.errors import ConfigError
from gptfl_ray.fl.aggregate import Aggregate, PartialSum, aggregate, finalize, gradient_diversity
from gptfl_ray.fl.algorithms import FedAvg, FedAvgM, FedOpt, FedProx, Scaffold, build_algorithm

X0 = np.array([1.0, 2.0, 3.0], np.float32)
# Two clients: deltas and sample counts.
D1, W1 = np.array([1.0, 0.0, -2.0], np.float32), 1.0
D2, W2 = np.array([-1.0, 4.0, 2.0], np.float32), 3.0
MEAN = np.array([-0.5, 3.0, 1.0], np.float32)  # (1*D1 + 3*D2) / 4


def agg(delta=MEAN, control=None):
    return Aggregate(delta=delta, num_clients=2, total_weight=4.0, extra_mean=control)


def test_weighted_average_by_sample_count():
    np.testing.assert_allclose(aggregate([(D1, W1), (D2, W2)]), MEAN)


def test_partials_merge_to_the_same_mean_as_one_sum():
    a, b = PartialSum(), PartialSum()
    a.add(D1, W1)
    b.add(D2, W2)
    merged = a.merge(b)
    np.testing.assert_allclose(finalize(merged).delta, MEAN)
    assert merged.count == 2 and merged.weight == 4.0


def test_gradient_diversity_eq1_by_hand():
    # ||D1||^2 = 5, ||D2||^2 = 21, ||D1 + D2|| ^2 = ||[0, 4, 0]||^2 = 16 -> 26 / 16
    p = PartialSum()
    p.add(D1, W1)
    p.add(D2, W2)
    assert finalize(p).gradient_diversity == pytest.approx(26 / 16)
    assert gradient_diversity(2.0, np.array([1.0, 1.0])) == pytest.approx(1.0)


def test_fedavg_server_step():
    s = FedAvg().server_update(FedAvg().init(X0), agg())
    np.testing.assert_allclose(s.params, [0.5, 5.0, 4.0])
    assert s.round == 1


def test_fedavg_server_lr():
    s = FedAvg(server_lr=0.5).server_update(FedAvg().init(X0), agg())
    np.testing.assert_allclose(s.params, [0.75, 3.5, 3.5])


def test_fedprox_server_is_fedavg_and_client_gets_mu():
    algo = FedProx(prox_mu=0.1)
    assert algo.client.terms(None, None).prox_mu == 0.1
    assert FedAvg().client.terms(None, None).prox_mu == 0.0
    np.testing.assert_allclose(algo.server_update(algo.init(X0), agg()).params, [0.5, 5.0, 4.0])


def test_fedavgm_two_steps():
    algo = FedAvgM(server_lr=1.0, momentum=0.5)
    s1 = algo.server_update(algo.init(X0), agg())
    np.testing.assert_allclose(s1.params, [0.5, 5.0, 4.0])  # m = delta
    s2 = algo.server_update(s1, agg())
    # m = 0.5 * MEAN + MEAN = 1.5 * MEAN
    np.testing.assert_allclose(s2.params, np.array([0.5, 5.0, 4.0]) + 1.5 * MEAN)


@pytest.mark.parametrize(
    "variant, expected_v",
    [
        # v0 = tau^2 = 0.01; d^2 = [0.25, 9, 1]
        ("adagrad", [0.26, 9.01, 1.01]),
        ("adam", [0.5 * 0.01 + 0.5 * 0.25, 0.5 * 0.01 + 0.5 * 9, 0.5 * 0.01 + 0.5 * 1]),
        # yogi: v - (1 - b2) d^2 sign(v - d^2); v < d^2 everywhere so v + 0.5 d^2
        ("yogi", [0.01 + 0.125, 0.01 + 4.5, 0.01 + 0.5]),
    ],
)
def test_fedopt_by_hand(variant, expected_v):
    algo = FedOpt(variant=variant, server_lr=0.1, beta1=0.5, beta2=0.5, tau=0.1)
    s = algo.server_update(algo.init(X0), agg())
    m = 0.5 * MEAN
    v = np.array(expected_v)
    np.testing.assert_allclose(s.slots["m"], m, rtol=1e-6)
    np.testing.assert_allclose(s.slots["v"], v, rtol=1e-6)
    np.testing.assert_allclose(s.params, X0 + 0.1 * m / (np.sqrt(v) + 0.1), rtol=1e-6)


def test_scaffold_server_moves_control_by_sampled_fraction():
    algo = Scaffold(num_clients=4)
    plain = np.array([0.0, 1.0, -1.0], np.float32)  # (D1 + D2) / 2: Algorithm 1 averages uniformly
    a = Aggregate(
        delta=MEAN,
        num_clients=2,
        total_weight=4.0,
        plain_delta=plain,
        extra_mean=np.array([2.0, -2.0, 4.0], np.float32),
    )
    s = algo.server_update(algo.init(X0), a)
    np.testing.assert_allclose(s.params, X0 + plain)
    np.testing.assert_allclose(s.slots["c"], [1.0, -1.0, 2.0])  # 2/4 of the mean control change


def test_scaffold_control_mean_is_unweighted():
    p = PartialSum()
    p.add(D1, 1.0, extra=np.array([2.0, 0.0, 0.0]))
    p.add(D2, 3.0, extra=np.array([0.0, 2.0, 0.0]))
    np.testing.assert_allclose(finalize(p).extra_mean, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(finalize(p).plain_delta, (D1 + D2) / 2)


def test_unknown_strategy_names_the_option():
    with pytest.raises(ConfigError, match="fl.strategy"):
        build_algorithm("fedsgd", num_clients=2)


def test_fedopt_default_server_lr():
    assert build_algorithm("fedadam", num_clients=2).server_lr == 0.01
    assert build_algorithm("fedavg", num_clients=2).server_lr == 1.0
