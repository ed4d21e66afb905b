"""Split a training set over virtual clients: IID, Dirichlet label skew, shards, natural groups.

GPT-FL (paper section 4.1) partitions CIFAR-10/100 over 100 clients and Flowers102 over 50 with
the label-skew Dirichlet scheme Dir_K(alpha), alpha in {0.1, 0.5}, "following previous work [7]"
(Fed-ET), which uses the scheme of Hsu et al. 2019 as implemented in FedML's
`non_iid_partition_with_dirichlet_distribution`: for every class draw client proportions from
Dir(alpha), zero the share of clients that already hold N/num_clients samples, and redraw the
whole split until every client holds at least `min_client_size` samples. Google Speech Commands
is split naturally by speaker (`natural`); `shards` is McMahan et al. 2017's pathological
non-IID split (sort by label, deal out label-contiguous shards).

Every method returns one sorted int64 index array per client; together they cover every
training sample exactly once and no client is empty. All randomness comes from
`np.random.default_rng(seed)`, so a seed fixes the split on every machine.
"""

from __future__ import annotations

import numpy as np

from gptfl_ray.errors import ConfigError

METHODS = ("iid", "dirichlet", "shards", "natural")
# Enough redraws for any split that is feasible with reasonable probability; an infeasible
# one (say 700 clients over 1437 samples at alpha=0.1) must fail quickly, not spin.
DIRICHLET_MAX_TRIES = 200


