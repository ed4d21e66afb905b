"""gptfl-ray vs Flower's simulation engine on the same digits workload (benchmarks/flower/README.md).

Runs, alternating and `--repeats` times each, two subprocesses that do the same federated job:

  gptfl-ray  <venv>/bin/gptfl-ray federate --dataset digits --model cnn --clients 50
             --partition dirichlet --alpha 0.1 --clients-per-round 10 --rounds 30 --local-epochs 2
             --batch-size 16 --lr 0.05 --momentum 0.9 --seed 0 --backend ray --client-cpus 1
  flower     <flower-venv>/bin/python benchmarks/flower/flower_digits.py (same settings, Flower
             1.41 ClientApp/ServerApp/FedAvg on its Ray backend, 1 CPU per virtual client)

and measures each from outside, the same way for both: wall time of the whole process (Python
imports, data, Ray start-up and shutdown included), the peak memory of the process tree (sum of
RSS, and of PSS, over the subprocess and all its descendants, sampled every 0.2 s), and when each
round's test-set evaluation landed (gptfl-ray: new lines of <out>/metrics.jsonl, polled every
0.2 s; Flower: its evaluate_fn's own timestamps), from which "rounds 2..R" is the steady-state
time with start-up and the first round left out. Final accuracy comes from each side's output
(gptfl-ray: the last line of metrics.jsonl). Prints a markdown table with mean +- half-range,
and the Flower / gptfl-ray ratios.

Needs a Python with psutil (the Flower venv has it):

    /work/flower-venv/bin/python benchmarks/bench_flower.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "flower"))
from proctree import TreeSampler  # noqa: E402

REPO = HERE.parent
# gptfl-ray-local (`--backend local`: no Ray, clients run one after another in the CLI's process)
# is optional: it shows what Ray's start-up costs on a job this small.
SYSTEMS = ("gptfl-ray", "flower", "gptfl-ray-local")
WORKLOAD = {
    "clients": 50,
    "alpha": 0.1,
    "clients_per_round": 10,
    "rounds": 30,
    "local_epochs": 2,
    "batch_size": 16,
    "lr": 0.05,
    "momentum": 0.9,
    "seed": 0,
}


def bench_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "RAY_ADDRESS")}
    env.update(
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        FLWR_TELEMETRY_ENABLED="0",
        PYTHONUNBUFFERED="1",
        TERM="dumb",
        COLUMNS="120",
    )
    return env


def gptfl_cmd(exe: str, w: dict, out_dir: Path, backend: str = "ray") -> list[str]:
    engine = ["--backend", "ray", "--client-cpus", "1"] if backend == "ray" else ["--backend", "local"]
    return [
        exe,
        "federate",
        "--dataset",
        "digits",
        "--model",
        "cnn",
        "--clients",
        str(w["clients"]),
        "--partition",
        "dirichlet",
        "--alpha",
        str(w["alpha"]),
        "--clients-per-round",
        str(w["clients_per_round"]),
        "--rounds",
        str(w["rounds"]),
        "--local-epochs",
        str(w["local_epochs"]),
        "--batch-size",
        str(w["batch_size"]),
        "--lr",
        str(w["lr"]),
        "--momentum",
        str(w["momentum"]),
        "--seed",
        str(w["seed"]),
        *engine,
        "--output-dir",
        str(out_dir),
    ]


def flower_cmd(python: str, w: dict, json_out: Path) -> list[str]:
    return [
        python,
        str(HERE / "flower" / "flower_digits.py"),
        "--clients",
        str(w["clients"]),
        "--alpha",
        str(w["alpha"]),
        "--clients-per-round",
        str(w["clients_per_round"]),
        "--rounds",
        str(w["rounds"]),
        "--local-epochs",
        str(w["local_epochs"]),
        "--batch-size",
        str(w["batch_size"]),
        "--lr",
        str(w["lr"]),
        "--momentum",
        str(w["momentum"]),
        "--seed",
        str(w["seed"]),
        "--client-cpus",
        "1",
        "--json-out",
        str(json_out),
    ]


class LineWatcher:
    """Timestamps each new line of a growing JSONL file (polled from the sampler's thread)."""

    def __init__(self, path: Path, t0: float):
        self.path, self.t0, self.seen = path, t0, {}

    def __call__(self) -> None:
        try:
            text = self.path.read_text("utf-8")
        except OSError:
            return
        for line in text.splitlines():
            if line.strip():
                try:
                    r = json.loads(line)["round"]
                except (ValueError, KeyError):
                    continue  # a line still being written
                self.seen.setdefault(r, time.perf_counter() - self.t0)


def run_one(
    system: str, cmd: list[str], work: Path, i: int, timeout: float, watch: Path | None = None, extra_roots=()
) -> dict:
    """One whole process, timed and sampled; `extra_roots`: process trees that count too (a Ray
    head the command joins: its memory, and the CPU seconds its processes use during the run)."""
    log = work / f"{system}-{i}.log"
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=bench_env(), cwd=str(work))
        watcher = LineWatcher(watch, t0) if watch is not None else None
        sampler = TreeSampler(proc.pid, interval=0.2, pss_every=5, on_tick=watcher, extra_roots=extra_roots)
        sampler.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "timeout"
        wall = time.perf_counter() - t0
        sampler.stop()
    if watcher is not None:
        watcher()
    if rc != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{system} run {i} failed (exit {rc}); log {log}:\n{tail}")
    return {
        "system": system,
        "repeat": i,
        "wall_s": wall,
        "log": str(log),
        **sampler.report(),
        **({"_rounds": watcher.seen} if watcher is not None else {}),
    }


