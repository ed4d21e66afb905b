"""Peak memory and CPU time of a process tree: a process and all its descendants, sampled.

Shared by both sides of the Flower comparison (it needs only psutil, which the Flower venv has):
`flower_digits.py` samples its own tree from a background thread, `bench_flower.py` samples each
benchmark subprocess from outside. A Ray run is a driver plus raylet, GCS, dashboard/agents and
worker processes, all descendants of the driver, so the tree is the whole run.

- Memory: the sum of RSS over the tree at each sample, and its peak. RSS counts a page once per
  process that maps it, so torch's shared libraries and the object store's shared memory count in
  every worker that touches them; PSS splits each shared page among its users and sums to what the
  run really costs the machine. Both are reported (PSS every `pss_every`-th sample: it is slower).
- CPU: the user+system seconds of each process, as last seen alive, summed over the tree. On a
  machine shared with other jobs this is much steadier than wall time, which depends on how much
  of the cores the other jobs leave. A process that exits loses at most one interval of CPU.
"""

from __future__ import annotations

import threading

import psutil

MB = 1024 * 1024


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def label(p: psutil.Process) -> str:
    """A short name: Ray's worker titles (ray::ExecutorActor, ray::IDLE) or the program's file name."""
    try:
        cmd = p.cmdline()
    except psutil.Error:
        return "?"
    if not cmd:  # a zombie: its name is cut to 15 characters, let the caller keep the last one
        return "?"
    if cmd[0].startswith("ray::"):  # ray::ExecutorActor.run while busy: count it as ray::ExecutorActor
        return cmd[0].split()[0].split(".")[0]
    if "python" in cmd[0].rsplit("/", 1)[-1]:
        prog = next((c for c in cmd[1:] if not c.startswith("-")), cmd[0])
        return prog.rsplit("/", 1)[-1]
    return cmd[0].rsplit("/", 1)[-1]


class TreeSampler(threading.Thread):
    """Samples `pid`'s tree every `interval` s; keeps peak RSS/PSS and per-process CPU seconds.

    `on_tick`, if given, is called after every sample (the bench uses it to timestamp output).
    """

    def __init__(self, pid: int, interval: float = 0.2, pss_every: int = 5, on_tick=None, extra_roots=()):
        super().__init__(daemon=True)
        self.pid, self.interval, self.pss_every, self.on_tick = pid, interval, pss_every, on_tick
        # Trees of processes the command uses without owning (a Ray head it joins): their memory
        # counts, and their CPU seconds from now on (less what each had used before).
        self.extra_roots = tuple(extra_roots)
        self.cpu_before: dict[int, float] = {}
        for r in self.extra_roots:
            for p in tree(r):
                try:
                    t = p.cpu_times()
                except psutil.Error:
                    continue
                self.cpu_before[p.pid] = t.user + t.system
        self.peak_rss = self.peak_pss = self.peak_procs = self.samples = 0
        self.peak_breakdown: list[tuple[str, int]] = []  # (label, RSS) per process at the peak
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (label, user+system s last seen)
        self._stop_evt = threading.Event()

    def sample(self, pss: bool = False) -> None:
        rss = pss_sum = 0
        per: list[tuple[str, int]] = []
        own = tree(self.pid)
        own_pids = {p.pid for p in own}
        extra = [p for r in self.extra_roots for p in tree(r) if p.pid not in own_pids]
        for p in own + extra:
            try:
                with p.oneshot():
                    if pss:
                        info = p.memory_full_info()
                        pss_sum += info.pss
                    else:
                        info = p.memory_info()
                    t = p.cpu_times()
                    name = label(p)  # read each time: Ray retitles a worker that becomes an actor
                if name == "?":  # exiting: its command line is gone, keep the last name seen
                    name = self.cpu.get(p.pid, ("?", 0.0))[0]
            except psutil.Error:  # exited between listing and reading
                continue
            rss += info.rss
            per.append((name, info.rss))
            self.cpu[p.pid] = (name, t.user + t.system - self.cpu_before.get(p.pid, 0.0))
        if rss > self.peak_rss:
            self.peak_rss, self.peak_breakdown = rss, per
        self.peak_pss = max(self.peak_pss, pss_sum)
        self.peak_procs = max(self.peak_procs, len(per))
        self.samples += 1

    def run(self) -> None:
        while not self._stop_evt.is_set():
            self.sample(pss=(self.samples % self.pss_every == 0))
            if self.on_tick is not None:
                self.on_tick()
            self._stop_evt.wait(self.interval)

    def stop(self) -> "TreeSampler":
        self._stop_evt.set()
        self.join(timeout=5)
        return self

    def report(self) -> dict:
        by_label: dict[str, float] = {}
        for name, s in self.cpu.values():
            by_label[name] = by_label.get(name, 0.0) + s
        return {
            "peak_rss_mb": round(self.peak_rss / MB, 1),
            "peak_pss_mb": round(self.peak_pss / MB, 1),
            "peak_processes": self.peak_procs,
            "memory_samples": self.samples,
            "peak_rss_by_process_mb": sorted(([n, round(r / MB)] for n, r in self.peak_breakdown), key=lambda t: -t[1]),
            "cpu_s": round(sum(by_label.values()), 2),
            "cpu_s_by_process": {k: round(v, 2) for k, v in sorted(by_label.items(), key=lambda kv: -kv[1])},
        }
