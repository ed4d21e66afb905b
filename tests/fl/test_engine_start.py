"""The Ray engine starting its own local Ray, as `--backend ray` without `--address` does: it
listens on loopback only, even when the user's environment does not ask for that and Ray was
imported first, and close() shuts it down again. Runs in a subprocess with a clean environment
(conftest.py sets the loopback variable for this process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json
import numpy as np
import ray, psutil  # Ray imported before the engine: the engine must still pick loopback
from gptfl_ray.config import EngineConfig
from gptfl_ray.fl.client import LocalTrainConfig
from gptfl_ray.fl.engine import RayEngine
from gptfl_ray.fl.executor import ExecutorSpec
from gptfl_ray.models.factory import ModelFactory
from gptfl_ray.models.params import get_flat

rng = np.random.default_rng(0)
x, y = rng.standard_normal((40, 1, 4, 4), dtype=np.float32), rng.integers(0, 3, 40)
parts = [np.arange(i * 10, i * 10 + 10) for i in range(4)]
spec = ExecutorSpec(model_fn=ModelFactory("mlp", (1, 4, 4), 3), local=LocalTrainConfig(), seed=0)
eng = RayEngine(spec, x, y, parts, EngineConfig(backend="ray", num_actors=1))
out = {"nodes": [n["NodeManagerAddress"] for n in ray.nodes()], "listening": []}
me = psutil.Process()
for p in [me, *me.children(recursive=True)]:
    try:
        out["listening"] += [c.laddr.ip for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
out["count"] = eng.run_round(get_flat(spec.model_fn()), [0, 2], 1).partial.count
eng.close()
out["initialized_after_close"] = ray.is_initialized()
print("RESULT " + json.dumps(out))
"""


def test_engine_starts_loopback_ray_and_stops_it():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    out = json.loads(line[0][7:])
    assert out["nodes"] == ["127.0.0.1"]
    assert out["listening"] and set(out["listening"]) <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, out["listening"]
    assert out["count"] == 2
    assert out["initialized_after_close"] is False  # it started Ray, so close() stopped it
