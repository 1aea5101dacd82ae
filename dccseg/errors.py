"""User-facing errors: one line that says what went wrong and what to do."""


class DccsegError(Exception):
    """An error caused by the user's input or environment, not by a bug.

    The CLI prints it as a single line (no traceback) and exits with status 2,
    so the message must say what to do about it.
    """

    exit_code = 2
