"""Racing after the search: the contenders get more (fold, seed) runs, seed-major, until the racing rule
(:mod:`~nnunet_polydice.experiments.racing`) tells the leader apart or the budget is spent; its record is kept
in the study.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from nnunet_polydice.experiments import racing
from nnunet_polydice.experiments.tune import record
from nnunet_polydice.experiments.tune.budget import spent_iterations
from nnunet_polydice.experiments.tune.setup import TuneSetup
from nnunet_polydice.experiments.tune.space import Setting
from nnunet_polydice.experiments.tune.study import setting_of
from nnunet_polydice.experiments.tune.values import finished_values

__all__ = ["race_contenders", "race"]


def race_contenders(study, setup: TuneSetup) -> list[Setting]:
    """Settings with a completed search trial, in the space's order, less those an earlier race separated."""
    from optuna.trial import TrialState

    done = {setting_of(setup.space, t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if not record.is_racing(t)}
    left = set(record.race_record(study)["left"])
    return [s for s in setup.space.settings if s in done and s.trainer not in left]


def race(setup: TuneSetup, study, runner, run_trials: Callable[[int], None],
         echo: Callable[[str], None] = lambda s: None) -> racing.RaceResult:
    """Race the contenders (:func:`racing.run_race`): each round enqueues one trial per contender that lacks
    the next instance (user attribute ``race_instances``), ``run_trials(n)`` runs them (this process or its
    workers), and the results folders are read again. The outcome is kept in the study (``polydice_race``)."""
    from optuna.trial import TrialState

    contenders = race_contenders(study, setup)
    by_name = {s.trainer: s for s in setup.space.settings}

    def read(names):
        return finished_values(setup, runner, [by_name[n] for n in names])

    def train(names, inst):
        key = inst.key
        for n in names:
            study.enqueue_trial(by_name[n].params, user_attrs={record.RACE_INSTANCES: [key],
                                                               record.ENQUEUED_AT: time.time()})
        run_trials(len(names))
        values, _ = finished_values(setup, runner, [by_name[n] for n in names], [inst])
        failed = {}
        for n in names:
            if inst in values[n]:
                continue
            mine = [t for t in study.get_trials(deepcopy=False) if record.race_keys(t) == [key]
                    and t.user_attrs.get(record.TRAINER) == n and t.state != TrialState.WAITING]
            failed[n] = (record.reason(mine[-1]) or mine[-1].state.name.lower()) if mine else "not run"
        return failed

    def budget_left():
        return (10**18 if setup.budget is None else setup.budget) - spent_iterations(study, setup.iterations)

    result = racing.run_race([s.trainer for s in contenders], setup.instances, read=read, train=train,
                             budget_left=budget_left, run_cost=setup.run_iterations, echo=echo)
    kept = record.race_record(study)
    left = kept["left"]
    for name, rival in result.left.items():
        left[name] = record.separated_entry(rival, result.last.leader if result.last else "")
    stop = result.last.stop if result.last else None
    record.write_race(study, left, {**kept["failed"], **result.failed}, stop or result.note)
    return result
