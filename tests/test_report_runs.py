"""`gptfl-ray report`: finished simulate runs -> mean ± std and a 95% t-interval per cell."""

from __future__ import annotations

import json
import math

import pytest
import tomli_w
from typer.testing import CliRunner

from gptfl_ray.cli.main import app
from gptfl_ray.report import aggregate_runs, cell_stats, load_finished_runs, report_markdown

ROUNDS = 6


def _variant(acc, val, rounds=ROUNDS, reach=None, gd=0.5):
    hist = [[r, acc * r / rounds if rounds else acc] for r in range(rounds + 1)]
    return {
        "final_accuracy": acc,
        "final_macro_f1": acc - 0.01,
        "final_val_accuracy": val,
        "final_round": rounds,
        "accuracy_per_round": hist,
        "val_accuracy_per_round": hist,
        "bytes_per_round": [[r, 1e6 * r] for r in range(rounds + 1)],
        "cum_bytes": 1e6 * rounds,
        "gradient_diversity_per_round": [[r, gd * r] for r in range(1, rounds + 1)],
        "rounds_to_target": reach,
        "bytes_to_target": None if reach is None else 1e6 * reach,
        "num_params": 10,
    }


def write_run(root, seed, accs=(0.8, 0.9), lr=0.1, actors=None, finished=True, fgl=False):
    d = root / f"seed{seed}"
    d.mkdir(parents=True)
    fed = {
        "data": {"dataset": "digits", "clients": 8},
        "fl": {"rounds": ROUNDS, "lr": lr, "seed": seed},
        "engine": {"backend": "ray", **({"num_actors": actors} if actors else {})},
    }
    cfg = {
        "federate": fed,
        "prompts": {"seed": seed, "per_class": 12},
        "pretrain": {"seed": seed, "epochs": 2},
        "simulate": {"variants": ["fedavg", "synthetic", "gptfl"]},
        "pretrain_key": {"synthetic": f"sha{seed}"},
    }
    (d / "config.toml").write_text(tomli_w.dumps(cfg))
    if finished:
        variants = {
            "fedavg": _variant(accs[0], accs[0] - 0.02, reach=ROUNDS),
            "synthetic": {**_variant(0.5, 0.55, rounds=0), "gradient_diversity_per_round": []},
            "gptfl": _variant(accs[1], accs[1] - 0.01, reach=2 + seed % 2, gd=0.3),
        }
        if fgl:
            variants["fgl"] = {**_variant(0.6, 0.62, rounds=1), "gradient_diversity_per_round": []}
        summary = {
            "dataset": "digits",
            "model": "cnn",
            "strategy": "fedavg",
            "clients": 8,
            "rounds": ROUNDS,
            "seed": seed,
            "target_accuracy": accs[0],
            "target_is_fedavg_final": True,
            "title": "digits / cnn",
            "variants": variants,
        }
        (d / "summary.json").write_text(json.dumps(summary))
    return d


def test_cell_stats_mean_std_and_t_interval_by_hand():
    s = cell_stats([0.80, 0.90, 0.85])
    assert s["mean"] == pytest.approx(0.85) and s["std"] == pytest.approx(0.05)
    half = 4.302652729911275 * 0.05 / math.sqrt(3)  # t_{0.975, 2}
    assert s["ci95"] == pytest.approx([0.85 - half, 0.85 + half])
    one = cell_stats([0.7])
    assert one["mean"] == 0.7 and one["std"] is None and one["ci95"] is None
    partial = cell_stats([3, None, 5])
    assert partial["n"] == 2 and partial["of"] == 3 and partial["mean"] == 4


