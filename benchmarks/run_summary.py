"""The one JSON line each side-by-side script (plain_loop.py, pfl/pfl_digits.py,
flower/flower_digits.py) prints when its run ends; bench_peers.py and bench_flower.py read it."""

from __future__ import annotations

import json


def emit(
    fields: dict, *, wall_s: float, ends: dict[int, float], history: list[dict], rounds: int, json_out: str | None
) -> dict:
    """`fields` (system, versions, ...) plus what every side reports: wall time, when each round's
    evaluation landed (`ends`, seconds since the script started), round-0 and final accuracy."""
    out = {
        **fields,
        "wall_incl_startup_s": round(wall_s, 3),
        "rounds_2_to_last_s": round(ends[rounds] - ends[1], 3) if rounds > 1 else None,
        "round_end_s": {str(k): round(v, 3) for k, v in sorted(ends.items())},
        "round0_accuracy": history[0]["accuracy"],
        "final_accuracy": history[-1]["accuracy"],
        "final_loss": history[-1]["loss"],
        "accuracy_by_round": [round(h["accuracy"], 4) for h in history],
    }
    text = json.dumps(out)
    print(text, flush=True)
    if json_out:
        with open(json_out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return out
