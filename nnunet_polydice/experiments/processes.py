"""Child processes that end with their command: SIGTERM as Ctrl-C, and a child stopped on any exception.

Every command that starts a training (``sweep``, ``noise``, ``demo``, ``tune``) runs nnU-Net in a subprocess.
SIGTERM (``kill``, a batch system ending a job) would end such a command at once, with no handler run, and leave
its ``nnUNetv2_train`` training on as an orphan. Here, the one way to avoid that:

* :func:`sigterm_as_interrupt`: while the block runs, SIGTERM raises :class:`KeyboardInterrupt`, as Ctrl-C does
  (the command line then says "interrupted" and exits 130);
* :func:`started` / :func:`run_child`: a child process that is stopped (:func:`stop_process`: SIGTERM, then
  SIGKILL after :data:`STOP_GRACE_S` seconds) when any exception, the interrupt included, leaves the block.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

__all__ = ["STOP_GRACE_S", "sigterm_as_interrupt", "stop_process", "started", "run_child"]

#: Seconds a stopped child has to end after SIGTERM before it is killed (nnU-Net saves no checkpoint on SIGTERM;
#: the time is for its data-augmentation workers to end).
STOP_GRACE_S = 60


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`KeyboardInterrupt` in the main thread; the previous handler
    comes back afterwards. Off the main thread (where no handler can be set) nothing changes."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_process(proc: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """End ``proc``: SIGTERM (never ignored, unlike SIGINT in background jobs), then SIGKILL after ``grace``
    seconds, or at once on a second interrupt while it is waited for."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        proc.kill()
        proc.wait()


@contextmanager
def started(argv: Sequence[str], **popen_kwargs) -> Iterator[subprocess.Popen]:
    """``subprocess.Popen(argv, **popen_kwargs)`` for the block; any exception leaving the block (Ctrl-C, SIGTERM
    under :func:`sigterm_as_interrupt`) stops the process first (:func:`stop_process`)."""
    proc = subprocess.Popen(list(argv), **popen_kwargs)
    try:
        yield proc
    except BaseException:
        stop_process(proc)
        raise


def run_child(argv: Sequence[str], *, env: dict | None = None) -> int:
    """Run ``argv`` (output to this process's stdout/stderr) and return its exit status; stopped on an exception
    (:func:`started`). The drop-in for :func:`subprocess.call` of every command that trains or plans."""
    with started(argv, env=env) as proc:
        return proc.wait()
