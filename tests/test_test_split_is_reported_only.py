"""The evaluation protocol, enforced: nothing under gptfl_ray/ reads the test split except
reporting. Two checks: a static one (every place that names `x_test` / `y_test` is on an
allow-list of reporting sites, and the list has no stale entries) and a behavioural one (a run
whose test set is replaced by noise makes exactly the same choices: same weights everywhere,
same validation numbers; only the reported test numbers change).
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gptfl_ray"
TEST_NAMES = {"x_test", "y_test"}
# Data set loaders define the splits; everything else must be a reporting site.
DEFINING = "data/"
REPORTING_SITES = {
    ("fl/metrics.py", "HeldOut.__init__"): "prepares the test split for the reported test columns",
    ("pretrain/trainer.py", "_held_out"): "ships the test split to rank 0, which only reports it",
    (
        "pretrain/train_loop.py",
        "train_loop_per_worker",
    ): "scores each epoch on test for the report; best reads val_accuracy",
    ("pretrain/train_loop.py", "eval_payload"): "packs the test arrays for rank 0's report",
}


class _Sites(ast.NodeVisitor):
    def __init__(self):
        self.scope: list[str] = []
        self.hits: list[tuple[str, int]] = []

    def _scoped(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def _hit(self, node):
        self.hits.append((".".join(self.scope) or "<module>", node.lineno))

    def visit_Attribute(self, node):
        if node.attr in TEST_NAMES:
            self._hit(node)
        self.generic_visit(node)

    def visit_Constant(self, node):  # data["x_test"], getattr(ds, "y_test")
        if isinstance(node.value, str) and node.value in TEST_NAMES:
            self._hit(node)

    def visit_JoinedStr(self, node):  # f"x_{split}" and the like could reach the test split
        text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
        if text.startswith(("x_", "y_")) or text.endswith("_test"):
            self._hit(node)
        self.generic_visit(node)


def test_only_reporting_sites_name_the_test_split():
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(DEFINING):
            continue
        sites = _Sites()
        sites.visit(ast.parse(path.read_text("utf-8"), filename=str(path)))
        for scope, line in sites.hits:
            found.setdefault((rel, scope), []).append(line)
    unexpected = {f"{f}:{lines[0]} in {s}" for (f, s), lines in found.items() if (f, s) not in REPORTING_SITES}
    assert not unexpected, (
        "the test split is read outside reporting (route it through fl/metrics.HeldOut, or add the"
        f" site to REPORTING_SITES with the reason it only reports): {sorted(unexpected)}"
    )
    stale = set(REPORTING_SITES) - set(found)
    assert not stale, f"REPORTING_SITES lists sites that no longer read the test split: {sorted(stale)}"


def _noisy_test(ds):
    from dataclasses import replace

    rng = np.random.default_rng(123)
    x = rng.integers(0, int(ds.max_value) + 1, ds.x_test.shape).astype(ds.x_test.dtype)
    return replace(ds, x_test=x, y_test=rng.integers(0, ds.num_classes, len(ds.y_test)))


def _simulate(tmp_path, name, monkeypatch, noisy):
    from typer.testing import CliRunner

    import gptfl_ray.methods.task as task_mod
    from gptfl_ray.cli.main import app

    real = task_mod.load_dataset
    monkeypatch.setattr(task_mod, "load_dataset", (lambda *a, **k: _noisy_test(real(*a, **k))) if noisy else real)
    preset = tmp_path / "local.toml"
    preset.write_text('[generate]\nengine = "local"\n')
    run = tmp_path / name
    res = CliRunner().invoke(
        app,
        [
            "simulate",
            "--variants",
            "fedavg,synthetic,gptfl,fgl",
            "--fgl-rounds",
            "1",
            "--server-finetune-epochs",
            "1",
            "--clients",
            "6",
            "--clients-per-round",
            "3",
            "--rounds",
            "2",
            "--local-epochs",
            "1",
            "--per-class",
            "8",
            "--pretrain-epochs",
            "3",
            "--alpha",
            "0.5",
            "--model",
            "mlp",
            "--backend",
            "local",
            "--train-workers",
            "0",
            "--config",
            str(preset),
            "--output-dir",
            str(run),
        ],
    )
    assert res.exit_code == 0, res.output
    return run


def _weights(run: Path) -> dict[str, str]:
    return {
        p.relative_to(run).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*.safetensors"))
    }


def _numbers(run: Path, prefix: str) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    out = {f"{v}.{k}": x for v, d in summary["variants"].items() for k, x in d.items() if k.startswith(prefix)}
    for p in sorted(run.rglob("metrics.jsonl")):
        for row in map(json.loads, p.read_text().splitlines()):
            out.update({f"{p.relative_to(run)}:{row['round']}.{k}": v for k, v in row.items() if k.startswith(prefix)})
    for p in sorted(run.rglob("metrics.json")):
        doc = json.loads(p.read_text())
        out[f"{p.relative_to(run)}.best_epoch"] = doc["best"]["epoch"]
        for row in doc["history"]:
            out.update({f"{p.relative_to(run)}:{row['epoch']}.{k}": v for k, v in row.items() if k.startswith(prefix)})
    return out


@pytest.mark.slow
def test_choices_are_unchanged_when_the_test_set_is_noise(tmp_path, monkeypatch):
    clean = _simulate(tmp_path, "clean", monkeypatch, noisy=False)
    noise = _simulate(tmp_path, "noise", monkeypatch, noisy=True)
    weights = _weights(clean)
    assert {
        "pretrain/model.safetensors",
        "pretrain/best.safetensors",
        "federate/gptfl/model.safetensors",
        "fgl/model/model.safetensors",
    } <= set(weights)
    assert _weights(noise) == weights  # every trained model, the "best" epoch included
    val_clean = _numbers(clean, "val_")
    assert len(val_clean) > 20 and _numbers(noise, "val_") == val_clean
    # the noise did reach what is reported: the test numbers moved
    acc = lambda run: json.loads((run / "summary.json").read_text())["variants"]["gptfl"]["final_accuracy"]  # noqa: E731
    assert acc(clean) != acc(noise)
