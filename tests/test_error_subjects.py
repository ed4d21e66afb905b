"""Library errors name settings as the library knows them, never by a CLI flag.

`ConfigError("fl.clients_per_round", ...)`, `ConfigError("output_dir", ...)`: the library has
no options; cli/errors.py alone turns a setting into the flag a user types (docs/architecture.md).
This reads gptfl_ray's source with `ast` and fails on any error subject spelt like an option.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

from gptfl_ray.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1] / "gptfl_ray"
# Calls that take an error subject, and the position it takes: ConfigError itself and the
# modules' small check helpers that raise it.
SUBJECT_ARG = {"ConfigError": 0, "_check": 1, "_positive": 0, "_positive_int": 0, "load_trace": 1}
SUBJECT_KEYWORDS = ("option", "subject", "where")


def _name(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _flag_like(node: ast.expr | None) -> bool:
    """A string constant, or an f-string whose text starts with '--'."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.startswith("--")
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        return isinstance(first, ast.Constant) and str(first.value).startswith("--")
    if isinstance(node, ast.IfExp):
        return _flag_like(node.body) or _flag_like(node.orelse)
    return False


def flag_subjects(source: str, filename: str = "<src>") -> list[str]:
    """'line: text' of every error subject in `source` spelt as a CLI flag."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        candidates: list[ast.expr | None] = []
        if isinstance(node, ast.Call):
            pos = SUBJECT_ARG.get(_name(node.func))
            if pos is not None and len(node.args) > pos:
                candidates.append(node.args[pos])
            candidates += [k.value for k in node.keywords if k.arg in SUBJECT_KEYWORDS]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.args + node.args.kwonlyargs
            defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults
            defaults += node.args.kw_defaults
            candidates += [d for a, d in zip(args, defaults) if a.arg in SUBJECT_KEYWORDS]
        elif isinstance(node, ast.Assign):  # option = "--x" if ... else "--y"; OPTION = "--x"
            if any(isinstance(t, ast.Name) and t.id.lower() in SUBJECT_KEYWORDS for t in node.targets):
                candidates.append(node.value)
        out += [(c.lineno, c.col_offset, ast.unparse(c)) for c in candidates if _flag_like(c)]
    return [f"{filename}:{line}: {text}" for line, _, text in sorted(out)]


def test_no_library_error_names_a_cli_flag():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        found += flag_subjects(path.read_text("utf-8"), str(path.relative_to(ROOT.parent)))
    assert not found, "library errors name settings (section.field), not flags:\n" + "\n".join(found)


def test_the_check_sees_every_spelling():
    src = """
ConfigError("--a", "x")
raise ConfigError(f"--{name}", "x")
_check(ok, "--b", "x")
load_model(f, ref, option="--c")
def f(path, option: str = "--d"): ...
option = "--e" if x else "--f"
ConfigError("fl.lr", "see --lr")  # the problem text is cli/errors.py's to translate, not checked here
ConfigError("[fl] lr", "x")
"""
    assert [line.split(": ", 1)[1] for line in flag_subjects(src)] == [
        "'--a'",
        "f'--{name}'",
        "'--b'",
        "'--c'",
        "'--d'",
        "'--e' if x else '--f'",
    ]


def test_config_error_pickles_with_both_fields():
    # Ray ships an actor's exception by pickling it (errors.py __reduce__)
    e = pickle.loads(pickle.dumps(ConfigError("fl.clients_per_round", "must be <= `data.clients` (50)")))
    assert (e.subject, e.problem) == ("fl.clients_per_round", "must be <= `data.clients` (50)")
