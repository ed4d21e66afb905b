"""What the side-by-side scripts (plain_loop.py, pfl/pfl_digits.py, flower/flower_digits.py)
share: the job's command-line arguments, with issue 14's job as the defaults, and the one JSON
line each prints when its run ends (bench_peers.py and bench_flower.py read it)."""

from __future__ import annotations

import argparse
import json


def add_job_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """digits, 50 clients, Dirichlet 0.1, 10 per round, 30 rounds, 1 epoch, batch 10, SGD lr 0.05."""
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--clients-per-round", type=int, default=10)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--local-epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    return p


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
