"""Errors that speak to the user.

A :class:`PacsimError` is a mistake in the user's input (config, path, value); the CLI prints
its one-line message and exits non-zero, never a traceback.
"""


class PacsimError(Exception):
    """A user-facing error: the message names what is wrong and what is allowed."""


class ConfigError(PacsimError):
    """A config file that is missing, unparsable or invalid."""
