"""The docs the code leans on exist and say what the code cites: every "docs/architecture.md
rule N" names a numbered rule there, and every preset in configs/ is mapped in docs/reproduce.md."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD = "DESIGN" + " rule"  # the pre-docs citation form, spelt apart so this file does not match itself
CITE = re.compile(r"docs/architecture\.md rules? (\d+)(?: and (\d+))?")


def _sources():
    for folder in ("gptfl_ray", "cli", "benchmarks", "tests"):
        yield from (ROOT / folder).rglob("*.py")


def test_every_cited_rule_exists():
    text = (ROOT / "docs" / "architecture.md").read_text("utf-8")
    rules = {int(m) for m in re.findall(r"^(\d+)\. \*\*", text, re.M)}
    assert rules == set(range(1, 13))
    cited = {}
    for path in _sources():
        for m in CITE.finditer(path.read_text("utf-8")):
            for n in filter(None, m.groups()):
                cited.setdefault(int(n), []).append(path.relative_to(ROOT).as_posix())
        assert OLD not in path.read_text("utf-8"), f"{path}: cite docs/architecture.md, not the old design card"
    assert cited and set(cited) <= rules, {n: f for n, f in cited.items() if n not in rules}


def test_every_preset_is_mapped_in_reproduce_md():
    text = (ROOT / "docs" / "reproduce.md").read_text("utf-8")
    for preset in sorted((ROOT / "configs").glob("*.toml")):
        assert f"configs/{preset.name}" in text, preset.name


def test_readme_links_the_docs_and_its_images():
    readme = (ROOT / "README.md").read_text("utf-8")
    for link in re.findall(r"\]\(((?:docs|configs|benchmarks)/[^)#]+)\)", readme):
        assert (ROOT / link).exists(), link
    assert "docs/architecture.md" in readme and "docs/reproduce.md" in readme


def _cli_commands():
    import typer

    from gptfl_ray.cli.main import app

    def walk(group, prefix=()):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from walk(cmd, (*prefix, name))
            else:
                yield " ".join((*prefix, name)), cmd

    return dict(walk(typer.main.get_command(app)))


def test_readme_commands_section_is_true_to_the_cli():
    """Every command in the README's table exists, every CLI command is in the table, and every
    --option the Commands section names is an option of some command."""
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme[readme.index("## Commands") : readme.index("## Running on a Ray cluster")]
    commands = _cli_commands()
    table = set(re.findall(r"^\| `gptfl-ray ([a-z]+(?: [a-z]+)?)", section, re.M))
    assert table == set(commands), table ^ set(commands)
    options = {o for cmd in commands.values() for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    options |= {"--install-completion", "--show-completion", "--version", "--help"}
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", section))
    assert named - options == set(), named - options