def test_aggregate_builds_the_headline_rows_with_splits_labelled(tmp_path):
    dirs = [write_run(tmp_path, s, accs=(0.8 + 0.01 * s, 0.9 + 0.02 * s), fgl=True) for s in range(3)]
    agg = aggregate_runs(load_finished_runs(dirs))
    rows = {r["key"]: r for r in agg["headline"]["rows"]}
    assert agg["seeds"] == [0, 1, 2] and agg["headline"]["variants"] == ["fedavg", "synthetic", "gptfl"]
    assert rows["final_val_accuracy"]["split"] == "validation" and rows["final_accuracy"]["split"] == "test"
    assert rows["final_accuracy"]["cells"]["gptfl"]["values"] == pytest.approx([0.90, 0.92, 0.94])
    assert rows["final_accuracy"]["cells"]["gptfl"]["std"] == pytest.approx(0.02)
    assert rows["accuracy_round_5"]["cells"]["fedavg"]["mean"] == pytest.approx(0.81 * 5 / 6)
    assert "accuracy_round_10" not in rows  # only milestones inside the run
    assert rows["rounds_to_target"]["cells"]["gptfl"]["values"] == [2, 3, 2]
    assert rows["rounds_to_target"]["cells"]["synthetic"]["n"] == 0
    # gradient diversity: the means of rounds 1-5 and 2-6 of each run
    assert rows["gradient_diversity_first"]["cells"]["gptfl"]["mean"] == pytest.approx(0.3 * 3)
    assert rows["gradient_diversity_last"]["cells"]["fedavg"]["mean"] == pytest.approx(0.5 * 4)
    assert [r["variant"] for r in agg["fgl"]["rows"]] == ["fedavg", "gptfl", "fgl"]
    md = report_markdown(agg)
    assert "| final accuracy (round 6) | validation |" in md and "| final accuracy (round 6) | test |" in md
    assert "0.920 ± 0.020 [" in md and "not reached (3 of 3)" in md and "FGL one-shot" in md


def test_cli_prints_markdown_and_writes_json(tmp_path):
    dirs = [write_run(tmp_path, s, actors=s + 1) for s in range(2)]  # placement may differ
    out = tmp_path / "agg.json"
    res = CliRunner().invoke(app, ["report", *map(str, dirs), "--json-out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| final macro-F1 | test |" in res.output
    doc = json.loads(out.read_text())
    assert doc["n"] == 2 and doc["runs"] == [str(d) for d in dirs]


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing", "is not a directory"),
        ("not_run", "is not a simulate run directory"),
        ("unfinished", "is not finished: no summary.json"),
        ("mixed", "differ in more than the seed: federate.fl.lr"),
        ("same_seed", "are both seed 0"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, case, needle):
    good = write_run(tmp_path, 0)
    other = {
        "missing": lambda: tmp_path / "nowhere",
        "not_run": lambda: (tmp_path / "empty").mkdir() or tmp_path / "empty",
        "unfinished": lambda: write_run(tmp_path, 1, finished=False),
        "mixed": lambda: write_run(tmp_path, 1, lr=0.05),
        "same_seed": lambda: write_run(tmp_path / "again", 0),
    }[case]()
    res = CliRunner().invoke(app, ["report", str(good), str(other)])
    assert res.exit_code == 2
    assert needle in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_variant_summary_names_the_round_a_run_diverged():
    from gptfl_ray.report import diverged_lines, variant_summary

    def hist(losses):
        return [{"round": r, "accuracy": 0.5, "macro_f1": 0.5, "loss": l} for r, l in enumerate(losses)]

    ok = variant_summary(hist([2.3, 1.1, 0.9]), None, 10)
    bad = variant_summary(hist([2.3, 1.1, float("nan"), float("nan")]), None, 10)
    inf = variant_summary(hist([2.3, float("inf")]), None, 10)
    assert ok["diverged_round"] is None and bad["diverged_round"] == 2 and inf["diverged_round"] == 1
    lines = diverged_lines({"variants": {"fedavg": ok, "fgl_rounds": bad}})
    assert len(lines) == 1 and lines[0].startswith("fgl_rounds diverged") and "round 2" in lines[0]


def test_report_lists_the_runs_that_diverged(tmp_path):
    dirs = [write_run(tmp_path, s) for s in range(3)]
    path = dirs[1] / "summary.json"
    summary = json.loads(path.read_text())
    summary["variants"]["gptfl"]["diverged_round"] = 4
    path.write_text(json.dumps(summary))
    agg = aggregate_runs(load_finished_runs(dirs))
    assert agg["diverged"] == [{"variant": "gptfl", "seed": 1, "round": 4}]
    md = report_markdown(agg)
    assert "diverged" in md and "gptfl (pre-trained, then FL) in seed 1 (round 4)" in md
    clean = report_markdown(aggregate_runs(load_finished_runs([dirs[0], dirs[2]])))
    assert "diverged" not in clean
