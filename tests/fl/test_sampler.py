import numpy as np
import pytest

from gptfl_ray.fl.sampler import client_drops, clients_per_round, sample_clients
from gptfl_ray.seeding import client_seed


def test_sampling_is_a_function_of_seed_and_round():
    a = sample_clients(100, 10, seed=3, round_idx=7)
    assert np.array_equal(a, sample_clients(100, 10, seed=3, round_idx=7))
    assert len(set(a.tolist())) == 10 and a.min() >= 0 and a.max() < 100
    assert not np.array_equal(a, sample_clients(100, 10, seed=3, round_idx=8))
    assert not np.array_equal(a, sample_clients(100, 10, seed=4, round_idx=7))


@pytest.mark.parametrize(
    "rate, count, expected", [(0.2, None, 10), (1.0, None, 50), (0.001, None, 1), (None, 7, 7), (None, 500, 50)]
)
def test_clients_per_round(rate, count, expected):
    assert clients_per_round(50, rate, count) == expected


def test_client_seeds_distinct_and_stable():
    seeds = {client_seed(0, r, c) for r in range(5) for c in range(50)}
    assert len(seeds) == 250
    assert client_seed(0, 1, 2) == client_seed(0, 1, 2)


def test_dropout_rate_roughly_p():
    drops = [client_drops(1, r, c, 0.3) for r in range(20) for c in range(100)]
    assert 0.25 < np.mean(drops) < 0.35
    assert not any(client_drops(1, r, c, 0.0) for r in range(5) for c in range(10))
