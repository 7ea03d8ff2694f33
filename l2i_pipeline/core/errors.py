"""One family of errors for mistakes a user can fix: the CLI prints one line and exits 2 for each.

Anything else that escapes a command is a bug (or an outage) and keeps its traceback.
"""
from __future__ import annotations

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A bad argument, config value, input or output location; the message says what and where."""


class ConfigError(UserError, ValueError):
    """A config file or override that cannot be used; the message names the key."""


class InputError(UserError, ValueError):
    """Input data that cannot be used as a whole (missing, empty, of the wrong kind)."""


class StorageError(UserError, OSError):
    """A storage URL that cannot be used: unknown protocol, missing extra, missing bucket, no access."""


class NotFound(UserError, FileNotFoundError):
    """A file, directory, shard or object the user named (or that a command needs) does not exist."""
