"""Workers that die (with every storage): fold locks with a heartbeat, stale trials failed and enqueued again, takeover.

A tune study is shared by workers on one or many hosts (``--workers``, ``--slurm``, the same command on
another machine); only its Optuna storage and the nnU-Net results folder connect them. A worker can die
without running any handler (Slurm preemption, a node crash, the OOM killer: SIGKILL). Then:

* **its trial** would stay RUNNING forever. Every worker sends a heartbeat for its running trial every
  :func:`heartbeat_interval` seconds: RDB storages through Optuna's own heartbeat, the journal storage through
  :func:`~nnunet_polydice.integration.pruning.open_storage`'s heartbeat journal (a trial system attribute).
  A trial whose last heartbeat is older than the grace period is *stale*; the next worker that looks (before
  each trial, and while it waits at the end of its share) fails it and enqueues its setting again
  (:func:`requeue`), with the same (fold, seed) instances and the learning curve reported so far. A worker on
  the same host fails it at once when the worker's process is gone (:func:`fail_dead_local_trials`).
* **its fold lock** (``polydice_tune.lock``, held while a (setting, fold, seed) run is read or trained) would
  keep every other worker away. The worker touches its lock every heartbeat interval (:class:`LockHeartbeat`);
  a lock is stale (:func:`lock_is_stale`) when its trial is no longer running, its process is gone on this
  host, or it has not been touched for the grace period. The locks are :mod:`nnunet_polydice.experiments.locks`'s
  (sweep and noise take the same ones), re-exported here.
* **its training** is continued by the worker that takes the enqueued trial: nnU-Net's
  ``nnUNetv2_train --c`` from ``checkpoint_latest.pth`` (saved every epoch on short schedules), so what the
  dead worker trained after its last checkpoint is the only work done twice.

A worker that has run its share of trials does not stop while the study has trials RUNNING on other workers:
it waits (checking every heartbeat interval), takes over any that go stale, and leaves when none is left
running or waiting (:func:`run_until_settled`). So the last live worker finishes the study; the cost is that a
worker may sit idle for up to the length of the last running trial.

A retried setting is retried at most :data:`MAX_RETRIES` times (a setting whose training kills its worker
every time, say by running out of memory, is then left failed).

The clocks of the hosts are compared (heartbeat times are wall-clock times written by one host and read by
another): keep them in sync (NTP) and the grace period well above their skew.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from nnunet_polydice.experiments.locks import (
    LOCK_NAME,
    LockHeartbeat,
    acquire_lock,
    heartbeat_interval,
    holder_text,
    lock_age,
    lock_is_stale,
    pid_alive,
)
from nnunet_polydice.experiments.locks import trial_owner as lock_owner
from nnunet_polydice.experiments.tune import record
from nnunet_polydice.experiments.tune.optuna_api import storage_of, trial_id
from nnunet_polydice.integration import pruning

__all__ = [
    "LOCK_NAME", "MAX_RETRIES", "MIN_GRACE_S", "MAX_GRACE_S", "heartbeat_interval", "acquire_lock", "lock_is_stale",
    "lock_owner", "holder_text", "lock_age", "LockHeartbeat", "requeue", "fail_dead_local_trials",
    "fail_stale_trials", "left_over",
    "run_until_settled",
]

#: A setting whose trial went stale this many times is not enqueued again.
MAX_RETRIES = 3
#: Bounds of ``--grace``: six heartbeats of at least one second each; one day.
MIN_GRACE_S = 6
MAX_GRACE_S = 86400


# ------------------------------------------------------------------------------------------- stale trials

def requeue(study, frozen, why: str, *, count_retry: bool = True) -> int | None:
    """Enqueue the setting of ``frozen`` (a failed or failing trial) once more as a WAITING trial that continues
    it: the same parameters, its racing instances, its learning curve so far (``inherited_epochs`` of it),
    ``resumes`` = its number and ``requeue_reason`` = ``why``. Returns the new trial's number, or None when the
    trial had no setting yet or its setting has been retried :data:`MAX_RETRIES` times (``count_retry``: a death
    counts, an interrupt does not)."""
    import optuna
    from optuna.trial import TrialState

    if not frozen.params:
        return None
    retries = int(frozen.user_attrs.get(record.RETRIES, 0)) + (1 if count_retry else 0)
    if retries > MAX_RETRIES:
        return None
    attrs = {k: frozen.user_attrs[k] for k in record.CARRIED if k in frozen.user_attrs}
    attrs.update({record.RESUMES: frozen.number, record.REQUEUE_REASON: why, record.RETRIES: retries,
                  record.INHERITED_EPOCHS: len(frozen.intermediate_values)})
    trial = optuna.trial.create_trial(state=TrialState.WAITING, params=dict(frozen.params),
                                      distributions=dict(frozen.distributions), user_attrs=attrs,
                                      intermediate_values=dict(frozen.intermediate_values))
    study.add_trial(trial)
    return study.get_trials(deepcopy=False)[-1].number


def stale_callback(echo: Callable[[str], None] = lambda s: None):
    """The callback both heartbeat kinds call for a trial they failed as stale (:func:`requeue`)."""

    def on_stale(study, frozen) -> None:
        number = requeue(study, frozen, "its worker sent no heartbeat for the grace period")
        echo(_takeover_line(frozen, number, "sent no heartbeat for the grace period"))

    return on_stale


def _takeover_line(frozen, number: int | None, what: str) -> str:
    who = f"{frozen.user_attrs.get(record.HOST, '?')} pid {frozen.user_attrs.get(record.PID, '?')}"
    then = f"enqueued again as trial {number}" if number is not None else \
        f"not enqueued again (retried {MAX_RETRIES} times already, or it had no setting yet)"
    return f"trial {frozen.number:3d}  its worker ({who}) {what}: failed, {then}"


def fail_dead_local_trials(study, echo: Callable[[str], None] = lambda s: None) -> list[int]:
    """Fail this host's RUNNING trials whose worker process is gone (at once, without waiting for the grace
    period) and enqueue their settings again. Returns their numbers."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    host, failed = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get(record.PID)
        if t.user_attrs.get(record.HOST) == host and pid is not None and not pid_alive(pid):
            try:
                if not storage_of(study).set_trial_state_values(trial_id(t), state=TrialState.FAIL):
                    continue
            except UpdateFinishedTrialError:  # another worker was quicker
                continue
            number = requeue(study, t, "its worker process was gone")
            echo(_takeover_line(t, number, "is gone"))
            failed.append(t.number)
    return failed


