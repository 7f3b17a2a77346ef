"""Errors that speak to the user.

A :class:`PacsimError` is a mistake in the user's input (config, path, value); the CLI prints
its one-line message and exits non-zero, never a traceback.
"""

import re

#: What ``str.splitlines`` breaks lines at.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


class PacsimError(Exception):
    """A user-facing error: the message names what is wrong and what is allowed.

    The message is always one line: a line break inside it (from a key, a value or a path
    that the user wrote) is shown escaped, as ``\\n``.
    """

    def __init__(self, message: str = "", *args):
        message = _LINE_BREAKS.sub(lambda m: repr(m.group())[1:-1], str(message))
        super().__init__(message, *args)


class ConfigError(PacsimError):
    """A config file that is missing, unparsable or invalid."""