def read_gptfl(res: dict, out_dir: Path, rounds: int) -> dict:
    rows = [json.loads(l) for l in (out_dir / "metrics.jsonl").read_text().splitlines() if l.strip()]
    ends = res.pop("_rounds")
    res["final_accuracy"] = rows[-1]["accuracy"]
    res["first_round_done_s"] = ends.get(1)
    res["rounds_2_to_last_s"] = ends[rounds] - ends[1] if rounds in ends and 1 in ends else None
    return res


def read_flower(res: dict, json_out: Path) -> dict:
    d = json.loads(json_out.read_text())
    ends = {int(k): v for k, v in d["round_end_s"].items()}
    res["final_accuracy"] = d["final_accuracy"]
    # Flower's own clock starts a few ms after the process does; the difference is in wall_s only.
    res["first_round_done_s"] = ends.get(1)
    res["rounds_2_to_last_s"] = d["rounds_2_to_last_s"]
    # What the script measured of itself (its clock starts before its imports, not at exec).
    res["inner"] = {
        k: d[k]
        for k in (
            "flwr_version",
            "ray_version",
            "wall_incl_startup_s",
            "ray_startup_s",
            "wall_excl_ray_startup_s",
            "simulation_s",
            "peak_rss_mb",
            "peak_pss_mb",
            "cpu_s",
        )
    }
    return res


def spread(vals: list[float], fmt: str = "{:.1f}") -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "n/a"
    mean = statistics.fmean(vals)
    half = (max(vals) - min(vals)) / 2
    return (fmt + " ± " + fmt).format(mean, half) if len(vals) > 1 else fmt.format(mean)


def mean(vals):
    vals = [v for v in vals if v is not None]
    return statistics.fmean(vals) if vals else float("nan")


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "n/a"


