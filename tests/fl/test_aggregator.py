"""fl/aggregator.py: the config picks plain or secure summation once; both give the same mean."""

from __future__ import annotations

import numpy as np
import pytest

from gptfl_ray.config import FLConfig
from gptfl_ray.fl.aggregate import PartialSum, finalize
from gptfl_ray.fl.aggregator import PlainAggregator, SecureAggregator, build_aggregator
from gptfl_ray.fl.executor import RoundResult


def _round(dropped=()):
    # 3 clients, 3 parameters, by hand: n = 10, 30, 20, S = 30 (a 4th dropped: the threshold is 3 of 4)
    deltas = {0: np.array([0.3, -0.6, 0.9]), 1: np.array([0.1, 0.2, -0.3]), 2: np.array([0.0, 0.0, 0.6])}
    sizes = {0: 10, 1: 30, 2: 20}
    res = RoundResult(partial=PartialSum(dropped=list(dropped)))
    for cid, d in deltas.items():
        res.partial.add(d, sizes[cid])
        w = sizes[cid] / 30
        res.client_vectors[cid] = np.concatenate([w * d, [w]])
    return res


def test_the_config_picks_the_aggregator():
    assert isinstance(build_aggregator(FLConfig()), PlainAggregator)
    assert isinstance(build_aggregator(FLConfig(secure_aggregation=True)), SecureAggregator)


@pytest.mark.parametrize("dropped", [(), (7,)])
def test_secure_mean_equals_plain_mean_within_its_bound(dropped):
    res = _round(dropped)
    plain, none = PlainAggregator().mean(res, 1)
    assert none is None and np.array_equal(plain.delta, finalize(res.partial).delta)
    np.testing.assert_allclose(plain.delta, [0.1, 0.0, 0.2], atol=1e-7)  # (10 d0 + 30 d1 + 20 d2) / 60
    secure, out = SecureAggregator(FLConfig(secure_aggregation=True, secagg_bits=20)).mean(res, 1)
    assert out.survivors == [0, 1, 2] and out.dropped == list(dropped)
    assert np.abs(secure.delta - plain.delta).max() <= out.extra["mean_error_bound"] + 1e-7
    assert np.isnan(secure.gradient_diversity) and secure.num_clients == 3


def test_nobody_heard_from_gives_nothing_to_sum():
    empty = RoundResult(partial=PartialSum(dropped=[3]))
    for agg in (PlainAggregator(), SecureAggregator(FLConfig(secure_aggregation=True))):
        assert agg.mean(empty, 1) == (None, None)
        assert agg.dp_sum(empty, 1, clip=1.0, num_params=3, denominator=2.0) == (None, None)
