"""Fold locks: one process at a time reads or trains a ``fold_<f>`` folder (``tune``, ``sweep``, ``noise``, the demo).

A lock is the file ``polydice_tune.lock`` in the fold folder, created exclusively (``O_CREAT | O_EXCL``) with its
holder in it (JSON: the host and pid; a tune trial's lock also its study and trial, :func:`trial_owner`; a
sweep's its command, :func:`command_owner`). Its holder touches it every heartbeat interval
(:class:`LockHeartbeat`) and removes it when the run ends (:func:`held`), on Ctrl-C and SIGTERM too. A lock whose
holder died without removing it is *stale* (:func:`lock_is_stale`) and is taken over (:func:`take_lock`).

The file name and the holder's keys are spelled here only.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nnunet_polydice.integration import pruning

__all__ = ["LOCK_NAME", "heartbeat_interval", "pid_alive", "acquire_lock", "read_lock", "trial_owner",
           "command_owner", "holder_text", "lock_age", "lock_is_stale", "live_holder", "take_lock", "LockHeartbeat",
           "held"]

LOCK_NAME = "polydice_tune.lock"


def heartbeat_interval(grace: float) -> int:
    """Seconds between heartbeats for a grace period of ``grace`` seconds: a sixth of it, 1 to 30 s (so a
    holder misses five heartbeats in a row before it is taken for dead)."""
    return int(max(1, min(pruning.HEARTBEAT_INTERVAL_S, grace // 6)))


def pid_alive(pid) -> bool:
    """Whether process ``pid`` exists on this host (True when that cannot be told, e.g. another user's)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True
    return True


def acquire_lock(folder: Path, owner: dict) -> dict | None:
    """Create ``<folder>/polydice_tune.lock`` exclusively (``O_CREAT | O_EXCL``) with ``owner`` (JSON) in it.

    Returns None when acquired, else what the existing lock holds (``{}`` when unreadable).
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return read_lock(folder) or {}
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(owner, fh)
    return None


def read_lock(folder: Path) -> dict | None:
    """What the lock of ``folder`` holds: None when there is none, ``{}`` when it cannot be read."""
    try:
        data = json.loads((Path(folder) / LOCK_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def trial_owner(host: str, pid: int, study: str, study_uid: str, trial: int, tid: int) -> dict:
    """The holder of a tune trial's lock: the worker's host and pid, the study (name and uid), the trial (number and
    storage id). Read back by :func:`lock_is_stale` and :func:`holder_text`."""
    return {"host": host, "pid": pid, "study": study, "study_uid": study_uid, "trial": trial, "trial_id": tid}


def command_owner(command: str, host: str | None = None, pid: int | None = None) -> dict:
    """The holder of a lock taken by a command without a study (``'nnunet-polydice sweep'``): host, pid, command."""
    return {"host": host or socket.gethostname(), "pid": os.getpid() if pid is None else pid, "command": command}


def holder_text(holder: dict) -> str:
    """Who holds a lock: ``trial 3 of study S (host, pid 123)`` or ``nnunet-polydice sweep (host, pid 123)``."""
    where = f"({holder.get('host')}, pid {holder.get('pid')})"
    if "trial" in holder:
        return f"trial {holder.get('trial')} of study {holder.get('study')} {where}"
    return f"{holder.get('command', 'an unknown process')} {where}"


def lock_age(folder: Path) -> float:
    """Seconds since the lock in ``folder`` was last touched (0 when it is gone)."""
    try:
        return max(0.0, time.time() - (folder / LOCK_NAME).stat().st_mtime)
    except FileNotFoundError:
        return 0.0


def lock_is_stale(holder: dict, study_uid: str, trial_running: Callable[[int], bool], host: str | None = None,
                  age: float = 0.0, grace: float | None = None) -> str | None:
    """Why a lock is stale, or None while its holder may be alive.

    Stale: unreadable; its process is gone on this host; it is this study's and its trial is no longer
    running (``trial_running(trial_id)``); or it has not been touched for ``grace`` seconds (``age``: seconds
    since it was; its holder touches it every heartbeat interval).
    """
    host = host or socket.gethostname()
    if not holder or "pid" not in holder:
        return "the lock file is empty or unreadable"
    if holder.get("host") == host and not pid_alive(holder["pid"]):
        return f"its process (pid {holder['pid']}) is gone"
    if study_uid and holder.get("study_uid") == study_uid and not trial_running(int(holder.get("trial_id", -1))):
        return f"its trial {holder.get('trial')} is no longer running"
    if grace is not None and age > grace:
        return f"it has not been touched for {age:.0f} s (grace {grace:g} s): its holder is gone"
    return None


def _always_running(tid: int) -> bool:
    return True


def _why_stale(folder: Path, holder: dict, grace: float) -> str | None:
    """:func:`lock_is_stale` for a command without a study (a trial's lock counts as running while touched)."""
    return lock_is_stale(holder, "", _always_running, age=lock_age(folder), grace=grace)


def live_holder(folder: Path, grace: float = pruning.GRACE_PERIOD_S) -> dict | None:
    """The holder of the lock of ``folder`` when it may be alive (not stale); None when there is no such lock."""
    holder = read_lock(folder)
    if holder is None or _why_stale(folder, holder, grace) is not None:
        return None
    return holder


def take_lock(folder: Path, owner: dict, why_stale: Callable[[dict], str | None] | None = None,
              grace: float = pruning.GRACE_PERIOD_S, on_stale: Callable[[dict, str], None] = lambda h, why: None
              ) -> dict | None:
    """Acquire the lock of ``folder`` for ``owner``, taking over a stale one (``why_stale(holder)``, default
    :func:`lock_is_stale` by host, pid and ``grace``; ``on_stale(holder, why)`` is told first).

    Returns None when acquired, else the live holder (the one found, or one that took the lock meanwhile).
    """
    holder = acquire_lock(folder, owner)
    if holder is None:
        return None
    why = why_stale(holder) if why_stale is not None else _why_stale(folder, holder, grace)
    if why is None:
        return holder
    on_stale(holder, why)
    (folder / LOCK_NAME).unlink(missing_ok=True)
    return acquire_lock(folder, owner)


class LockHeartbeat:
    """A thread that touches a lock file every ``interval`` seconds while the block runs (its heartbeat)."""

    def __init__(self, path: Path, interval: float):
        self.path, self.interval = Path(path), float(interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="polydice-lock-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                os.utime(self.path)
            except OSError:  # removed or unreachable: the next beat tries again
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


@contextmanager
def held(folder: Path, grace: float = pruning.GRACE_PERIOD_S) -> Iterator[None]:
    """For a lock just taken: its heartbeat while the block runs, and the lock removed when the block ends (an
    exception, Ctrl-C or SIGTERM as :class:`KeyboardInterrupt`, included)."""
    path = Path(folder) / LOCK_NAME
    try:
        with LockHeartbeat(path, heartbeat_interval(grace)):
            yield
    finally:
        path.unlink(missing_ok=True)
