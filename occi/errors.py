"""The one exception type for mistakes a user can fix (bad config, missing file, bad input).

The command line prints its message on one line and exits with code 2; anything else is a bug
and keeps its traceback.
"""


class OcciError(Exception):
    """A user-fixable problem; the message names the file, key or value and what was expected."""
