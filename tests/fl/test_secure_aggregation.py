"""FL rounds through secure aggregation equal plain aggregation up to the stated bound."""

import numpy as np
import pytest

from gptfl_ray.config import FLConfig
from gptfl_ray.data import load_dataset
from gptfl_ray.data.partition import partition
from gptfl_ray.errors import ConfigError
from gptfl_ray.fl.aggregate import finalize
from gptfl_ray.fl.aggregator import SecureAggregator
from gptfl_ray.fl.client import LocalTrainConfig
from gptfl_ray.fl.executor import ClientExecutor, ExecutorSpec
from gptfl_ray.models.factory import ModelFactory
from gptfl_ray.models.params import get_flat


@pytest.fixture(scope="module")
def setup():
    ds = load_dataset("digits")
    parts = partition(ds.y_train, 12, "dirichlet", seed=0, alpha=0.5)
    factory = ModelFactory("cnn", ds.input_shape, 10)
    return ds, parts, factory


def round_result(setup, dropout=0.0, scale=None):
    ds, parts, factory = setup
    spec = ExecutorSpec(
        model_fn=factory,
        local=LocalTrainConfig(epochs=1, batch_size=16, lr=0.1),
        seed=0,
        dropout=dropout,
        secagg_scale=scale or float(max(len(p) for p in parts)),
    )
    ex = ClientExecutor(spec, ds.prepare(ds.x_train), ds.y_train, parts)
    return ex.run(get_flat(factory()), list(range(10)), round_idx=1)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_secure_mean_equals_plain_mean_within_bound(setup, dropout):
    res = round_result(setup, dropout=dropout)
    plain = finalize(res.partial)
    fl = FLConfig(secure_aggregation=True, secagg_clip=1.0, secagg_bits=20, dropout=dropout)
    vectors = np.stack([v[:-1] for v in res.client_vectors.values()])
    assert np.abs(vectors).max() <= 1.0  # nothing clipped, so only quantization error remains
    agg, out = SecureAggregator(fl).secure_mean(res, plain, 1)
    bound = out.extra["mean_error_bound"]
    assert 0 < bound < 1e-4
    err = np.abs(agg.delta.astype(np.float64) - plain.delta.astype(np.float64)).max()
    assert err <= bound + 1e-6  # + float32 rounding of the plain mean
    assert sorted(out.survivors) == sorted(res.client_vectors)
    assert np.isnan(agg.gradient_diversity)
    if dropout:
        assert res.partial.dropped and set(out.dropped) == set(res.partial.dropped)


def test_secure_aggregation_rejects_scaffold():
    with pytest.raises(ConfigError, match="fl.secure_aggregation"):
        FLConfig(strategy="scaffold", secure_aggregation=True)


@pytest.mark.ray
def test_secure_rounds_on_ray_equal_local(setup, tmp_path):
    from gptfl_ray.config import federate_config
    from gptfl_ray.fl.loop import run_federation

    ds, parts, _ = setup
    params = {}
    for backend in ("local", "ray"):
        cfg = federate_config(
            overrides=dict(
                rounds=2,
                clients=12,
                alpha=0.5,
                clients_per_round=6,
                backend=backend,
                secure_aggregation=True,
                num_actors=2,
                client_cpus=0.5,
            )
        )
        params[backend] = run_federation(cfg, ds, parts, tmp_path / backend).params
    np.testing.assert_allclose(params["ray"], params["local"], atol=1e-6)
