"""The one exception type for mistakes a user can fix (bad config, missing file, bad input).

The command line prints its message on one line and exits with code 2; anything else is a bug
and keeps its traceback.
"""
import sys


class OcciError(Exception):
    """A user-fixable problem; the message names the file, key or value and what was expected."""


def warn(message: str) -> None:
    """One line on stderr, `occi: warning: ...`, for something a user should know but that does
    not stop the run (a stage that kept nothing, a source that contributed nothing)."""
    print(f"occi: warning: {message}", file=sys.stderr, flush=True)
