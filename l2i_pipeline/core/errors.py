"""One family of errors for mistakes a user can fix: the CLI prints one line and exits 2 for each.

Anything else that escapes a command is a bug (or an outage) and keeps its traceback: the CLI
(`l2i_pipeline/cli.py`) catches `UserError` and nothing else. Ray wraps what a worker raised, so the code
that waits on Ray work looks for a UserError inside with `user_error_in` (one rule for every runner).
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


def user_error_in(e: BaseException | None) -> UserError | None:
    """The UserError inside a Ray error, or None: followed through the exception chain (`__cause__`,
    `__context__`), Ray's `.cause` (a task's RayTaskError), `.error` (Ray Train v1) and `.worker_failures`
    (Ray Train v2: rank -> error)."""
    todo, seen = [e], set()
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, UserError):
            return e
        failures = getattr(e, "worker_failures", None)
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__, getattr(e, "error", None),
                 *(failures.values() if isinstance(failures, dict) else ())]
    return None