def fail_stale_trials(study, echo: Callable[[str], None] = lambda s: None) -> None:
    """Both checks: dead local workers (:func:`fail_dead_local_trials`), then Optuna's heartbeat check, which
    calls the storage's stale-trial callback (:func:`stale_callback`) for each trial it fails."""
    import warnings

    import optuna

    fail_dead_local_trials(study, echo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning
        optuna.storages.fail_stale_trials(study)


def left_over(trial, grace: float, now: float | None = None) -> bool:
    """Whether a WAITING trial of a command's plan (enqueued with ``enqueued_at``) has waited longer than the grace
    period: then no live worker is coming for it. One without the attribute (an older study's) counts as left over."""
    at = trial.user_attrs.get(record.ENQUEUED_AT)
    return at is None or (time.time() if now is None else now) - float(at) > grace


def run_until_settled(study, run_one: Callable[[], bool], interval: float, echo: Callable[[str], None] = lambda s: None,
                      sleep: Callable[[float], None] = time.sleep, grace: float = pruning.GRACE_PERIOD_S) -> int:
    """After a worker's share: run the study's WAITING trials one by one (``run_one()``, False when the worker
    must stop, e.g. the budget is spent) when they are all enqueued again (a dead or interrupted worker's), or,
    once no trial runs, when they have waited for ``grace`` seconds (left over by a worker that died before it
    took them); while the study has RUNNING trials of other workers, wait ``interval`` s and look again for
    stale ones. Returns the number of trials run."""
    from optuna.trial import TrialState

    ran, said = 0, set()
    while True:
        fail_stale_trials(study, echo)
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        # a queued trial of a command's plan (no "resumes") may be a live worker's next one (it may still be
        # starting): taking it would make that worker sample one more setting
        if waiting and all(record.RESUMES in t.user_attrs or (not running and left_over(t, grace)) for t in waiting):
            ran += 1
            if not run_one():
                return ran
            continue
        if not running and not waiting:
            return ran
        numbers = {t.number for t in running}
        if running and not numbers <= said:
            said |= numbers
            echo(f"waiting for {len(running)} trial(s) running on other workers ("
                 + ", ".join(f"trial {t.number} on {t.user_attrs.get(record.HOST, '?')}" for t in running)
                 + ") to take over any that falls silent; Ctrl-C stops waiting, nothing is lost")
        sleep(interval)
