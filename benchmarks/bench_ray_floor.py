"""The floor under `federate --backend ray` on this machine: what a Ray run pays before any training.

Issue 14 asks the Ray path to finish the digits job in <= 0.8x pfl-research's wall time. This
script measures the fixed costs that no change to the round loop can remove, each as a whole
child process (interpreter start to exit), alternating the variants, `--repeats` times each:

  torch          python -c "import torch"
  ray            Ray started as `federate` starts it (`ray_runtime.start_ray` on its thread while
                 torch is imported, `ensure_ray`, `stop_ray`), nothing run on it
  ray+actors     that, plus 2 actors of 1 CPU each (the job's pool on 2 cores) that import torch
                 and gptfl-ray's executor, waited for until ready
  ray+actors+grad  that, plus one `torch.func.grad` call in each actor: its first call imports
                 torch._dynamo, which the vectorized executor's first round pays
  federate       the issue-14 job itself, `gptfl-ray federate ... --backend ray --client-cpus 1`
  pfl            pfl-research's run of the same job (`--pfl-python`, skipped when absent)

Prints a markdown table of medians (min-max) and each variant's ratio to pfl's median:

    /work/pfl-venv/bin/python benchmarks/bench_ray_floor.py --repeats 3 --python .venv/bin/python

(it reuses bench_peers.py's job and flags, which imports psutil: run it from the pfl or Flower venv.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from bench_peers import WORKLOAD, gptfl_cmd, workload_args  # noqa: E402  (the same job, the same flags)

_START = """
from gptfl_ray.ray_runtime import ACTOR_MODULES, ensure_ray, start_ray, stop_ray
start_ray(preload=ACTOR_MODULES)
import torch
ensure_ray()
"""
_ACTORS = """
import ray

@ray.remote(num_cpus=1)
class Probe:
    def __init__(self):
        import gptfl_ray.fl.executor  # noqa: F401  (what an executor actor imports)

    def grad(self):
        import torch
        return float(torch.func.grad(lambda w: (w * w).sum())(torch.ones(3)).sum())

actors = [Probe.remote() for _ in range(2)]
ray.get([a.__ray_ready__.remote() for a in actors])
"""
VARIANTS = {
    "torch": "import torch",
    "ray": _START + "stop_ray()\n",
    "ray+actors": _START + _ACTORS + "stop_ray()\n",
    "ray+actors+grad": _START + _ACTORS + "ray.get([a.grad.remote() for a in actors])\nstop_ray()\n",
}


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _timed(cmd: list[str], cwd: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--python", default=sys.executable, help="gptfl-ray's venv Python")
    ap.add_argument("--pfl-python", default="/work/pfl-venv/bin/python")
    args = ap.parse_args()
    if args.repeats < 1:
        raise SystemExit("error: --repeats: must be >= 1")
    work = tempfile.mkdtemp(prefix="ray-floor-")
    venv = Path(args.python).parent.parent
    runs: dict[str, list[float]] = {}
    names = [*VARIANTS, "federate"] + (["pfl"] if Path(args.pfl_python).is_file() else [])
    print(f"load before: {os.getloadavg()[0]:.2f}", flush=True)
    for i in range(args.repeats):
        for name in names:
            if name in VARIANTS:
                cmd = [args.python, "-c", VARIANTS[name]]
            elif name == "federate":
                cmd = gptfl_cmd(venv, WORKLOAD, Path(work) / f"fed{i}", "ray", 1)
            else:
                cmd = [args.pfl_python, str(HERE / "pfl" / "pfl_digits.py"), "--threads", "1", "--sampler", "gptfl"]
                cmd += [*workload_args(WORKLOAD), "--json-out", str(Path(work) / f"pfl{i}.json")]
            runs.setdefault(name, []).append(_timed(cmd, work))
            print(f"  {name} #{i + 1}: {runs[name][-1]:.2f} s (load {os.getloadavg()[0]:.2f})", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}\n")
    pfl = statistics.median(runs["pfl"]) if "pfl" in runs else None
    print("| variant | wall s (median, min-max) | / pfl |")
    print("|---|---|---|")
    for name in names:
        w = runs[name]
        ratio = f"{statistics.median(w) / pfl:.2f}x" if pfl else "-"
        print(f"| {name} | {statistics.median(w):.2f} ({min(w):.2f}-{max(w):.2f}) | {ratio} |")


if __name__ == "__main__":
    main()
