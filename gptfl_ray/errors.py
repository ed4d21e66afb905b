"""One exception type for bad user input.

Every check that a user can trip raises `ConfigError` with a message that names the setting or
file and what is wrong: a config field as `section.field` (`fl.clients_per_round`), a plain
function's keyword by its name (`output_dir`), a setting inside the problem text between
backticks. Never a CLI flag: the CLI (cli/errors.py) names the option that fills the setting,
prints one line on stderr and exits with code 2, no traceback (docs/architecture.md rule 9).
"""


class ConfigError(ValueError):
    """Bad user input: an option value, a missing or corrupt file, a conflicting setting."""

    def __init__(self, subject: str, problem: str):
        self.subject = subject
        self.problem = problem
        super().__init__(f"{subject}: {problem}")

    def __reduce__(self):
        # Ray ships exceptions raised in actors by pickling them; keep both fields.
        return (self.__class__, (self.subject, self.problem))


def find_config_error(exc: BaseException) -> ConfigError | None:
    """The ConfigError inside an exception Ray wrapped (RayTaskError.cause, ActorDiedError's
    args, __cause__/__context__ chains), so a bad model path in an actor still reads as one line."""
    seen, stack = set(), [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConfigError):
            return ConfigError(e.subject, e.problem)
        stack += [getattr(e, "cause", None), e.__cause__, e.__context__]
        stack += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
    return None


class RunError(RuntimeError):
    """A run-time outcome, not bad input (a secure-aggregation abort, a client that raised): the
    CLI prints one line and exits 1; the run directory stays resumable from its last checkpoint."""
