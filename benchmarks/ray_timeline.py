"""When each process of one cold `gptfl-ray federate --backend ray` run (issue 14's digits job)
appears and is retitled (ray::IDLE -> ray::ExecutorActor...), polled every 50 ms, and when
metrics.jsonl gets its first line (round 0) and its last (the last round). Needs psutil (run it with the pfl or Flower venv):

    /work/pfl-venv/bin/python benchmarks/ray_timeline.py /tmp/tl1 [extra federate options]
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_peers import WORKLOAD, gptfl_cmd  # noqa: E402  (the issue-14 job, as bench_peers runs it)

out = sys.argv[1]
extra = sys.argv[2:]
cmd = [*gptfl_cmd(HERE.parent / ".venv", WORKLOAD, Path(out), "ray", 1.0), *extra]
env = {
    **os.environ,
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "TERM": "dumb",
}
t0 = time.perf_counter()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
seen = {}
events = []
lines_seen = 0


def title(q):
    try:
        c = q.cmdline()
    except psutil.Error:
        return None
    if not c:
        return None
    if c[0].startswith("ray::"):
        return c[0].split()[0]
    prog = next((x for x in c[1:] if not x.startswith("-")), c[0]) if "python" in c[0] else c[0]
    return prog.rsplit("/", 1)[-1][:40]


while p.poll() is None:
    t = time.perf_counter() - t0
    try:
        procs = [psutil.Process(p.pid)] + psutil.Process(p.pid).children(recursive=True)
    except psutil.Error:
        procs = []
    for q in procs:
        n = title(q)
        if n is None:
            continue
        if seen.get(q.pid) != n:
            events.append((round(t, 2), q.pid, n))
            seen[q.pid] = n
    mf = os.path.join(out, "metrics.jsonl")
    if os.path.exists(mf):
        k = sum(1 for _ in open(mf))
        if k > lines_seen:
            if lines_seen == 0 or k > WORKLOAD["rounds"]:
                events.append((round(t, 2), 0, f"metrics line {k}"))
            lines_seen = k
    time.sleep(0.05)
events.append((round(time.perf_counter() - t0, 2), 0, "exit"))
for e in events:
    print(f"{e[0]:6.2f}s {e[1]:>7} {e[2]}")
