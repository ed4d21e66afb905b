"""One exception type for bad user input.

Every check that a user can trip raises `ConfigError` with a message that names the option or
file and what is wrong. The CLI turns it into one line on stderr and exit code 2, no traceback.
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
