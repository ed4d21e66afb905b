"""`simulate --style llm`: the run summary counts the LLM's prompts and the template fallbacks,
and the terminal warns when any prompt fell back."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gptfl_ray.cli.main import app

TINY = [
    "--clients",
    "4",
    "--clients-per-round",
    "2",
    "--rounds",
    "1",
    "--local-epochs",
    "1",
    "--per-class",
    "6",
    "--pretrain-epochs",
    "1",
    "--alpha",
    "0.5",
    "--variants",
    "synthetic",
    "--backend",
    "local",
    "--train-workers",
    "0",
]


def test_llm_prompt_counts_reach_summary_and_terminal(tmp_path, tiny_gpt2):
    run = tmp_path / "run"
    args = ["simulate", *TINY, "--style", "llm", "--llm-model", str(tiny_gpt2), "--output-dir", str(run)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    counts = json.loads((run / "summary.json").read_text())["prompts"]
    rows = [json.loads(l) for l in (run / "prompts" / "prompts.jsonl").read_text().splitlines() if l.strip()]
    made = sum(r["style"] == "llm" for r in rows)
    assert counts == {"style": "llm", "total": len(rows), "llm": made, "template_fallback": len(rows) - made}
    # the tiny random GPT-2 names a digit now and then, not always: both paths ran
    assert 0 < made < len(rows)
    assert f"{len(rows) - made} of {len(rows)} prompts fell back to class templates" in " ".join(res.output.split())
    # a rerun reuses the prompts file and reports the same counts
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads((run / "summary.json").read_text())["prompts"] == counts


def test_template_prompts_report_no_fallback(tmp_path):
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["simulate", *TINY, "--output-dir", str(run)])
    assert res.exit_code == 0, res.output
    counts = json.loads((run / "summary.json").read_text())["prompts"]
    assert (
        counts["style"] == "class" and counts["llm"] == 0 and counts["template_fallback"] == 0 and counts["total"] > 0
    )
    assert "fell back" not in res.output
