"""`prompts` and `generate` through the gptfl-ray app (its one-line parse errors included)."""

from __future__ import annotations

import tomllib

import pytest
from typer.testing import CliRunner

from gptfl_ray.cli.main import app as main_app


@pytest.fixture(scope="module")
def app():
    return main_app


def _invoke(app, args):
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["generate", "--generator", "dalle"], "--generator' / '-g': 'dalle' is not one of"),
        (["generate", "--generator", "diffusers", "--gen-model", "/no/such/model"], "/no/such/model"),
        (["generate", "--per-class", "0"], "--per-class"),
        (["generate", "--per-class", "-2"], "--per-class"),
        (["generate", "--scale", "-1"], "--scale"),
        (["generate", "--gen-actors", "0"], "--gen-actors"),
        (["prompts", "--per-class", "0"], "--per-class"),
        (["prompts", "--labels", "0,1,2,cat"], "label set does not match"),
        (["prompts", "--style", "haiku"], "--style"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(app, tmp_path, args, fragment):
    result = _invoke(app, args + ["--output-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.output


def test_prompts_then_generate_locally_and_resume(app, tmp_path):
    run = str(tmp_path)
    res = _invoke(app, ["prompts", "-o", run, "--per-class", "3", "--style", "multi-domain", "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "prompts" / "prompts.jsonl").read_text().count("\n") == 30
    res = _invoke(app, ["generate", "-o", run, "--engine", "local", "--shard-size", "8", "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert "30 samples in 4 shards (4 written, 0 kept)" in " ".join(res.output.split())
    (tmp_path / "synthetic" / "shard-00002.parquet").unlink()
    res = _invoke(app, ["generate", "-o", run, "--engine", "local", "--shard-size", "8", "--seed", "2"])
    assert "(1 written, 3 kept)" in " ".join(res.output.split())
    cfg = tomllib.loads((tmp_path / "config.toml").read_text())
    assert cfg["prompts"]["style"] == "multi-domain" and cfg["generate"]["shard_size"] == 8
    # a different seed into the same directory is refused, not mixed
    res = _invoke(app, ["generate", "-o", run, "--engine", "local", "--shard-size", "8", "--seed", "3"])
    assert res.exit_code == 2 and "--overwrite" in res.output
