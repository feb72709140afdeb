"""The function Optuna calls for each trial of a worker: orchestration only.

A trial asks its setting, reserves its worst-case cost against the budget, asks the runner for each of its
(fold, seed) runs in the instance order (a racing trial: its own instances; a search trial: every fold with the
first seed), and its value is the mean of their validation Dice. What a trial cost is the sum of its runs'
:attr:`~nnunet_polydice.experiments.tune.runner.RunOutcome.epochs` (and of the epochs a failed or interrupted run
trained), computed once, at its end. A Wilcoxon pruner is fed each finished run (or its cases) between runs.
"""

from __future__ import annotations

import os
import socket
import statistics
from collections.abc import Callable

from nnunet_polydice.experiments import racing
from nnunet_polydice.experiments.instance import Instance
from nnunet_polydice.experiments.tune import record, takeover
from nnunet_polydice.experiments.tune.budget import BudgetBusy, budget_lock, remaining_epochs, spent_iterations
from nnunet_polydice.experiments.tune.optuna_api import frozen_of
from nnunet_polydice.experiments.tune.record import FailKind
from nnunet_polydice.experiments.tune.render import live_line
from nnunet_polydice.experiments.tune.runner import RunFailed, RunInterrupted, RunOutcome, RunRequest, epoch_note
from nnunet_polydice.experiments.tune.setup import CASE_STRIDE, TuneSetup, wilcoxon_unit
from nnunet_polydice.experiments.tune.values import case_values

__all__ = ["Objective"]


class Objective:
    """Called by ``study.optimize`` with each trial; ``runner`` runs the trial's (fold, seed) runs."""

    def __init__(self, setup: TuneSetup, study, runner, *, echo: Callable[[str], None] = lambda s: None):
        self.setup, self.study, self.runner, self.echo = setup, study, runner, echo
        self.host = socket.gethostname()
        self.budget_spent = False  # set when a trial was not started for the budget: the worker stops

    def _todo(self, trial) -> list:
        """``(index in the instance order, (fold, seed))`` of what this trial trains."""
        order = self.setup.instances
        keys = record.race_keys(trial)
        chosen = [Instance.parse(k) for k in keys] if keys else \
            racing.search_block(self.setup.folds, self.setup.seeds)
        return [(order.index(i), i) for i in chosen]

    def _reserve(self, trial, setting, todo) -> None:
        """Reserve the trial's worst-case cost (every run it would train, trained to the end; less the epochs of a
        dead worker's trial it continues) under the budget lock, or refuse to start it (:attr:`FailKind.BUDGET`:
        the worker stops) when the budget cannot pay for it."""
        budget = self.setup.budget
        if budget is None:
            return
        inherited = frozen_of(self.study, trial).intermediate_values \
            if trial.user_attrs.get(record.INHERITED_EPOCHS) else {}
        cost = sum(remaining_epochs(index, self.setup.epochs, inherited) * self.setup.iterations
                   for index, inst in todo
                   if not self.runner.is_finished(self.setup.run_name(setting, inst), inst.fold))
        try:
            with budget_lock(self.setup.out_dir):
                spent = spent_iterations(self.study, self.setup.iterations, exclude=trial.number)
                if spent + cost > budget:
                    self.budget_spent = True
                    self.study.stop()
                    raise RunFailed(FailKind.BUDGET, f"not started: it could cost {cost} training iterations and "
                                                     f"{max(0, budget - spent)} of the budget's {budget} are left")
                trial.set_user_attr(record.RESERVED, cost)
        except BudgetBusy as err:
            raise RunFailed(FailKind.BUSY, str(err)) from None

    def __call__(self, trial) -> float:
        import optuna

        setting = self.setup.space.suggest(trial)
        for key, value in ((record.TRAINER, setting.trainer), (record.HOST, self.host), (record.PID, os.getpid())):
            trial.set_user_attr(key, value)
        todo = self._todo(trial)
        racing_trial = record.is_racing(trial)
        outcomes, stopped, abandoned = [], 0, False
        try:
            self._reserve(trial, setting, todo)
            self.echo(live_line(trial.number, setting, "RUNNING", note="started" + (
                f" (race: {', '.join(i.key for _, i in todo)})" if racing_trial else "") + (
                f", continuing trial {record.continues(trial)}" if record.continues(trial) is not None else "")))
            for pos, (index, inst) in enumerate(todo):
                outcome = self._run(trial, setting, index, inst, racing_trial)
                outcomes.append(outcome)
                if outcome.pruned is not None:
                    trial.set_user_attr(record.REASON, outcome.pruned)
                    raise optuna.TrialPruned(outcome.pruned)
                self._record_value(trial, inst, outcome)
                if not racing_trial and pos < len(todo) - 1:
                    self._wilcoxon_report(trial, index, outcome)
        except RunFailed as err:
            stopped, abandoned = err.epochs, err.kind is FailKind.ABANDONED
            if not abandoned:  # an abandoned trial is already failed: it takes no attributes
                record.set_failure(trial, err.kind, err.reason)
            raise
        except KeyboardInterrupt as err:
            stopped = err.epochs if isinstance(err, RunInterrupted) else 0
            record.set_failure(trial, FailKind.INTERRUPTED, "interrupted; the setting is enqueued again")
            takeover.requeue(self.study, frozen_of(self.study, trial), "interrupted", count_retry=False)
            raise
        finally:
            if not abandoned:
                trial.set_user_attr(record.EPOCHS_TRAINED, sum(o.epochs for o in outcomes) + stopped)
                trial.set_user_attr(record.REUSED_FOLDS, [i.key for (_, i), o in zip(todo, outcomes)
                                                          if o.reused])
        return statistics.fmean(o.value for o in outcomes)

    def _run(self, trial, setting, index: int, inst, racing_trial: bool) -> RunOutcome:
        def on_epoch(epoch: int, value) -> None:
            self.echo(live_line(trial.number, setting, "RUNNING", value,
                                note=f"{inst.label} {epoch_note(epoch, self.setup.epochs)}"))

        outcome = self.runner.run(RunRequest(trial, setting, index, inst, racing_trial, on_epoch))
        if outcome.reused:
            self.echo(live_line(trial.number, setting, "RUNNING", outcome.value, note=f"{inst.label} {outcome.note}"))
        return outcome

    def _record_value(self, trial, inst, outcome: RunOutcome) -> None:
        values = {**record.instance_values(trial), inst.key: outcome.value}
        trial.set_user_attr(record.INSTANCE_VALUES, values)

    def _wilcoxon_report(self, trial, index: int, outcome: RunOutcome) -> None:
        """Report a finished run to a Wilcoxon pruner (its value, or each case's) and stop the trial when told."""
        import optuna

        unit = wilcoxon_unit(self.setup.pruner)
        if unit is None:
            return
        if unit == "cases":
            per_case = case_values(outcome.summary, self.setup.label_key) if outcome.summary else {}
            for k, case in enumerate(sorted(per_case)):
                trial.report(per_case[case], index * CASE_STRIDE + k)
        else:
            trial.report(outcome.value, index)
        if trial.should_prune():
            runs = len(record.instance_values(trial))
            reason = f"pruned by the Wilcoxon test over {unit} after {runs} run(s)"
            trial.set_user_attr(record.REASON, reason)
            raise optuna.TrialPruned(reason)
