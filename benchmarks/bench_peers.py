"""gptfl-ray against its peers on one digits job: a plain loop, pfl-research, Flower (issue 14).

Runs, alternating and `--repeats` times each, whole subprocesses that do the same federated job
(benchmarks/pfl/README.md), each from its own venv:

  plain            <plain-venv>/bin/python benchmarks/plain_loop.py: a plain single-process
                   PyTorch loop around gptfl-ray's sampler, client_update and evaluation
  pfl              <pfl-venv>/bin/python benchmarks/pfl/pfl_digits.py: pfl-research's
                   SimulatedBackend + FederatedAveraging, one process
  gptfl-ray        <gptfl-venv>/bin/gptfl-ray federate ... --backend ray --client-cpus 1
  gptfl-ray-local  the same with --backend local (no Ray, clients in the CLI's process)
  gptfl-ray-attached  the --backend ray command with --address, joining a Ray head node that
                   this script starts before each such run, untimed (`ray start --head`, loopback,
                   the same worker preload federate gives a Ray it starts itself): a researcher's
                   second run on a laptop or a cluster, where Ray is already up. Its CPU and
                   memory columns add the head node's processes (their CPU seconds during the
                   run, their memory as sampled) to the command's own tree
  flower           <flower-venv>/bin/python benchmarks/flower/flower_digits.py: Flower's
                   simulation engine on its Ray backend, 1 CPU per virtual client

The job (issue 14): digits, the `cnn`, 50 clients, Dirichlet alpha 0.1, 10 clients per round,
30 rounds, 1 local epoch, batch 10, SGD lr 0.05 without momentum, seed 0, FedAvg weighted by
sample count, server-side evaluation (test and validation split) before round 1 and after every
round. All five build the data, split, initial model and local update from gptfl-ray's code, so
round 0's accuracy is the same everywhere; the harness checks it.

Each run is measured from outside the same way (bench_flower.py's approach): wall time of the
whole process (imports, data, Ray start-up and shutdown included), peak RSS / PSS and CPU
seconds of the process tree (flower/proctree.py, sampled every 0.2 s), when round 1's and the
last round's evaluations landed (gptfl-ray: new lines of <out>/metrics.jsonl; the scripts: their
own timestamps), and the round-0 and final test accuracy each side reports. Prints a markdown
table of medians, each system's wall-time ratio to the plain loop and to pfl, and the ratios the
issue sets targets for: gptfl-ray / pfl <= 0.8, gptfl-ray / plain <= 1.0, Flower / gptfl-ray >= 3.

Needs a Python with psutil (the pfl and Flower venvs have it; gptfl-ray's does not):

    /work/pfl-venv/bin/python benchmarks/bench_peers.py --repeats 3
    /work/pfl-venv/bin/python benchmarks/bench_peers.py --repeats 1 --rounds 2   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_flower import bench_env, run_one, uptime  # noqa: E402

REPO = HERE.parent
SYSTEMS = ("plain", "pfl", "gptfl-ray", "gptfl-ray-attached", "gptfl-ray-local", "flower")
HEAD_PORT = 6391  # the attached runs' Ray head, on 127.0.0.1
WORKLOAD = {
    "clients": 50,
    "alpha": 0.1,
    "clients_per_round": 10,
    "rounds": 30,
    "local_epochs": 1,
    "batch_size": 10,
    "lr": 0.05,
    "momentum": 0.0,
    "seed": 0,
}
# the targets on wall time: (numerator, denominator, "<=" or ">=", bound)
TARGETS = (("gptfl-ray", "pfl", "<=", 0.8), ("gptfl-ray", "plain", "<=", 1.0), ("flower", "gptfl-ray", ">=", 3.0))


def workload_args(w: dict) -> list[str]:
    out = []
    for key in ("clients", "alpha", "clients_per_round", "rounds", "local_epochs", "batch_size", "lr", "momentum"):
        out += ["--" + key.replace("_", "-"), str(w[key])]
    return out + ["--seed", str(w["seed"])]


def gptfl_cmd(
    venv: Path, w: dict, out_dir: Path, backend: str, client_cpus: float, address: str | None = None
) -> list[str]:
    engine = ["--backend", "ray", "--client-cpus", str(client_cpus)] if backend == "ray" else ["--backend", "local"]
    if address:
        engine += ["--address", address]
    return [
        str(venv / "bin" / "gptfl-ray"),
        "federate",
        "--dataset",
        "digits",
        "--model",
        "cnn",
        "--partition",
        "dirichlet",
        *workload_args(w),
        "--eval-every",
        "1",
        *engine,
        "--output-dir",
        str(out_dir),
    ]


def script_cmd(a, system: str, w: dict, json_out: Path) -> list[str]:
    if system == "plain":
        head = [str(Path(a.plain_venv) / "bin" / "python"), str(HERE / "plain_loop.py"), "--threads", str(a.threads)]
    elif system == "pfl":
        head = [str(Path(a.pfl_venv) / "bin" / "python"), str(HERE / "pfl" / "pfl_digits.py")]
        head += ["--threads", str(a.threads), "--sampler", a.pfl_sampler]
    else:
        head = [str(Path(a.flower_venv) / "bin" / "python"), str(HERE / "flower" / "flower_digits.py")]
        head += ["--client-cpus", str(a.client_cpus)]
    return [*head, *workload_args(w), "--json-out", str(json_out)]


def read_gptfl(res: dict, out_dir: Path, rounds: int) -> dict:
    rows = [json.loads(l) for l in (out_dir / "metrics.jsonl").read_text().splitlines() if l.strip()]
    ends = res.pop("_rounds")
    res["round0_accuracy"] = rows[0]["accuracy"]
    res["final_accuracy"] = rows[-1]["accuracy"]
    res["final_loss"] = rows[-1]["loss"]
    res["first_round_done_s"] = ends.get(1)
    res["rounds_2_to_last_s"] = ends[rounds] - ends[1] if rounds in ends and 1 in ends and rounds > 1 else None
    return res


def read_script(res: dict, json_out: Path) -> dict:
    d = json.loads(json_out.read_text())
    ends = {int(k): v for k, v in d["round_end_s"].items()}
    res["round0_accuracy"] = d.get("round0_accuracy", d["accuracy_by_round"][0])
    res["final_accuracy"] = d["final_accuracy"]
    res["final_loss"] = d["final_loss"]
    # the script's clock starts at its first line, a few ms after exec; the difference is in wall_s only
    res["first_round_done_s"] = ends.get(1)
    res["rounds_2_to_last_s"] = d["rounds_2_to_last_s"]
    res["inner"] = {k: v for k, v in d.items() if k.endswith("_version") or k in ("threads", "sampler", "client_cpus")}
    return res


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, f="{:.1f}"):
    return "n/a" if v is None else f.format(v)


def table(results: list[dict], rounds: int) -> str:
    names = [s for s in SYSTEMS if any(r["system"] == s for r in results)]
    by = {s: [r for r in results if r["system"] == s] for s in names}
    wall = {s: med([r["wall_s"] for r in rs]) for s, rs in by.items()}

    def ratio(s, ref):
        return f"{wall[s] / wall[ref]:.2f}x" if ref in wall and wall[ref] else "n/a"

    cols = [
        "system",
        "runs",
        "wall s (median, min-max)",
        "/ plain",
        "/ pfl",
        "1st round done s",
        f"rounds 2..{rounds} s",
        "CPU s (tree)",
        "peak RSS MB",
        "peak PSS MB",
        "round-0 acc",
        "final acc",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for s, rs in by.items():
        walls = [r["wall_s"] for r in rs]
        finals = sorted({round(r["final_accuracy"], 4) for r in rs})
        lines.append(
            "| "
            + " | ".join(
                [
                    s,
                    str(len(rs)),
                    f"{wall[s]:.1f} ({min(walls):.1f}-{max(walls):.1f})",
                    ratio(s, "plain"),
                    ratio(s, "pfl"),
                    fmt(med([r["first_round_done_s"] for r in rs])),
                    fmt(med([r["rounds_2_to_last_s"] for r in rs])),
                    fmt(med([r["cpu_s"] for r in rs])),
                    fmt(med([r["peak_rss_mb"] for r in rs]), "{:.0f}"),
                    fmt(med([r["peak_pss_mb"] for r in rs]), "{:.0f}"),
                    ", ".join(sorted({f"{r['round0_accuracy']:.4f}" for r in rs})),
                    ", ".join(f"{v:.4f}" for v in finals),
                ]
            )
            + " |"
        )
    lines.append("")
    lines.append("| target (wall, medians) | ratio | target | met | paired per repeat |")
    lines.append("|---|---|---|---|---|")
    for num, den, op, bound in TARGETS:
        if num not in by or den not in by:
            continue
        value = wall[num] / wall[den]
        met = value <= bound if op == "<=" else value >= bound
        pairs = [n["wall_s"] / d["wall_s"] for n, d in zip(by[num], by[den])]
        lines.append(
            f"| {num} / {den} | {value:.2f} | {op} {bound} | {'yes' if met else 'no'} | "
            + ", ".join(f"{p:.2f}" for p in pairs)
            + " |"
        )
    zero = {f"{r['round0_accuracy']:.6f}" for r in results}
    lines.append("")
    lines.append(
        "Round-0 accuracy "
        + ("identical on every side: " + zero.pop() if len(zero) == 1 else "DIFFERS: " + ", ".join(sorted(zero)))
        + "."
    )
    return "\n".join(lines)


def run_system(a, system: str, w: dict, work: Path, i: int) -> dict:
    if system.endswith("-attached"):
        # The head runs only around its own runs: a second Ray on the machine slows the others'
        # start-up (cold gptfl-ray runs took 12.7-16.3 s beside an idle head, 9.0-9.3 s alone).
        head = RayHead(Path(a.gptfl_venv), work)
        try:
            out = work / f"{system}-{i}"
            cmd = gptfl_cmd(Path(a.gptfl_venv), w, out, "ray", a.client_cpus, head.address)
            r = run_one(system, cmd, work, i, a.timeout, watch=out / "metrics.jsonl", extra_roots=(head.proc.pid,))
        finally:
            head.stop()
        r = read_gptfl(r, out, w["rounds"])
    elif system.startswith("gptfl-ray"):
        out = work / f"{system}-{i}"
        backend = "local" if system.endswith("-local") else "ray"
        cmd = gptfl_cmd(Path(a.gptfl_venv), w, out, backend, a.client_cpus)
        r = read_gptfl(run_one(system, cmd, work, i, a.timeout, watch=out / "metrics.jsonl"), out, w["rounds"])
    else:
        jo = work / f"{system}-{i}.json"
        r = read_script(run_one(system, script_cmd(a, system, w, jo), work, i, a.timeout), jo)
    print(
        f"  {system} #{i}: wall {r['wall_s']:.1f}s, first round done {r['first_round_done_s'] or 0:.1f}s, "
        f"rounds 2..{w['rounds']} {r['rounds_2_to_last_s'] or 0:.1f}s, CPU {r['cpu_s']:.1f}s, "
        f"peak RSS {r['peak_rss_mb']:.0f} MB (PSS {r['peak_pss_mb']:.0f}), accuracy round 0 "
        f"{r['round0_accuracy']:.4f}, final {r['final_accuracy']:.4f} (loss {r['final_loss']:.6f})  [{uptime()}]",
        flush=True,
    )
    return r


class RayHead:
    """A local Ray head node for one attached run: started before it, stopped after it, both untimed."""

    def __init__(self, venv: Path, work: Path):
        env = {**bench_env(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
        env.setdefault("RAY_AUTH_MODE", "disabled")
        self.address = f"127.0.0.1:{HEAD_PORT}"
        cmd = [
            str(venv / "bin" / "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(HEAD_PORT),
            # its own temp dir: a head in /tmp/ray would be joined by any plain `ray.init()` on
            # this machine (Flower's, whose Ray release then refuses it)
            "--temp-dir",
            tempfile.mkdtemp(prefix="rayhead-", dir="/tmp"),
            "--include-dashboard",
            "false",
            "--disable-usage-stats",
            "--system-config",
            json.dumps({"preload_python_modules": ["gptfl_ray.fl.engine"]}),
        ]
        self.log = open(work / "ray-head.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        # Up once `ray start` says so (a probe driver would make the head start, and then kill,
        # worker processes just before the timed run).
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in (work / "ray-head.log").read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the Ray head for gptfl-ray-attached did not start; see {work / 'ray-head.log'}")
            time.sleep(0.2)
        time.sleep(1.0)  # its agents finish registering

    def stop(self) -> None:
        # SIGTERM makes `ray start --block` drain for up to 30 s; the head is disposable, so
        # its whole process group goes at once, and the next run starts on a quiet machine.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="gptfl-ray vs a plain loop, pfl-research and Flower on the digits job")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=WORKLOAD["rounds"])
    p.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated; run in this order, reversed on odd repeats"
    )
    p.add_argument("--gptfl-venv", default=str(REPO / ".venv"), help="venv with the gptfl-ray CLI")
    p.add_argument("--plain-venv", default=str(REPO / ".venv"), help="venv for plain_loop.py (torch + gptfl-ray)")
    p.add_argument("--pfl-venv", default="/work/pfl-venv", help="venv with pfl[pytorch] + gptfl-ray --no-deps")
    p.add_argument(
        "--flower-venv", default="/work/flower-venv", help="venv with flwr[simulation] + gptfl-ray --no-deps"
    )
    p.add_argument("--client-cpus", type=float, default=1.0, help="CPUs per Ray actor (gptfl-ray and Flower)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the single-process plain and pfl runs")
    p.add_argument(
        "--pfl-sampler",
        default="gptfl",
        choices=("gptfl", "random", "minimize_reuse"),
        help="pfl's user sampler: gptfl-ray's draws (default, same clients as gptfl-ray) or pfl's own",
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    p.add_argument("--work-dir", default=None, help="keep logs and outputs here (default: a temp dir)")
    p.add_argument("--json-out", default=None, help="write every run's measurements here")
    a = p.parse_args(argv)
    w = dict(WORKLOAD, rounds=a.rounds)
    systems = [x.strip() for x in a.systems.split(",") if x.strip()]
    if not systems or any(x not in SYSTEMS for x in systems):
        raise SystemExit(f"--systems: choose from {', '.join(SYSTEMS)}")
    need = {
        "plain": Path(a.plain_venv) / "bin" / "python",
        "pfl": Path(a.pfl_venv) / "bin" / "python",
        "gptfl-ray": Path(a.gptfl_venv) / "bin" / "gptfl-ray",
        "gptfl-ray-local": Path(a.gptfl_venv) / "bin" / "gptfl-ray",
        "gptfl-ray-attached": Path(a.gptfl_venv) / "bin" / "gptfl-ray",
        "flower": Path(a.flower_venv) / "bin" / "python",
    }
    for s in systems:
        if not need[s].exists():
            raise SystemExit(f"{s}: {need[s]} not found (see benchmarks/pfl/README.md)")
    work = Path(a.work_dir or tempfile.mkdtemp(prefix="bench-peers-"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = uptime()
    print(f"load before: {load_before}\nwork dir: {work}", flush=True)

    results = []
    for i in range(a.repeats):
        for system in systems if i % 2 == 0 else systems[::-1]:
            results.append(run_system(a, system, w, work, i))
    load_after = uptime()
    print(f"load after: {load_after}\n")
    print(table(results, w["rounds"]))
    if a.json_out:
        Path(a.json_out).write_text(
            json.dumps(
                {"workload": w, "args": vars(a), "load_before": load_before, "load_after": load_after, "runs": results},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
