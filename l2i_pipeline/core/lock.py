"""One job per output location: an exclusive lock object taken with a conditional create.

`fcntl` locks mean nothing on a bucket or across nodes, so the lock is an object `_lock.json` created
only if absent (local O_EXCL, S3 If-None-Match, GCS generation match). The holder refreshes it while it
runs; a lock whose holder is gone (a dead pid on this host, or no refresh for `stale_after` seconds) is
broken by the next job, so a rerun after kill -9 proceeds.

A store that ignores the condition (some emulators and S3-compatible servers overwrite instead) would make
the lock silently non-exclusive, so a job first probes it: one probe object created twice, the second
must be refused. Such a store is refused with one line; `--no-lock` runs without the lock (the caller then
makes sure no two jobs write one output).

A job started with `L2I_LOCK_OWNER` set (set it to the RayJob's namespace and name)
records it, and a later job with the same owner takes the lock over at once: a RayJob retry (backoffLimit)
runs on a new cluster right after the old driver died, and must not wait `stale_after` for its lock.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from l2i_pipeline.core.errors import UserError
from l2i_pipeline.core.storage import Store

log = logging.getLogger(__name__)
LOCK = "_lock.json"
PROBE = ".l2i-lock-probe-"
NO_LOCK_HELP = "run without the output lock (only when no other job can write to this output)"
OWNER_ENV = "L2I_LOCK_OWNER"


class LockedError(UserError):
    """Another job holds the output location."""


class NoExclusiveCreate(UserError):
    """The store does not refuse a second conditional create of one object."""


def check_exclusive_create(out: Store) -> None:
    """Create one probe object twice with a conditional create; a store that accepts the second is refused.
    Local directories (O_EXCL) are not probed. Costs two creates and a delete per job."""
    if out.local:
        return
    name = f"{PROBE}{uuid.uuid4().hex}"
    why = ""
    try:
        first, second = out.create_exclusive(name, b"1"), out.create_exclusive(name, b"2")
        if not first or second:
            why = "a second create of one object succeeded" if second else "the first create was refused"
    except (NotImplementedError, TypeError, ValueError) as e:  # no mode="create" in this fsspec backend
        why = f"{type(e).__name__}: {e}"
    finally:
        out.delete(name)
    if why:
        raise NoExclusiveCreate(f"{out.url}: this store does not support exclusive creates ({why}); use --no-lock "
                                f"to run without the output lock")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(holder: dict, stale_after: float) -> bool:
    """Gone: a dead pid on this host, or no refresh for `stale_after` s. A lock that says neither is kept."""
    try:
        if holder.get("host") == platform.node() and not _pid_alive(int(holder.get("pid", 0))):
            return True
        last = holder.get("refreshed", holder.get("started"))
        return last is not None and time.time() - float(last) > stale_after
    except (TypeError, ValueError):
        return False


@contextmanager
def output_lock(out: Store, command: str, stale_after: float = 120.0, refresh_every: float = 20.0,
                settings: dict | None = None, enabled: bool = True) -> Iterator[str | None]:
    """Hold the lock of `out` for the block; yields this job's lock id. `settings` are shown to a refused job.
    `enabled=False` (a command's `--no-lock`) takes no lock and yields None."""
    if not enabled:
        yield None
        return
    me = {"id": uuid.uuid4().hex, "command": command, "host": platform.node(), "pid": os.getpid(),
          "owner": os.environ.get(OWNER_ENV) or None, "started": time.time(), **(settings or {})}

    def body() -> bytes:
        return json.dumps({**me, "refreshed": time.time()}).encode()

    out.makedirs()
    check_exclusive_create(out)
    for _ in range(3):
        if out.create_exclusive(LOCK, body()):
            break
        try:
            holder = json.loads(out.get(LOCK))
        except Exception:  # noqa: BLE001 - vanished or garbled: try again
            holder = {}
        if me["owner"] and holder.get("owner") == me["owner"]:
            log.warning("taking over the lock of %s from an earlier attempt of %s", out.url, me["owner"])
        elif holder and not _stale(holder, stale_after):
            raise LockedError(f"another `l2i {holder.get('command', command)}` is writing to {out.url} (host "
                              f"{holder.get('host')}, pid "
                              f"{holder.get('pid')}); if it is gone, delete "
                              f"{out.url_of(LOCK)} or wait {int(stale_after)} s")
        else:
            log.warning("breaking the stale lock of %s (held by %s pid %s)", out.url, holder.get("host"),
                        holder.get("pid"))
        out.delete(LOCK)
    else:
        raise LockedError(f"could not take the lock {out.url_of(LOCK)}")

    stop = threading.Event()

    def refresh() -> None:
        while not stop.wait(refresh_every):
            try:
                if json.loads(out.get(LOCK)).get("id") != me["id"]:
                    log.error("the lock of %s was taken over by another job", out.url)
                    return
                out.put(LOCK, body())
            except Exception as e:  # noqa: BLE001 - keep running; the next refresh retries
                log.warning("could not refresh the lock of %s: %s", out.url, e)

    thread = threading.Thread(target=refresh, name="l2i-lock-refresh", daemon=True)
    thread.start()
    try:
        yield me["id"]
    finally:
        stop.set()
        thread.join(timeout=5)
        try:
            if json.loads(out.get(LOCK)).get("id") == me["id"]:
                out.delete(LOCK)
        except Exception:  # noqa: BLE001 - a lock left behind is broken by the next run
            pass
