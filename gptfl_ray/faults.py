"""Deterministic kill points for the fault tests (never set in normal use).

`GPTFL_KILL_AT=name:n` makes the n-th pass through `fault_point(name)` in this process SIGKILL
it, exactly as `kill -9` at that moment would: nothing is flushed, no handler runs. Points:
`round` (a round's rows written, before its checkpoint), `checkpoint` (tensor file written,
its JSON not yet), `shard` (a generated shard recorded), `epoch` (a pre-training epoch done).
"""

from __future__ import annotations

import os
import signal

ENV = "GPTFL_KILL_AT"
_seen: dict[str, int] = {}


def fault_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, n = spec.partition(":")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == int(n or 1):
        os.kill(os.getpid(), signal.SIGKILL)
