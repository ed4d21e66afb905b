"""Bad input to `gptfl-ray federate`: one line naming the option, exit code 2, no traceback."""

import json

import pytest
from cli_helpers import TINY, runner

from gptfl_ray.cli.main import app


def invoke(args):
    return runner.invoke(app, ["federate", *args])


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--alpha", "0"], "--alpha"),
        (["--alpha", "-1"], "--alpha"),
        (["--sample-rate", "0"], "--sample-rate"),
        (["--sample-rate", "1.5"], "--sample-rate"),
        (["--dataset", "imagenet"], "--dataset"),
        (["--model", "gpt5"], "--model"),
        (["--strategy", "fedsgd"], "--strategy"),
        (["--init", "/nonexistent/model.safetensors"], "--init"),
        (["--clients", "5000"], "--clients"),
        (["--backend", "mpi"], "--backend"),
        (["--dataset", "cifar10", "--data-dir", "/nonexistent-dir"], "--data-dir"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, needle):
    res = invoke([*args, "--output-dir", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    out = res.output.strip()
    assert needle in out and "Traceback" not in out
    assert len(out.splitlines()) == 1, out
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_missing_config_file(tmp_path):
    res = invoke(["--config", str(tmp_path / "nope.toml"), "--output-dir", str(tmp_path / "r")])
    assert res.exit_code == 2 and "--config" in res.output


def test_run_then_resume_then_corrupt_checkpoint(tmp_path):
    out = tmp_path / "run"
    res = invoke([*TINY, "--output-dir", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "config.toml").exists() and (out / "model.safetensors").exists()
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["round"] == 2 and 0 <= rows[-1]["accuracy"] <= 1

    # An existing run is never silently replaced.
    res = invoke([*TINY, "--output-dir", str(out)])
    assert res.exit_code == 2 and "--resume" in res.output
    # A resumed run may not change the experiment.
    res = invoke(["--resume", "--alpha", "0.3", "--output-dir", str(out)])
    assert res.exit_code == 2 and "data.alpha" in res.output

    before = (out / "metrics.jsonl").read_text()
    ck = sorted((out / "checkpoints").glob("*.safetensors"))[-1]
    ck.write_bytes(b"not a checkpoint")
    res = invoke(["--resume", "--rounds", "3", "--output-dir", str(out)])
    assert res.exit_code == 2 and "corrupt" in res.output
    assert (out / "metrics.jsonl").read_text() == before  # nothing lost


def test_config_file_and_saved_config_reproduce(tmp_path):
    a = tmp_path / "a"
    assert invoke([*TINY, "--output-dir", str(a)]).exit_code == 0
    b = tmp_path / "b"
    res = invoke(["--config", str(a / "config.toml"), "--output-dir", str(b)])
    assert res.exit_code == 0, res.output
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()


def test_a_diverging_run_says_so_and_the_round(tmp_path):
    """A learning rate no model survives: weights go NaN, and the run says from which round."""
    out = tmp_path / "run"
    res = invoke([*TINY, "--lr", "1e30", "--output-dir", str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    first_bad = next(r["round"] for r in rows if r["loss"] != r["loss"] or abs(r["loss"]) == float("inf"))
    assert f"the run diverged: its test loss is not finite from round {first_bad} on" in " ".join(res.output.split())
    ok = invoke([*TINY, "--output-dir", str(tmp_path / "ok")])
    assert ok.exit_code == 0 and "diverged" not in ok.output