def table(results: list[dict], rounds: int) -> str:
    names = [s for s in SYSTEMS if any(r["system"] == s for r in results)]
    by = {s: [r for r in results if r["system"] == s] for s in names}
    cols = [
        "system",
        "runs",
        "wall s (process)",
        "1st round done s",
        f"rounds 2..{rounds} s",
        "CPU s (tree)",
        "peak RSS MB",
        "peak PSS MB",
        "final accuracy",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for s, rs in by.items():
        lines.append(
            "| "
            + " | ".join(
                [
                    s,
                    str(len(rs)),
                    spread([r["wall_s"] for r in rs]),
                    spread([r["first_round_done_s"] for r in rs]),
                    spread([r["rounds_2_to_last_s"] for r in rs]),
                    spread([r["cpu_s"] for r in rs]),
                    spread([r["peak_rss_mb"] for r in rs], "{:.0f}"),
                    spread([r["peak_pss_mb"] for r in rs], "{:.0f}"),
                    spread([r["final_accuracy"] for r in rs], "{:.3f}"),
                ]
            )
            + " |"
        )
    if not ("gptfl-ray" in by and "flower" in by):
        return "\n".join(lines)
    g, f = by["gptfl-ray"], by["flower"]

    def ratio(key):
        a, b = mean([r[key] for r in f]), mean([r[key] for r in g])
        return f"{a / b:.2f}x" if b else "n/a"

    lines.append(
        "| "
        + " | ".join(
            [
                "ratio Flower / gptfl-ray",
                "",
                ratio("wall_s"),
                ratio("first_round_done_s"),
                ratio("rounds_2_to_last_s"),
                ratio("cpu_s"),
                ratio("peak_rss_mb"),
                ratio("peak_pss_mb"),
                f"{mean([r['final_accuracy'] for r in f]) - mean([r['final_accuracy'] for r in g]):+.3f} (difference)",
            ]
        )
        + " |"
    )
    # Paired ratios: each repeat's Flower run against the gptfl-ray run next to it (same load).
    pairs = [fw["wall_s"] / gw["wall_s"] for gw, fw in zip(g, f)]
    cpu = [fw["cpu_s"] / gw["cpu_s"] for gw, fw in zip(g, f)]
    steady = [
        fw["rounds_2_to_last_s"] / gw["rounds_2_to_last_s"]
        for gw, fw in zip(g, f)
        if fw["rounds_2_to_last_s"] and gw["rounds_2_to_last_s"]
    ]
    lines.append("")
    lines.append(
        f"Paired Flower/gptfl-ray ratios per repeat: wall {', '.join(f'{p:.2f}' for p in pairs)}; "
        f"rounds 2..{rounds} {', '.join(f'{p:.2f}' for p in steady)}; CPU {', '.join(f'{p:.2f}' for p in cpu)}"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="gptfl-ray vs Flower on the digits workload")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=WORKLOAD["rounds"])
    p.add_argument("--gptfl", default=str(REPO / ".venv" / "bin" / "gptfl-ray"), help="the gptfl-ray CLI")
    p.add_argument("--flower-python", default="/work/flower-venv/bin/python", help="python of the Flower venv")
    p.add_argument(
        "--systems",
        default="gptfl-ray,flower",
        help=f"comma-separated, from {', '.join(SYSTEMS)} (run in this order, reversed on odd repeats)",
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    p.add_argument("--work-dir", default=None, help="keep logs and outputs here (default: a temp dir)")
    p.add_argument("--json-out", default=None, help="write every run's measurements here")
    a = p.parse_args(argv)
    w = dict(WORKLOAD, rounds=a.rounds)
    systems = [x.strip() for x in a.systems.split(",") if x.strip()]
    if not systems or any(x not in SYSTEMS for x in systems):
        raise SystemExit(f"--systems: choose from {', '.join(SYSTEMS)}")
    for exe in ([a.gptfl] if any(x.startswith("gptfl") for x in systems) else []) + (
        [a.flower_python] if "flower" in systems else []
    ):
        if not Path(exe).exists():
            raise SystemExit(f"{exe} not found (see benchmarks/flower/README.md)")
    work = Path(a.work_dir or tempfile.mkdtemp(prefix="bench-flower-"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = uptime()
    print(f"load before: {load_before}\nwork dir: {work}", flush=True)

    results = []
    for i in range(a.repeats):
        order = systems if i % 2 == 0 else systems[::-1]
        for system in order:
            if system.startswith("gptfl-ray"):
                backend = "local" if system.endswith("-local") else "ray"
                out = work / f"{system}-{i}"
                r = run_one(
                    system, gptfl_cmd(a.gptfl, w, out, backend), work, i, a.timeout, watch=out / "metrics.jsonl"
                )
                r = read_gptfl(r, out, w["rounds"])
            else:
                jo = work / f"flower-{i}.json"
                r = read_flower(run_one(system, flower_cmd(a.flower_python, w, jo), work, i, a.timeout), jo)
            results.append(r)
            print(
                f"  {system} #{i}: wall {r['wall_s']:.1f}s, first round done {r['first_round_done_s'] or 0:.1f}s, "
                f"rounds 2..{w['rounds']} {r['rounds_2_to_last_s'] or 0:.1f}s, CPU {r['cpu_s']:.1f}s, peak RSS {r['peak_rss_mb']:.0f} MB "
                f"(PSS {r['peak_pss_mb']:.0f}), accuracy {r['final_accuracy']:.4f}  [{uptime()}]",
                flush=True,
            )
    load_after = uptime()
    print(f"load after: {load_after}\n")
    print(table(results, w["rounds"]))
    if a.json_out:
        Path(a.json_out).write_text(
            json.dumps({"workload": w, "load_before": load_before, "load_after": load_after, "runs": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
