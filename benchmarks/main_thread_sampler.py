"""Where a gptfl-ray command's main thread spends its time: its stack sampled every 50 ms, the
frames of gptfl_ray, ray and torch printed whenever they change, at exit (stderr).

    FROM=0 .venv/bin/python benchmarks/main_thread_sampler.py federate --backend ray ... 2>stacks.txt
"""

import atexit
import os
import sys
import threading
import time
import traceback

T0 = time.perf_counter()
main_id = threading.main_thread().ident
samples = []


def loop():
    while True:
        f = sys._current_frames().get(main_id)
        if f is not None:
            st = traceback.extract_stack(f)
            frames = [
                f"{os.path.basename(x.filename)}:{x.lineno}:{x.name}"
                for x in st
                if "gptfl" in x.filename or "ray" in x.filename or "torch" in x.filename
            ][-4:]
            samples.append((time.perf_counter() - T0, " < ".join(reversed(frames))))
        time.sleep(0.05)


threading.Thread(target=loop, daemon=True).start()


def dump():
    last = None
    for t, s in samples:
        if t > float(os.environ.get("FROM", "0")) and s != last:
            print(f"{t:6.2f} {s[:260]}", file=sys.stderr)
            last = s
    print(f"{time.perf_counter() - T0:6.2f} atexit-dump", file=sys.stderr)


atexit.register(dump)
sys.argv = ["gptfl-ray", *sys.argv[1:]]
from gptfl_ray.cli.main import main  # noqa: E402

main()
