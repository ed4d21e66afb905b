"""Per-client state (SCAFFOLD control variates) on disk, so memory does not grow with the
population: a sparse memory-mapped (num_clients x P) float32 file; rows never touched read as
zeros and take no disk blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class ClientStateStore:
    def __init__(self, path: str | Path, num_clients: int, dim: int):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.num_clients, self.dim = num_clients, dim
        size = num_clients * dim * 4
        with open(self.path, "ab") as fh:  # sparse: truncate extends without writing zeros
            if fh.tell() != size:
                fh.truncate(size)
        self._mm = np.memmap(self.path, dtype=np.float32, mode="r+", shape=(num_clients, dim))
        self.touched: set[int] = set()

    def get(self, client_ids) -> dict[int, np.ndarray]:
        return {int(c): np.array(self._mm[int(c)]) for c in client_ids}

    def put(self, rows: dict[int, np.ndarray]) -> None:
        for c, v in rows.items():
            self._mm[int(c)] = v
            self.touched.add(int(c))
        self._mm.flush()

    def snapshot(self) -> dict[str, np.ndarray]:
        ids = np.array(sorted(self.touched), dtype=np.int64)
        rows = np.stack([self._mm[i] for i in ids]) if len(ids) else np.zeros((0, self.dim), np.float32)
        return {"ids": ids, "rows": np.ascontiguousarray(rows)}

    def restore(self, snap: dict[str, np.ndarray]) -> None:
        self._mm[:] = 0  # drop rows written after the checkpoint
        self.touched = set()
        self.put({int(i): r for i, r in zip(snap["ids"], snap["rows"])})
