"""`gptfl-ray labels --private`: the decoded union equals the plain union, with the same counts."""

import json

from typer.testing import CliRunner

from gptfl_ray.cli.main import app

runner = CliRunner()


def test_private_union_matches_plain(tmp_path):
    args = ["labels", "--clients", "12", "--alpha", "0.1", "--seed", "3"]
    plain = runner.invoke(app, [*args, "--plain", "--output-dir", str(tmp_path / "p")])
    private = runner.invoke(app, [*args, "--private", "--output-dir", str(tmp_path / "s")])
    assert plain.exit_code == 0 and private.exit_code == 0, private.output
    a = json.loads((tmp_path / "p" / "labels.json").read_text())
    b = json.loads((tmp_path / "s" / "labels.json").read_text())
    assert a["labels"] == b["labels"] and sorted(a["labels"]) == [str(d) for d in range(10)]
    assert sum(a["labels"].values()) > 10  # several clients hold each name
    assert b["bytes_up"] > a["plain_bytes_up"]


def test_too_small_capacity_names_the_option(tmp_path):
    res = runner.invoke(app, ["labels", "--private", "--capacity", "2", "--output-dir", str(tmp_path)])
    assert res.exit_code == 2 and "--capacity" in res.output and len(res.output.strip().splitlines()) == 1
