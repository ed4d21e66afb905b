"""How options look in `--help` and in the shell: panels, effective defaults, completed choices.

Options whose value comes from a preset default to None on the command line ("not given", so
TOML can fill them); their help shows the built-in default instead, read from the config
dataclasses so it cannot drift from what a run uses. Choices are completed by the shell but
validated by the configs, which fail with one line naming the option (not click's usage block).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable
from typing import Any


def field_defaults(cls, prefix: str = "", rename: dict[str, str] | None = None) -> dict[str, Any]:
    """{option name: default} of a config dataclass, without building (validating) it."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            continue  # nested sections are read through their own class
        else:
            continue
        out[(rename or {}).get(f.name, prefix + f.name)] = value
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, (tuple, list)):
        return ",".join(map(str, v))
    return str(v)


def present(
    panel: str,
    group: Iterable[inspect.Parameter],
    defaults: dict[str, Any] | None = None,
    choices: dict[str, Callable[[], Iterable[str]]] | None = None,
) -> None:
    """Put `group` in a help panel, show effective defaults, complete choices (mutates the OptionInfos)."""
    for p in group:
        info = p.default
        info.rich_help_panel = panel
        if defaults and info.default is None and defaults.get(p.name) is not None:
            info.show_default = _fmt(defaults[p.name])
        if choices and p.name in choices:
            info.autocompletion = _completer(choices[p.name])


def _completer(names: Callable[[], Iterable[str]]):
    def complete(incomplete: str) -> list[str]:
        last = incomplete.rsplit(",", 1)  # comma lists (--variants a,b) complete their last item
        head = last[0] + "," if len(last) == 2 else ""
        return [head + n for n in names() if n.startswith(last[-1])]

    return complete
