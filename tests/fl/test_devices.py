import json
import os
import pickle

import numpy as np
import pytest

from gptfl_ray.errors import ConfigError
from gptfl_ray.fl.devices import DeviceConfig, DeviceModel
from gptfl_ray.fl.sampler import poisson_sample, sample_among, sample_clients


def test_draws_are_a_function_of_the_seed():
    cfg = DeviceConfig(devices="lognormal", availability="diurnal")
    a, b, c = DeviceModel(cfg, 50, seed=3), DeviceModel(cfg, 50, seed=3), DeviceModel(cfg, 50, seed=4)
    assert np.array_equal(a.sec_per_sample, b.sec_per_sample) and np.array_equal(a.bandwidth, b.bandwidth)
    assert np.array_equal(a.online(1234.0, 5), b.online(1234.0, 5))
    assert not np.array_equal(a.sec_per_sample, c.sec_per_sample)
    # a client's device does not depend on how many other clients exist
    big = DeviceModel(cfg, 80, seed=3)
    assert np.array_equal(big.sec_per_sample[:50], a.sec_per_sample)


def test_lognormal_medians_and_spread():
    m = DeviceModel(
        DeviceConfig(devices="lognormal", sec_per_sample=0.01, bandwidth_kbps=500.0, speed_sigma=0.6), 20_000, seed=0
    )
    assert np.median(m.sec_per_sample) == pytest.approx(0.01, rel=0.03)
    assert np.median(m.bandwidth) == pytest.approx(500.0, rel=0.03)
    assert np.std(np.log(m.sec_per_sample)) == pytest.approx(0.6, rel=0.03)
    u = DeviceModel(DeviceConfig(devices="uniform"), 10, seed=0)
    assert np.all(u.sec_per_sample == 0.005)


def _uniform(**kw):
    # 0.1 s per sample, 8000 kbit/s: 1000 bytes each way take 2 ms
    return DeviceModel(DeviceConfig(devices="uniform", sec_per_sample=0.1, bandwidth_kbps=8000.0, **kw), 4, seed=0)


def test_completion_time_is_compute_plus_communication():
    m = _uniform()
    t = m.completion_times(np.array([0, 2]), np.array([10, 99, 30, 5]), epochs=2, bytes_down=1000, bytes_up=1000)
    assert np.allclose(t, [10 * 2 * 0.1 + 0.002, 30 * 2 * 0.1 + 0.002])


def test_deadline_drops_and_counts_stragglers():
    m = _uniform(deadline=2.5)
    sizes = np.array([10, 20, 30, 5])  # finish at 1.002, 2.002, 3.002, 0.502 s
    p = m.plan(np.array([0, 1, 2]), k=3, sizes=sizes, epochs=1, bytes_down=1000, bytes_up=1000)
    assert p.kept.tolist() == [0, 1] and p.stragglers.tolist() == [2] and p.surplus.tolist() == []
    assert p.duration == 2.5  # the server waited out the deadline for client 2
    p = m.plan(np.array([0, 3]), k=2, sizes=sizes, epochs=1, bytes_down=1000, bytes_up=1000)
    assert p.kept.tolist() == [0, 3] and p.duration == pytest.approx(1.002)
    p = m.plan(np.array([2]), k=1, sizes=sizes, epochs=1, bytes_down=1000, bytes_up=1000)
    assert p.kept.tolist() == [] and p.stragglers.tolist() == [2] and p.duration == 2.5


def test_over_selection_keeps_the_first_k():
    m = _uniform(over_select=1.5)
    assert m.selection_size(2) == 3 and m.selection_size(10) == 15
    sizes = np.array([10, 20, 30, 5])
    p = m.plan(np.array([0, 1, 3]), k=2, sizes=sizes, epochs=1, bytes_down=1000, bytes_up=1000)
    assert p.kept.tolist() == [0, 3] and p.surplus.tolist() == [1] and p.stragglers.tolist() == []
    assert p.duration == pytest.approx(1.002)  # the 2nd update closes the round
    # both: over-select, and the deadline still binds
    m = _uniform(over_select=2.0, deadline=2.5)
    p = m.plan(np.array([0, 1, 2, 3]), k=2, sizes=sizes, epochs=1, bytes_down=1000, bytes_up=1000)
    assert p.kept.tolist() == [0, 3] and p.surplus.tolist() == [1] and p.stragglers.tolist() == [2]
    assert p.duration == pytest.approx(1.002)


