"""One seeding module (gptfl_ray/seeding.py): stable seeds, and no Python hash() anywhere."""

from __future__ import annotations

import ast
from pathlib import Path

from gptfl_ray.seeding import client_seed, derive_seed, secagg_seed

ROOT = Path(__file__).resolve().parents[1]


def _trees():
    for path in sorted([*(ROOT / "gptfl_ray").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]):
        yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text("utf-8"))


def test_seeds_are_pure_functions_of_their_integers():
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)
    assert len({derive_seed(1, 2), derive_seed(2, 1), derive_seed(1, 2, 0)}) == 3
    assert client_seed(0, 1, 2) == client_seed(0, 1, 2) != client_seed(0, 1, 3)
    seeds = {secagg_seed(s, r) for s in range(3) for r in range(1, 50)}
    assert len(seeds) == 3 * 49 and all(0 <= x < 2**31 for x in seeds)


def test_no_module_calls_pythons_hash():
    """hash() is salted per process for strings and is no mixing function; seeds use seeding.py."""
    calls = [
        f"{name}:{node.lineno}"
        for name, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hash"
    ]
    assert calls == []


def test_seeds_are_defined_in_seeding_only():
    defs = {
        (name, node.name)
        for name, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name in ("derive_seed", "client_seed", "secagg_seed", "row_rng")
    }
    assert {n for n, _ in defs} == {"gptfl_ray/seeding.py"}
