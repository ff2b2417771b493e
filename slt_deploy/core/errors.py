"""The one exception type that means "the user gave bad input".

The CLI turns a :class:`UserError` into a one-line message on stderr and exit
code 2, without a traceback. Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input named in one line: a missing file, an unknown name, a shape
    mismatch, a budget that cannot be met."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class RunFailure(Exception):
    """A backend run failed or hung (e.g. a Lava process raised or deadlocked);
    it was stopped and cleaned up. Reported in one line, exit code 1."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
