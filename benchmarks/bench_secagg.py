"""Secure aggregation cost per round: time and bytes, with and without it.

Runs the full Bonawitz et al. (CCS 2017) protocol of gptfl_ray.privacy.secagg (X25519 between
every pair of clients, Shamir shares of two secrets per client, AES-CTR masks) for 10, 100 and
1,000 clients on a model-sized float vector, by default the parameter count of the embedded
digits CNN (`build_model("cnn", (1, 8, 8), 10)`: 21,546 float32), and compares it with plain
float32 uploads summed on the server. Prints a markdown table.

All clients are simulated one after another in this process, so "round wall" is the sum of every
client's work plus the server's; in a deployment clients run in parallel and a round takes about
one client's time plus the server's. Both are shown.

    python benchmarks/bench_secagg.py                       # 10, 100, 1000 clients
    python benchmarks/bench_secagg.py --clients 10,100 --length 5000 --dropout 0.3
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numpy as np

from gptfl_ray.privacy.secagg.driver import secure_sum

DIGITS_CNN_PARAMS = 21_546  # fallback when torch is not importable


def digits_cnn_size() -> int:
    try:
        from gptfl_ray.models.registry import build_model

        return sum(p.numel() for p in build_model("cnn", (1, 8, 8), 10).parameters())
    except Exception:  # the benchmark must run without torch; the constant is that model's size
        return DIGITS_CNN_PARAMS


def plain_round(vectors: dict[int, np.ndarray]) -> tuple[float, int]:
    """Server-side running float32 sum of uploads, as FedAvg without secure aggregation."""
    start = time.perf_counter()
    total = np.zeros_like(next(iter(vectors.values())), dtype=np.float32)
    for v in vectors.values():
        total += np.frombuffer(v.astype(np.float32).tobytes(), dtype=np.float32)
    return time.perf_counter() - start, sum(v.size * 4 for v in vectors.values())


def row(n: int, length: int, dropout: float, clip: float, bits: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    vectors = {i: rng.normal(0.0, 0.01, length).astype(np.float32) for i in range(n)}
    gone = set(rng.choice(n, size=int(round(dropout * n)), replace=False).tolist())
    plain_s, _ = plain_round({i: v for i, v in vectors.items() if i not in gone})
    start, cpu = time.perf_counter(), time.process_time()
    res = secure_sum(vectors, clip=clip, bits=bits, dropout=gone, rng_seed=seed)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    # The bound covers rounding; clipping (a 5-sigma coordinate here and there) is separate.
    plain_total = sum(np.clip(vectors[i].astype(np.float64), -clip, clip) for i in res.survivors)
    err = float(np.abs(res.total - plain_total).max())
    assert err <= res.extra["error_bound"] * (1 + 1e-9), (err, res.extra["error_bound"])
    return {
        "n": n,
        "length": length,
        "dropped": len(gone),
        "modulus_bits": res.modulus.bit_length() - 1,
        "plain_s": plain_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "client_s": res.client_seconds / n,
        "server_s": res.server_seconds,
        "plain_up_mb": res.plain_bytes_up / 1e6,
        "up_mb": res.bytes_up / 1e6,
        "down_mb": res.bytes_down / 1e6,
        "masked_kb": math.ceil(length * (res.modulus.bit_length() - 1) / 8) / 1e3,
        "overhead": res.upload_overhead,
        "err": err,
        "bound": res.extra["error_bound"],
    }


def markdown(rows: list[dict]) -> str:
    head = (
        "| clients | floats | dropped | plain: server sum (s) | secagg: wall / CPU, all "
        "clients simulated (s) | secagg: CPU per client (s) | secagg: server CPU (s) | "
        "plain up (MB/round) | secagg up (MB/round) | secagg down (MB/round) | "
        "secagg up / plain up | masked vector (KB/client) | max error / bound |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['length']:,} | {r['dropped']} | {r['plain_s']:.3f} | "
            f"{r['wall_s']:.2f} / {r['cpu_s']:.2f} | {r['client_s']:.3f} | {r['server_s']:.2f} | "
            f"{r['plain_up_mb']:.2f} | {r['up_mb']:.2f} | {r['down_mb']:.2f} | "
            f"{r['overhead']:.2f}x | {r['masked_kb']:.1f} | {r['err']:.1e} / {r['bound']:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="10,100,1000", help="comma-separated client counts")
    ap.add_argument(
        "--length", type=int, default=None, help="floats per update (default: the digits CNN's parameter count)"
    )
    ap.add_argument("--dropout", type=float, default=0.1, help="fraction of clients that drop after sharing keys")
    ap.add_argument("--clip", type=float, default=0.05)
    ap.add_argument("--bits", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    length = args.length or digits_cnn_size()
    load_before = os.getloadavg()[0]
    rows = []
    for n in (int(x) for x in args.clients.split(",")):
        rows.append(row(n, length, args.dropout, args.clip, args.bits, args.seed))
        print(f"done: {n} clients in {rows[-1]['wall_s']:.1f} s", flush=True)
    print(
        f"\n{platform.machine()}, {os.cpu_count()} CPUs, 1-minute load average {load_before:.1f} "
        f"before and {os.getloadavg()[0]:.1f} after; {args.bits}-bit fixed point, clip "
        f"{args.clip}, threshold floor(2n/3)+1, {args.dropout:.0%} dropout after key sharing\n"
    )
    print(markdown(rows))


if __name__ == "__main__":
    main()
