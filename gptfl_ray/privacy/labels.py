"""The private union of client label names that GPT-FL's prompts start from.

GPT-FL (Zhang et al.), section 3.1: each client encodes its distinct label names into an IBLT
(Goodrich and Mitzenmacher 2011); the server sums the tables with secure aggregation (Bonawitz et
al., CCS 2017) and decodes the union, as in federated heavy-hitter recovery (Gascón et al. 2023).
The server learns which names some client holds and how many clients hold each (the decoded
counts), not which client holds what. A name held by a single client is still revealed as a name;
a deployment that must hide rare names would add a count threshold or noise on top.

With `capacity=None` the union size is not known in advance: the round starts at
`INITIAL_CAPACITY` and, while the summed table overflows, reruns with the capacity the decoder
suggests. Each retry is a fresh round of secure aggregation with fresh masks; the server learns
only that the union did not fit, which the final union reveals anyway.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from gptfl_ray.errors import ConfigError
from gptfl_ray.privacy import iblt
from gptfl_ray.privacy.secagg.driver import secure_sum_int

INITIAL_CAPACITY = 32
MAX_CAPACITY = 1 << 16


@dataclass(frozen=True)
class LabelUnionStats:
    """What one private label union cost. Bytes are summed over all attempts."""

    clients: int
    survivors: int
    capacity: int  # the capacity that decoded
    attempts: int
    table_length: int  # residues per client table at the final capacity
    bytes_up: int
    bytes_down: int
    plain_bytes_up: int  # the survivors sending their names in the clear, UTF-8 plus a newline each
    seconds: float


def private_label_union(
    client_label_sets: Sequence[Iterable[str]],
    capacity: int | None = None,
    *,
    seed: int = 0,
    dropout: Collection[int] = frozenset(),
    threshold: int | None = None,
    hashes: int = 4,
    max_key_bytes: int = 64,
    rng_seed: int | None = None,
) -> tuple[dict[str, int], LabelUnionStats]:
    """The union of the clients' label names with the number of clients holding each.

    Client i is `client_label_sets[i]`. `seed` picks the IBLT's public hash functions;
    `rng_seed` the secure-aggregation secrets (None: fresh OS entropy, as a deployment needs).
    Clients in `dropout` (indices) leave after sharing their keys; their names are not counted.
    Returns names ordered by descending count, then name. Raises IBLTOverflowError (a
    ConfigError on "capacity") when a given capacity is too small, and SecAggAbort when fewer
    than the threshold of clients survive.
    """
    sets = [list(s) for s in client_label_sets]
    if not sets:
        raise ConfigError("clients", "the label union needs at least one client")
    if capacity is not None and (not isinstance(capacity, int) or capacity < 1):
        raise ConfigError("capacity", f"must be a positive integer or None, got {capacity!r}")
    gone = set(dropout)
    cap = capacity if capacity is not None else max(INITIAL_CAPACITY, _largest_client(sets))
    start = time.perf_counter()
    up = down = attempts = 0
    while True:
        attempts += 1
        params = iblt.IBLTParams(capacity=cap, hashes=hashes, max_key_bytes=max_key_bytes, seed=seed)
        tables = {i: iblt.encode(names, params) for i, names in enumerate(sets)}
        result = secure_sum_int(
            tables,
            params.prime,
            threshold=threshold,
            dropout=gone,
            rng_seed=None if rng_seed is None else rng_seed + attempts,
        )
        up, down = up + result.bytes_up, down + result.bytes_down
        try:
            counts = iblt.decode(result.total, params, contributors=len(result.survivors))
            break
        except iblt.IBLTOverflowError as err:
            if capacity is not None or err.suggested_capacity > MAX_CAPACITY:
                raise
            cap = err.suggested_capacity
    plain = sum(len(n.encode("utf-8")) + 1 for i in result.survivors for n in set(sets[i]))
    stats = LabelUnionStats(
        clients=len(sets),
        survivors=len(result.survivors),
        capacity=cap,
        attempts=attempts,
        table_length=params.size,
        bytes_up=up,
        bytes_down=down,
        plain_bytes_up=plain,
        seconds=time.perf_counter() - start,
    )
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))), stats


def _largest_client(sets: list[list[str]]) -> int:
    # Every client's own names must fit its table. A deployment would start from an agreed public
    # bound instead; the simulator reads it off the data, which leaks nothing it later uses.
    return max((len(set(s)) for s in sets), default=1)