def partition(
    labels: np.ndarray,
    num_clients: int,
    method: str,
    seed: int,
    alpha: float = 0.5,
    min_client_size: int = 2,
    shards_per_client: int = 2,
    groups: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Indices of `labels` held by each of `num_clients` clients (see the module docstring).

    `natural` needs `groups` (one key per sample, e.g. a speaker id). With as many clients as
    groups each group is one client; with fewer, the groups are shuffled and dealt in
    contiguous runs so that every client holds whole groups (a client is a few speakers) and no
    sample is dropped. More clients than groups is an error: a group is never split.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ConfigError("labels", f"expected a 1-D label array, got shape {labels.shape}")
    n = len(labels)
    if method not in METHODS:
        raise ConfigError("data.partition", f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if int(num_clients) != num_clients or num_clients < 1:
        raise ConfigError("data.clients", f"need at least 1 client, got {num_clients}")
    num_clients = int(num_clients)
    if num_clients > n:
        raise ConfigError("data.clients", f"{num_clients} clients but only {n} training samples")
    if not np.isfinite(alpha) or alpha <= 0:
        raise ConfigError("data.alpha", f"the Dirichlet concentration must be > 0, got {alpha}")
    rng = np.random.default_rng(seed)

    if method == "iid":
        parts = np.array_split(rng.permutation(n), num_clients)
    elif method == "dirichlet":
        parts = _dirichlet(labels, num_clients, alpha, min_client_size, rng)
    elif method == "shards":
        parts = _shards(labels, num_clients, shards_per_client, rng)
    else:
        parts = _natural(n, num_clients, groups, rng)
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _dirichlet(labels, num_clients, alpha, min_client_size, rng) -> list[np.ndarray]:
    if int(min_client_size) != min_client_size or min_client_size < 1:
        raise ConfigError("data.min_client_size", f"must be an integer >= 1, got {min_client_size}")
    n = len(labels)
    if num_clients * min_client_size > n:
        raise ConfigError(
            "data.clients",
            f"{num_clients} clients x {min_client_size} samples each needs {num_clients * min_client_size}"
            f" samples but there are only {n}",
        )
    classes = np.unique(labels)
    by_class = [np.flatnonzero(labels == k) for k in classes]
    cap = n / num_clients
    for _ in range(DIRICHLET_MAX_TRIES):
        chunks: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        sizes = np.zeros(num_clients, dtype=np.int64)
        ok = True
        for idx_k in by_class:
            idx_k = rng.permutation(idx_k)
            p = rng.dirichlet(np.full(num_clients, alpha))
            # FedML's balancing: a client already past an equal share takes no more, which
            # keeps one client from swallowing most of the data at small alpha.
            p = p * (sizes < cap)
            total = p.sum()
            if total <= 0:  # every open client drew an underflowed zero; redraw the split
                ok = False
                break
            cuts = (np.cumsum(p / total) * len(idx_k)).astype(np.int64)[:-1]
            for j, piece in enumerate(np.split(idx_k, cuts)):
                if len(piece):
                    chunks[j].append(piece)
                    sizes[j] += len(piece)
        if ok and sizes.min() >= min_client_size:
            return [np.concatenate(c) if c else np.empty(0, np.int64) for c in chunks]
    raise ConfigError(
        "data.clients",
        f"Dirichlet split (alpha={alpha}) left some of {num_clients} clients with fewer than"
        f" {min_client_size} samples in {DIRICHLET_MAX_TRIES} draws over {n} samples;"
        " use fewer clients, a larger `data.alpha` or a smaller `data.min_client_size`",
    )


def _shards(labels, num_clients, shards_per_client, rng) -> list[np.ndarray]:
    if int(shards_per_client) != shards_per_client or shards_per_client < 1:
        raise ConfigError("data.shards_per_client", f"must be an integer >= 1, got {shards_per_client}")
    num_shards = num_clients * int(shards_per_client)
    if num_shards > len(labels):
        raise ConfigError(
            "data.shards_per_client",
            f"{num_clients} clients x {shards_per_client} shards = {num_shards} shards"
            f" but only {len(labels)} training samples",
        )
    # Shuffle before the stable sort so that which samples of a class land in which shard
    # depends on the seed, not on the data set's file order.
    perm = rng.permutation(len(labels))
    order = perm[np.argsort(labels[perm], kind="stable")]
    shards = np.array_split(order, num_shards)
    owner = rng.permutation(num_shards).reshape(num_clients, -1)
    return [np.concatenate([shards[s] for s in row]) for row in owner]


def _natural(n, num_clients, groups, rng) -> list[np.ndarray]:
    if groups is None:
        raise ConfigError("data.partition", "natural partition needs a data set with groups (e.g. speaker ids)")
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ConfigError("data.partition", f"natural partition: {len(groups)} group keys for {n} samples")
    keys, inverse = np.unique(groups, return_inverse=True)
    if num_clients > len(keys):
        raise ConfigError(
            "data.clients", f"{num_clients} clients but the natural partition has only {len(keys)} groups"
        )
    by_group = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[by_group], np.arange(len(keys) + 1))
    members = [by_group[starts[g] : starts[g + 1]] for g in range(len(keys))]
    dealt = np.array_split(rng.permutation(len(keys)), num_clients)
    return [np.concatenate([members[g] for g in run]) for run in dealt]


def partition_summary(parts: list[np.ndarray], labels: np.ndarray, num_classes: int) -> list[dict]:
    """Per client: id, size, per-class sample counts and how many classes it holds."""
    labels = np.asarray(labels)
    rows = []
    for cid, idx in enumerate(parts):
        counts = np.bincount(labels[idx], minlength=num_classes)
        rows.append(
            {
                "client": cid,
                "size": int(len(idx)),
                "class_counts": [int(c) for c in counts],
                "classes_present": int(np.count_nonzero(counts)),
            }
        )
    return rows


def partition_table(
    summary: list[dict],
    class_names: list[str] | tuple[str, ...] | None = None,
    max_rows: int = 50,
    max_class_columns: int = 12,
):
    """A rich Table of `partition_summary` for `--show-partition`.

    With few classes every class gets a column; with many (CIFAR-100, Flowers102) a column
    per class is unreadable, so each row lists its largest classes instead. Rows past
    `max_rows` are elided; the caption always describes all clients.
    """
    from rich.table import Table

    num_classes = len(summary[0]["class_counts"]) if summary else 0
    names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
    sizes = np.array([r["size"] for r in summary])
    present = np.array([r["classes_present"] for r in summary])
    caption = (
        f"{len(summary)} clients, {int(sizes.sum())} samples; size min/mean/max "
        f"{sizes.min()}/{sizes.mean():.1f}/{sizes.max()}; classes per client mean {present.mean():.2f}"
        if summary
        else "no clients"
    )
    table = Table(title="Partition", caption=caption)
    table.add_column("client", justify="right")
    table.add_column("size", justify="right")
    table.add_column("classes", justify="right")
    wide = num_classes <= max_class_columns
    if wide:
        for name in names:
            table.add_column(name, justify="right")
    else:
        table.add_column("largest classes (name:count)")
    for r in summary[:max_rows]:
        cells = [str(r["client"]), str(r["size"]), str(r["classes_present"])]
        counts = r["class_counts"]
        if wide:
            cells += [str(c) if c else "." for c in counts]
        else:
            top = np.argsort(counts, kind="stable")[::-1][:5]
            cells.append(" ".join(f"{names[k]}:{counts[k]}" for k in top if counts[k]))
        table.add_row(*cells)
    if len(summary) > max_rows:
        table.add_row("...", *[""] * (len(table.columns) - 1))
    return table
