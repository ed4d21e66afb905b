"""Fault tests: kill -9 at fixed points (GPTFL_KILL_AT, gptfl_ray/faults.py) of federate and
simulate, then --resume or rerun: the final weights equal an uninterrupted run's, byte for byte.
Also: --overwrite after a longer SCAFFOLD run equals a fresh run; a second command on a locked
run directory refuses naming the holder's PID, and a dead holder's lock is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-c", "from gptfl_ray.cli.main import main; main()"]
FED = [
    "federate",
    "--backend",
    "local",
    "--clients",
    "6",
    "--clients-per-round",
    "3",
    "--model",
    "mlp",
    "--local-epochs",
    "1",
    "--strategy",
    "scaffold",
    "--lr",
    "0.05",
    "--checkpoint-every",
    "2",
]
SIM_TOML = """
[generate]
engine = "local"
shard_size = 20
"""
SIM = [
    "simulate",
    "--backend",
    "local",
    "--train-workers",
    "0",
    "--variants",
    "gptfl",
    "--clients",
    "6",
    "--clients-per-round",
    "3",
    "--rounds",
    "2",
    "--local-epochs",
    "1",
    "--per-class",
    "6",
    "--pretrain-epochs",
    "3",
]


def cli(args, kill_at: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("GPTFL_KILL_AT", None)
    if kill_at:
        env["GPTFL_KILL_AT"] = kill_at
    return subprocess.run([*CLI, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)


def killed(res) -> bool:
    return res.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def fed_reference(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("ref") / "run"
    res = cli([*FED, "--rounds", "4", "--output-dir", out])
    assert res.returncode == 0, res.stderr
    return (out / "model.safetensors").read_bytes()


@pytest.mark.parametrize("kill_at", ["round:3", "checkpoint:2", "round:1"])
def test_federate_kill_then_resume_is_exact(tmp_path, fed_reference, kill_at):
    out = tmp_path / "run"
    res = cli([*FED, "--rounds", "4", "--output-dir", out], kill_at=kill_at)
    assert killed(res), (res.returncode, res.stderr)
    with open(out / "metrics.jsonl", "a") as fh:  # a torn last line, as a kill mid-append leaves
        fh.write('{"round": 9, "accu')
    res = cli([*FED, "--rounds", "4", "--output-dir", out, "--resume"])
    assert res.returncode == 0, res.stderr
    assert (out / "model.safetensors").read_bytes() == fed_reference
    rounds = [l for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [int(l.split('"round": ')[1].split(",")[0]) for l in rounds] == [0, 1, 2, 3, 4]


def test_overwrite_after_longer_scaffold_run_equals_fresh(tmp_path, fed_reference):
    out = tmp_path / "run"
    assert cli([*FED, "--rounds", "7", "--output-dir", out]).returncode == 0
    res = cli([*FED, "--rounds", "4", "--output-dir", out, "--overwrite"])
    assert res.returncode == 0, res.stderr
    assert (out / "model.safetensors").read_bytes() == fed_reference
    assert sorted(p.name for p in (out / "checkpoints").glob("*.json")) == ["round_00002.json", "round_00004.json"]
    res = cli([*FED, "--rounds", "4", "--output-dir", out, "--resume"])  # and a resume finds only this run's state
    assert res.returncode == 0 and (out / "model.safetensors").read_bytes() == fed_reference


@pytest.fixture(scope="module")
def sim_reference(tmp_path_factory) -> tuple[Path, bytes]:
    root = tmp_path_factory.mktemp("simref")
    (root / "sim.toml").write_text(SIM_TOML)
    out = root / "run"
    res = cli([*SIM, "--config", root / "sim.toml", "--output-dir", out])
    assert res.returncode == 0, res.stderr
    return root / "sim.toml", (out / "federate" / "gptfl" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("kill_at", ["shard:2", "epoch:2", "round:1"])
def test_simulate_kill_then_rerun_is_exact(tmp_path, sim_reference, kill_at):
    conf, ref = sim_reference
    out = tmp_path / "run"
    res = cli([*SIM, "--config", conf, "--output-dir", out], kill_at=kill_at)
    assert killed(res), (res.returncode, res.stderr)
    if kill_at == "epoch:2":  # mid-pre-training: nothing published, no key over half-trained weights
        assert not (out / "pretrain").exists()
    res = cli([*SIM, "--config", conf, "--output-dir", out])
    assert res.returncode == 0, res.stderr
    assert (out / "federate" / "gptfl" / "model.safetensors").read_bytes() == ref


def test_changed_setting_refused_naming_stage_then_overwrite(tmp_path, sim_reference):
    conf, ref = sim_reference
    out = tmp_path / "run"
    assert cli([*SIM, "--config", conf, "--output-dir", out]).returncode == 0
    before = (out / "config.toml").read_bytes()
    res = cli([*SIM, "--config", conf, "--output-dir", out, "--seed", "1"])
    assert res.returncode == 2 and "prompts" in res.stderr and "seed" in res.stderr, res.stderr
    assert (out / "config.toml").read_bytes() == before
    res = cli([*SIM, "--config", conf, "--output-dir", out, "--seed", "1", "--overwrite"])
    assert res.returncode == 0, res.stderr
    assert "seed = 1" in (out / "config.toml").read_text()


HOLD = """
import sys, time
from gptfl_ray.runio import RunLock
with RunLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_second_command_on_a_locked_dir_refuses_then_takes_over_a_dead_lock(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = cli([*FED, "--rounds", "1", "--output-dir", out])
        assert res.returncode == 2 and f"PID {holder.pid}" in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    finally:
        holder.kill()  # kill -9: the lock file stays behind, its flock dies with the process
        holder.wait()
    assert (out / ".lock").exists()
    res = cli([*FED, "--rounds", "1", "--output-dir", out])
    assert res.returncode == 0, res.stderr
    assert not (out / ".lock").exists()
