"""One tune command from start to end: plan this command's trials, run the search (this process, or a pool of
local worker processes), race the best settings, and decide the exit status from the trials' stored
:class:`~nnunet_polydice.experiments.tune.record.FailKind` (never from a message's text).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nnunet_polydice.experiments import racing
from nnunet_polydice.experiments.tune.budget import spent_iterations
from nnunet_polydice.experiments.tune.race import race
from nnunet_polydice.experiments.tune.report import Summary
from nnunet_polydice.experiments.tune.setup import TuneSetup
from nnunet_polydice.experiments.tune.study import choose_sampler, enqueue_grid, sampler_reason, untried_settings
from nnunet_polydice.experiments.tune.worker import run_worker, wait_for_workers, worker_processes, worker_shares

__all__ = ["Plan", "plan", "race_line", "run_trials", "search_then_race", "failed_rows", "exit_status"]


@dataclass(frozen=True)
class Plan:
    """What this command runs: ``n_trials`` search trials over ``shares`` (one per worker) with ``sampler``
    (``note``: why), with ``before`` trials already in the study, ``untried`` settings left and ``spent``
    iterations spent so far."""

    n_trials: int
    sampler: str
    note: str
    shares: tuple
    before: int
    untried: int
    spent: int

    def budget_text(self, setup: TuneSetup) -> str:
        return (f"budget {setup.budget} training iterations ({setup.budget / setup.grid_iterations:.0%} of the "
                f"grid's {setup.grid_iterations}), {self.spent} spent")


def plan(setup: TuneSetup, study, trials: int, workers: int, requested_sampler: str) -> Plan:
    """The :class:`Plan` of a command asking for ``trials`` trials on ``workers`` workers (never more trials than
    untried settings, never more workers than trials)."""
    untried = untried_settings(study, setup.space)
    n_trials = min(trials, len(untried))
    sampler = choose_sampler(requested_sampler, n_trials, len(untried))
    note = sampler_reason(requested_sampler, sampler, n_trials, len(untried))
    shares = tuple(n for n in worker_shares(n_trials, workers) if n)
    return Plan(n_trials, sampler, note, shares, len(study.get_trials(deepcopy=False)), len(untried),
                spent_iterations(study, setup.iterations))


def race_line(setup: TuneSetup) -> str:
    """Whether this command races, and why, in one sentence."""
    if setup.race:
        return (f"racing on: after the search, the leader and every setting not yet told apart from it get more "
                f"(fold, seed) runs, seed-major, until a {racing.LEVEL:.0%} CI of leader - rival excludes 0 or the "
                f"budget is spent")
    if not setup.seeded:
        return "racing off: one run per setting and fold (give --seeds 0 1 2 to race)"
    if len(setup.seeds) < 2:
        return "racing off: one seed (give two or more to race)"
    if setup.space.size < 2:
        return "racing off: one setting, nothing to race"
    return "racing off (give --race to race the best settings on more seeds)"


def run_trials(setup: TuneSetup, n_trials: int, workers: int, sampler: str, seed, *,
               echo: Callable[[str], None] = lambda s: None, backend=None) -> None:
    """``n_trials`` trials of the study on this machine: in this process, or on up to ``workers`` processes."""
    shares = [n for n in worker_shares(n_trials, workers) if n]
    if len(shares) == 1:
        run_worker(setup, n_trials, sampler=sampler, seed=seed, worker_index=0, echo=echo, backend=backend)
    elif shares:
        wait_for_workers(worker_processes(setup, shares, sampler=sampler, seed=seed))


def search_then_race(setup: TuneSetup, the_plan: Plan, workers: int, seed, *, echo: Callable[[str], None],
                     backend=None) -> bool:
    """The search (the plan's trials, the grid enqueued first for the ``grid`` sampler), then the race when the
    setup races, on ``backend`` (default: a live one). Returns False when Ctrl-C / SIGTERM interrupted it (running
    trials were enqueued again)."""
    from nnunet_polydice.experiments.tune.runner import LiveBackend

    backend = LiveBackend() if backend is None else backend
    study = backend.load(setup)
    if the_plan.sampler == "grid" and the_plan.n_trials:
        enqueue_grid(study, setup.space, seed, limit=the_plan.n_trials)

    def trials(n: int) -> None:
        run_trials(setup, n, workers, the_plan.sampler, seed, echo=echo, backend=backend)

    try:
        trials(the_plan.n_trials)
        if setup.race:
            study = backend.load(setup)
            race(setup, study, backend.runner(setup, study, ""), trials, echo=echo)
    except KeyboardInterrupt:
        return False
    return True


def failed_rows(summary: Summary, before: int) -> list:
    """The trials from number ``before`` on that count as failures (:func:`record.is_failure`)."""
    return [r for r in summary.rows[before:] if r.failure]


def exit_status(summary: Summary, before: int, completed: bool) -> int:
    """130 when interrupted, 1 when a trial of this command failed, else 0."""
    if not completed:
        return 130
    return 1 if failed_rows(summary, before) else 0
