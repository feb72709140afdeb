"""A worker: runs its share of the study's trials with a runner, then settles the study (takes over dead workers'
trials); and the local worker pool of a command with ``--workers N``.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Sequence

from nnunet_polydice.experiments.processes import sigterm_as_interrupt
from nnunet_polydice.experiments.tune import record, takeover
from nnunet_polydice.experiments.tune.objective import Objective
from nnunet_polydice.experiments.tune.render import live_line
from nnunet_polydice.experiments.tune.runner import LiveBackend, RunFailed
from nnunet_polydice.experiments.tune.setup import TuneSetup, tune_argv
from nnunet_polydice.experiments.tune.study import make_sampler, setting_of
from nnunet_polydice.integration.locate import self_command

__all__ = ["worker_shares", "run_worker", "worker_processes", "wait_for_workers"]


def worker_shares(n_trials: int, workers: int) -> list[int]:
    """``n_trials`` split over ``workers`` as evenly as possible (the first ones take one more)."""
    if workers < 1:
        raise ValueError(f"--workers must be at least 1 (got {workers}).")
    return [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]


def _after_trial_line(setup: TuneSetup, echo: Callable[[str], None]):
    from optuna.trial import TrialState

    def after_trial(study, frozen) -> None:
        value = frozen.value if frozen.state == TrialState.COMPLETE else None
        if value is None and frozen.intermediate_values:
            value = frozen.intermediate_values[max(frozen.intermediate_values)]
        note = record.reason(frozen)
        if frozen.state == TrialState.COMPLETE:
            reused = record.reused(frozen)
            note = "validation Dice" + (f"; reused fold {', '.join(reused)}" if reused else "")
        echo(live_line(frozen.number, setting_of(setup.space, frozen), frozen.state.name, value, note))

    return after_trial


def run_worker(setup: TuneSetup, n_trials: int, *, sampler: str = "tpe", seed: int | None = 0, worker_index: int = 0,
               environ: dict | None = None, echo: Callable[[str], None] = lambda s: None,
               executable: str | None = None, settle: bool = True, backend=None) -> None:
    """One worker: ``n_trials`` trials of the study (fewer when the queue and space run out), then, with
    ``settle``, the study's WAITING trials and a watch over its RUNNING ones until none is left
    (:func:`takeover.run_until_settled`: a worker that died is taken over). A worker that finds the budget spent
    stops at once. ``backend`` opens the study and makes the runner of its trials (default: a
    :class:`~nnunet_polydice.experiments.tune.runner.LiveBackend` of ``environ`` and ``executable``).

    Ctrl-C / SIGTERM end the current trial (its setting is enqueued again) and propagate.
    """
    backend = LiveBackend(environ, executable) if backend is None else backend
    study, uid = backend.open(setup, heartbeat=True, echo=echo)
    takeover.fail_dead_local_trials(study, echo)
    study.sampler = make_sampler(sampler if sampler != "grid" else "tpe", seed, worker_index,
                                 len(study.get_trials(deepcopy=False)), setup.space)
    objective = Objective(setup, study, backend.runner(setup, study, uid), echo=echo)
    after_trial = _after_trial_line(setup, echo)

    def optimize(n: int) -> bool:
        study.optimize(objective, n_trials=n, catch=(RunFailed,), callbacks=[after_trial], gc_after_trial=False)
        return not objective.budget_spent

    with sigterm_as_interrupt():
        if optimize(n_trials) and settle:
            takeover.run_until_settled(study, lambda: optimize(1), takeover.heartbeat_interval(setup.grace), echo,
                                       grace=setup.grace)


def worker_processes(setup: TuneSetup, shares: Sequence[int], *, sampler: str, seed: int | None,
                     environ: dict | None = None) -> list[subprocess.Popen]:
    """Start one local worker process per share (``tune ... --worker-index i --no-outputs``)."""
    base = tune_argv(setup, sampler=sampler, seed=seed, executable=self_command())
    env = dict(os.environ if environ is None else environ)
    return [subprocess.Popen([*base, "--trials", str(n), "--worker-index", str(i), "--no-outputs"], env=env)
            for i, n in enumerate(shares) if n > 0]


def wait_for_workers(procs: Sequence[subprocess.Popen]) -> None:
    """Wait for local worker processes; SIGTERM to this process is passed on to them (they stop their trainings
    and enqueue them again), and so is Ctrl-C, which reaches them through the terminal: both wait for that, then
    raise KeyboardInterrupt."""

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        for p in procs:
            p.wait()
    except KeyboardInterrupt:
        for p in procs:
            p.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
