"""The CLI as a user meets it: help shows real defaults, the shell completes, --set reaches
the saved config.toml, --version, one default run directory for every stage."""

import re
import tomllib

import click
import pytest
from cli_helpers import TINY, commands, runner

from gptfl_ray import __version__
from gptfl_ray.cli.main import app

COMMANDS = list(commands())


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_help_shows_no_none_default(path):
    res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert not re.search(r"default:\s*\(?None", res.output), res.output


def test_help_shows_the_effective_default_of_preset_filled_options():
    res = runner.invoke(app, ["simulate", "--help"], env={"COLUMNS": "250"})
    rows = {m.group(1): m.group(0) for m in re.finditer(r"(--[a-z0-9-]+)\b[^\n]*", res.output)}
    from gptfl_ray.config import DataConfig, EngineConfig, FLConfig
    from gptfl_ray.pretrain.config import PretrainConfig
    from gptfl_ray.synth.config import GenerateConfig

    fl, pre, gen = FLConfig(), PretrainConfig(), GenerateConfig()
    for flag, default in (
        ("--rounds", fl.rounds),
        ("--lr", fl.lr),
        ("--dataset", DataConfig().dataset),
        ("--alpha", DataConfig().alpha),
        ("--pretrain-epochs", pre.epochs),
        ("--pretrain-lr", pre.lr),
        ("--generator", gen.generator),
        ("--steps", gen.steps),
        ("--strategy", fl.strategy),
        ("--backend", EngineConfig().backend),
        ("--device", gen.device),
    ):
        assert f"default: ({default})" in rows[flag], rows[flag]
    for panel in ("Data", "Model", "FL", "Engine", "Synthesis", "Pre-training", "Run"):
        assert f"─ {panel} ─" in res.output


def test_every_stage_shares_the_default_run_directory():
    from gptfl_ray.cli.federate import default_federate_dir

    outs = []
    for cmd in ("generate", "pretrain", "prompts", "labels", "simulate"):
        params = {p.name: p for p in dict(COMMANDS)[(cmd,)].params}
        outs.append(str(params["output_dir"].default or params["output_dir"].show_default))
    assert set(outs) == {"runs/simulate"}
    # federate runs where simulate keeps the same variant
    assert default_federate_dir(None).as_posix() == "runs/simulate/federate/fedavg"
    assert default_federate_dir("m.safetensors").as_posix() == "runs/simulate/federate/gptfl"


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"gptfl-ray {__version__}"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script_generation(shell):
    res = runner.invoke(app, ["--show-completion", shell], prog_name="gptfl-ray")
    assert res.exit_code == 0, res.output
    assert "_GPTFL_RAY_COMPLETE" in res.output


def test_choices_complete_from_the_registries():
    params = {p.name: p for p in dict(COMMANDS)[("federate",)].params}
    ctx = click.Context(dict(COMMANDS)[("federate",)])
    names = [c.value for c in params["strategy"].shell_complete(ctx, "fed")]
    assert "fedavg" in names and "fedadam" in names and "scaffold" not in names
    assert [c.value for c in params["dataset"].shell_complete(ctx, "cif")] == ["cifar10", "cifar100"]
    sim = dict(COMMANDS)[("simulate",)]
    variants = {p.name: p for p in sim.params}["variants"]
    assert [c.value for c in variants.shell_complete(click.Context(sim), "fedavg,syn")] == ["fedavg,synthetic"]


def test_set_overrides_reach_the_saved_config(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "federate",
            *TINY,
            "--set",
            "federate.fl.weight_decay=0.001",
            "--set",
            "federate.data.alpha=0.3",
            "--output-dir",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    saved = tomllib.loads((out / "config.toml").read_text())["federate"]
    assert saved["fl"]["weight_decay"] == 0.001 and saved["data"]["alpha"] == 0.3
    assert saved["fl"]["rounds"] == 2  # command-line options still win over --set's TOML layer


@pytest.mark.parametrize("item", ["federate.fl.lr", "lr=0.1", "federate.fl.no_such_key=1"])
def test_bad_set_is_one_line_exit_2(tmp_path, item):
    res = runner.invoke(app, ["federate", *TINY, "--set", item, "--output-dir", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    out = res.output.strip()
    assert len(out.splitlines()) == 1 and "Traceback" not in out, out
