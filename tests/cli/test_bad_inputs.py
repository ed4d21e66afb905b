"""Bad input to every command, table-driven: exit code 2 within seconds, one line naming the
option or file, no traceback, and an existing run directory left byte-identical."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from cli_helpers import TINY, runner

from gptfl_ray.cli.main import app


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("existing") / "run"
    res = runner.invoke(app, ["federate", *TINY, "--output-dir", str(run)])
    assert res.exit_code == 0, res.output
    return run


def toml(tmp: Path, text: str) -> str:
    p = tmp / "bad.toml"
    p.write_text(text)
    return str(p)


# (command line with RUN for the existing run and TMP for a scratch dir, text the line must name)
CASES = [
    ("federate --seed -1 --output-dir RUN --overwrite", "--seed"),
    ("federate --rounds -1 --output-dir RUN --overwrite", "--rounds"),
    ("federate --lr 0 --output-dir RUN --overwrite", "--lr"),
    ("federate --dropout 1.0 --output-dir RUN --overwrite", "--dropout"),
    ("federate --batch-size 0 --output-dir RUN --overwrite", "--batch-size"),
    ("federate --local-epochs 0 --output-dir RUN --overwrite", "--local-epochs"),
    ("federate --sample-rate 1.5 --output-dir RUN --overwrite", "--sample-rate"),
    ("federate --momentum 1 --output-dir RUN --overwrite", "--momentum"),
    ("federate --server-momentum 1.5 --output-dir RUN --overwrite", "--server-momentum"),
    ("federate --config TOML:[fl]\nrounds=30.5 --output-dir RUN --overwrite", "[fl] rounds"),
    ('federate --config TOML:[fl]\nsecure_aggregation="false" --output-dir RUN --overwrite', "[fl] secure_aggregation"),
    ("federate --config TOML:[fl]\nroundz=3 --output-dir RUN --overwrite", "did you mean 'rounds'"),
    ("federate --config TOML:fl=3 --output-dir RUN --overwrite", "[fl]"),
    ("federate --config TOML:[fll]\nrounds=3 --output-dir RUN --overwrite", "[fll]"),
    ("federate --config TOML:[fl\n --output-dir RUN --overwrite", "--config"),
    ("federate --config TMP/none.toml --output-dir RUN --overwrite", "--config"),
    ("federate --output-dir RUN", "--resume"),
    ("federate --output-dir RUN --resume --overwrite", "--resume"),
    ("federate --output-dir RUN --resume --lr 0.5", "fl.lr"),
    ("federate --backend ray --address 127.0.0.1:1 --output-dir RUN --overwrite", "--address"),
    ("federate --output-dir FILE", "--output-dir"),
    ("federate --output-dir /proc/gptfl-cannot-write", "--output-dir"),
    ("simulate --seed -1 --output-dir RUN", "--seed"),
    ("simulate --variants fedavg,magic --output-dir RUN", "--variants"),
    ("simulate --config TOML:[simulate]\nvariant='fedavg' --output-dir RUN", "did you mean 'variants'"),
    ("simulate --config TOML:[pretrain]\nepochs=2.0 --output-dir RUN", "[pretrain] epochs"),
    ("simulate --config TOML:prompts=[] --output-dir RUN", "[prompts]"),
    ("simulate --pretrain-epochs 0 --output-dir RUN", "--pretrain-epochs"),
    ("prompts --seed -1 --output-dir RUN", "--seed"),
    ("prompts --style haiku --output-dir RUN", "--style"),
    ("generate --gen-actors 0 --output-dir RUN", "--gen-actors"),
    ("generate --seed -3 --output-dir RUN", "--seed"),
    ("pretrain --pretrain-epochs 0 --output-dir RUN", "--pretrain-epochs"),
    ("pretrain --pretrain-lr 0 --output-dir RUN", "--pretrain-lr"),
    ("pretrain --config TOML:[pretrain]\nepochs=0 --output-dir RUN", "--pretrain-epochs"),
    ("prompts --config TOML:[prompts]\nstyle='haiku' --output-dir RUN", "--style"),
    ("generate --set generate.gen_actors=0 --output-dir RUN", "--gen-actors"),
    ("labels --config TOML:[federate.data]\nclients=0 --output-dir RUN", "--clients"),
    ("federate --rounds many --output-dir RUN --overwrite", "--rounds"),
    ("federate --no-such-option --output-dir RUN --overwrite", "--no-such-option"),
    ("pretrain --lr 0.1 --output-dir RUN", "did you mean --pretrain-lr"),
    ("generate --model x --output-dir RUN", "did you mean --gen-model"),
    ("bench sampling --set federate.fl.nokey=1 --output-dir RUN", "nokey"),
    ("pretrain --train-workers -1 --output-dir RUN", "--train-workers"),
    ("pretrain --seed -1 --output-dir RUN", "--seed"),
    ("labels --dropout 1.5 --output-dir RUN", "--dropout"),
    ("labels --seed -1 --output-dir RUN", "--seed"),
    ("bench sampling --rates 0 --output-dir RUN", "--rates"),
    ("bench comm --strategies fedsgd --output-dir RUN", "--strategies"),
]


def _argv(line: str, run: Path, tmp: Path) -> list[str]:
    out = []
    for tok in line.split(" "):
        if tok.startswith("TOML:"):
            tok = toml(tmp, tok[5:].replace("\\n", "\n") + "\n")
        tok = tok.replace("RUN", str(run)).replace("TMP", str(tmp))
        if tok == "FILE":
            (tmp / "a-file").write_text("x")
            tok = str(tmp / "a-file")
        out.append(tok)
    return out


@pytest.mark.parametrize("line, needle", CASES, ids=[c[0][:60] for c in CASES])
def test_bad_input(run_dir, tmp_path, line, needle):
    before = tree_hash(run_dir)
    t0 = time.monotonic()
    res = runner.invoke(app, _argv(line, run_dir, tmp_path))
    took = time.monotonic() - t0
    out = res.output.strip()
    assert res.exit_code == 2, out
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    assert needle in out, out
    assert took < 30, f"{took:.1f}s"  # "within seconds": generous for a loaded CI machine, never a hang
    assert tree_hash(run_dir) == before


def test_at_least_25_cases_over_every_command():
    assert len(CASES) >= 25
    assert {c[0].split()[0] for c in CASES} >= {
        "federate",
        "simulate",
        "prompts",
        "generate",
        "pretrain",
        "labels",
        "bench",
    }