def test_availability_patterns():
    n = 4000
    always = DeviceModel(DeviceConfig(devices="uniform"), n, 0)
    assert always.online(5.0, 1).all()
    b = DeviceModel(DeviceConfig(devices="uniform", availability="bernoulli", avail_p=0.3), n, 0)
    assert b.online(0.0, 1).mean() == pytest.approx(0.3, abs=0.03)
    assert not np.array_equal(b.online(0.0, 1), b.online(0.0, 2))  # redrawn every round
    d = DeviceModel(DeviceConfig(devices="uniform", availability="diurnal", avail_p=0.25, diurnal_period=100.0), n, 0)
    assert d.online(0.0, 1).mean() == pytest.approx(0.25, abs=0.03)
    assert np.array_equal(d.online(10.0, 1), d.online(110.0, 7))  # periodic in time, not in rounds
    assert (d.online(0.0, 1) != d.online(50.0, 1)).mean() > 0.4


@pytest.mark.parametrize("fmt", ["pkl", "json"])
def test_fedscale_trace_files(tmp_path, fmt):
    cap = {1: {"computation": 20.0, "communication": 1000.0}, 2: {"computation": 40.0, "communication": 250.0}}
    beh = {
        "a": {"active": [0.0, 50.0], "inactive": [10.0, 60.0], "finish_time": 100.0, "duration": 100.0},
        "b": {"active": [20.0], "inactive": [80.0], "finish_time": 100.0, "duration": 100.0},
    }
    paths = []
    for name, obj in (("cap", cap), ("beh", beh)):
        p = tmp_path / f"{name}.{fmt}"
        if fmt == "pkl":
            p.write_bytes(pickle.dumps(obj))
        else:
            p.write_text(json.dumps(obj))
        paths.append(str(p))
    m = DeviceModel(DeviceConfig(devices=paths[0], availability=paths[1]), 5, seed=0)
    # client i takes the (i mod 2)-th entry; training is 3x FedScale's inference latency (ms/sample)
    assert np.allclose(m.sec_per_sample, [0.06, 0.12, 0.06, 0.12, 0.06])
    assert np.allclose(m.bandwidth, [1000, 250, 1000, 250, 1000])
    assert m.online(5.0, 1).tolist() == [True, False, True, False, True]
    assert m.online(155.0, 1).tolist() == [True, True, True, True, True]  # t mod 100 = 55
    assert m.online(30.0, 1).tolist() == [False, True, False, True, False]


def test_a_trace_pickle_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({1: Evil()}))
    with pytest.raises(ConfigError, match="devices.devices"):
        DeviceModel(DeviceConfig(devices=str(p)), 3, seed=0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"1": {"computation": 1.0}}))
    with pytest.raises(ConfigError, match="communication"):
        DeviceModel(DeviceConfig(devices=str(bad)), 3, seed=0)
    with pytest.raises(ConfigError, match="devices.devices.*does not exist"):
        DeviceConfig(devices=str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="devices.availability.*does not exist"):
        DeviceConfig(devices="uniform", availability=str(tmp_path / "missing.pkl"))


@pytest.mark.parametrize(
    "kw, option",
    [
        ({"devices": "fast"}, "devices.devices"),
        ({"devices": "uniform", "availability": "sometimes"}, "devices.availability"),
        ({"devices": "uniform", "deadline": 0.0}, "devices.deadline"),
        ({"devices": "uniform", "over_select": 0.5}, "devices.over_select"),
        ({"deadline": 3.0}, "devices.devices"),
        ({"devices": "uniform", "avail_p": 0.0}, "devices.avail_p"),
    ],
)
def test_bad_settings_name_the_option(kw, option):
    with pytest.raises(ConfigError, match=option):
        DeviceConfig(**kw)


def test_sampling_among_the_online_clients():
    assert np.array_equal(sample_among(np.arange(50), 10, 3, 7), sample_clients(50, 10, 3, 7))
    cand = np.array([1, 5, 9, 20, 33])
    s = sample_among(cand, 3, 0, 1)
    assert len(s) == 3 and set(s.tolist()) <= set(cand.tolist())
    assert sample_among(cand, 9, 0, 1).tolist() == cand.tolist()  # fewer online than asked: all of them
    draws = [len(poisson_sample(100, 0.2, 0, r)) for r in range(200)]
    assert np.mean(draws) == pytest.approx(20, rel=0.05) and np.std(draws) > 2
    assert np.array_equal(poisson_sample(100, 0.2, 0, 4), poisson_sample(100, 0.2, 0, 4))
