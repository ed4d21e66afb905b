"""--json, --quiet, --log-level; --config/--set on the stage commands; choices refused in one
line; the stage commands chained in one default run directory."""

import json
import logging
import tomllib

import pytest
from cli_helpers import TINY, commands, runner

from gptfl_ray.cli.main import app

COMMANDS = dict(commands())


def test_json_is_the_only_thing_on_stdout(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["federate", *TINY, "--json", "--output-dir", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # nothing but the JSON document
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert summary["final"]["accuracy"] == last["accuracy"] and summary["final"]["round"] == 2
    assert summary["run_dir"] == str(out) and summary["strategy"] == "fedavg"
    assert "final accuracy" in res.stderr  # the human output went to stderr


def test_json_keeps_none_as_null():
    from pathlib import Path

    import numpy as np

    from gptfl_ray.cli.common import jsonable

    doc = {"init": None, "shape": (1, 8, 8), "dir": Path("runs/x"), "acc": np.float32(0.5), "nested": {"v": None}}
    assert jsonable(doc) == {"init": None, "shape": [1, 8, 8], "dir": "runs/x", "acc": 0.5, "nested": {"v": None}}


def test_json_and_quiet_for_prompts(tmp_path):
    res = runner.invoke(app, ["prompts", "--per-class", "2", "--json", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    rows = (tmp_path / "prompts" / "prompts.jsonl").read_text().splitlines()
    assert summary["total"] == len(rows) == 20 and summary["per_class"] == 2
    res = runner.invoke(app, ["prompts", "--per-class", "2", "--quiet", "-o", str(tmp_path / "q")])
    assert res.exit_code == 0 and res.output == "", res.output
    assert (tmp_path / "q" / "prompts" / "prompts.jsonl").is_file()


def test_quiet_prints_nothing_but_errors_stay_one_line(tmp_path):
    res = runner.invoke(app, ["federate", *TINY, "--quiet", "--output-dir", str(tmp_path / "r")])
    assert res.exit_code == 0 and res.output == "", res.output
    res = runner.invoke(app, ["federate", *TINY, "--quiet", "--lr", "0", "--output-dir", str(tmp_path / "s")])
    assert res.exit_code == 2 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "--lr" in res.stderr


def test_json_error_leaves_stdout_empty(tmp_path):
    res = runner.invoke(app, ["federate", *TINY, "--json", "--rounds", "-1", "--output-dir", str(tmp_path)])
    assert res.exit_code == 2 and res.stdout == "" and "--rounds" in res.stderr


def test_log_level_brings_back_library_logging():
    import contextlib
    import functools
    import inspect
    import io
    import os

    from gptfl_ray.cli import common

    seen = []

    def command(**kw):
        logging.getLogger("gptfl_ray.test").info("hello from the library")
        seen.append(os.environ.get("GPTFL_LOG_LEVEL"))  # what ray_runtime.ensure_ray reads

    @functools.wraps(command)
    def with_output_options(**kw):
        return command(**kw)

    with_output_options.__signature__ = inspect.Signature(
        [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d)
            for n, d in (("as_json", False), ("quiet", False), ("log_level", "warning"))
        ]
    )
    guarded = common.guarded(with_output_options)
    for level, shown in (("info", True), ("warning", False)):
        buf = io.StringIO()
        with contextlib.redirect_stderr(buf):
            guarded(as_json=False, quiet=False, log_level=level)
        assert ("hello from the library" in buf.getvalue()) == shown, (level, buf.getvalue())
    assert seen == ["info", None] and "GPTFL_LOG_LEVEL" not in os.environ  # restored after the command


def test_verbose_ray_logs_reach_the_driver(monkeypatch):
    import ray

    from gptfl_ray import ray_runtime

    calls = []
    # (an earlier in-process command that stopped at bad input may leave its start in flight)
    monkeypatch.setattr(ray_runtime, "_pending", None)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.delenv("GPTFL_LOG_LEVEL", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_runtime.ensure_ray()
    monkeypatch.setenv("GPTFL_LOG_LEVEL", "debug")
    ray_runtime.ensure_ray()
    assert [c.get("log_to_driver") for c in calls] == [False, True], calls


def _choice_params():
    for path, cmd in COMMANDS.items():
        for p in cmd.params:
            desc = getattr(p, "type_descriptor", None)
            if desc is not None and desc.is_choice and p.opts[0].startswith("--"):
                yield path, p.opts[0]


CHOICE_PARAMS = list(_choice_params())


def test_choices_are_typed_on_every_command():
    names = {opt for _, opt in CHOICE_PARAMS}
    assert {"--dataset", "--model", "--strategy", "--partition", "--backend", "--generator", "--style"} <= names
    assert {path for path, _ in CHOICE_PARAMS} >= {("federate",), ("simulate",), ("generate",), ("pretrain",)}


@pytest.mark.parametrize("path, option", CHOICE_PARAMS, ids=[f"{' '.join(p)} {o}" for p, o in CHOICE_PARAMS])
def test_bad_choice_is_one_line_exit_2(tmp_path, path, option):
    res = runner.invoke(app, [*path, option, "no-such-choice", "--output-dir", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    out = res.output.strip()
    assert len(out.splitlines()) == 1 and "Traceback" not in out and option in out, out
    assert "is not one of" in out
    assert not (tmp_path / "r").exists()


def test_choices_are_listed_in_help():
    res = runner.invoke(app, ["federate", "--help"], env={"COLUMNS": "400"})
    assert "fedavg|fedprox|scaffold" in res.output and "iid|dirichlet" in res.output


def test_model_choices_match_the_registry():
    from gptfl_ray.cli.options import MODEL_NAMES
    from gptfl_ray.models.registry import model_names

    assert tuple(model_names()) == MODEL_NAMES


def test_every_command_takes_config_and_set():
    for path, cmd in COMMANDS.items():
        if path == ("report",):
            continue
        opts = {o for p in cmd.params for o in p.opts}
        assert {"--config", "--set", "--json", "--quiet"} <= opts, path


def _toml(tmp_path, text):
    p = tmp_path / "cfg.toml"
    p.write_text(text)
    return str(p)


def test_prompts_config_and_set_reach_config_toml(tmp_path):
    cfg = _toml(tmp_path, '[prompts]\nstyle = "multi-domain"\nper_class = 3\nguidance_max = 4.0\n')
    run = tmp_path / "run"
    res = runner.invoke(app, ["prompts", "--config", cfg, "--set", "prompts.guidance_min=2.0", "-o", str(run)])
    assert res.exit_code == 0, res.output
    saved = tomllib.loads((run / "config.toml").read_text())["prompts"]
    assert saved["style"] == "multi-domain" and saved["guidance_min"] == 2.0 and saved["guidance_max"] == 4.0
    assert (run / "prompts" / "prompts.jsonl").read_text().count("\n") == 30
    # an option on the command line beats the file
    res = runner.invoke(app, ["prompts", "--config", cfg, "--per-class", "2", "-o", str(tmp_path / "b")])
    assert res.exit_code == 0 and (tmp_path / "b" / "prompts" / "prompts.jsonl").read_text().count("\n") == 20


def test_labels_config_reaches_the_split(tmp_path):
    cfg = _toml(tmp_path, "[federate.data]\nclients = 7\n")
    res = runner.invoke(app, ["labels", "--config", cfg, "--set", "federate.fl.seed=4", "--json", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["survivors"] == 7


def test_generate_pretrain_federate_chain_in_the_default_run_dir(tmp_path, monkeypatch):
    """`gptfl-ray generate && gptfl-ray pretrain && gptfl-ray federate`: one run directory."""
    monkeypatch.chdir(tmp_path)
    cfg = _toml(tmp_path, '[generate]\nengine = "local"\nshard_size = 8\n[pretrain]\nepochs = 1\ntrain_workers = 0\n')
    res = runner.invoke(app, ["generate", "--per-class", "2", "--config", cfg, "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["pretrain", "--model", "mlp", "--config", cfg, "--json"])
    assert res.exit_code == 0, res.output
    model = json.loads(res.stdout)["model"]
    saved = tomllib.loads((tmp_path / "runs/simulate/config.toml").read_text())
    assert saved["generate"]["shard_size"] == 8 and saved["pretrain"]["epochs"] == 1
    res = runner.invoke(app, ["federate", *TINY, "--init", model, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["run_dir"] == "runs/simulate/federate/gptfl"
    assert (tmp_path / "runs/simulate/federate/gptfl/metrics.jsonl").is_file()
