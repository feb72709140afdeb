"""An exact replay of a tune against a finished seeded grid: the same decisions, no training.

A seeded run is a function of its name (``..._12ep40it_s1``): it repeats bit for bit, and its first e epochs are
the same whether it is stopped after e or trained to the end. So a finished grid of seeded runs holds everything a
tune over it could see: every run's per-epoch EMA pseudo Dice, at full precision in its ``polydice_curve.json``
(what the pruner sees; :mod:`~nnunet_polydice.integration.curve_file`), and its validation Dice in
``validation/summary.json`` (what the trial and the race see).

:class:`ReplayRunner` answers the tuner's run requests from the grid as a live tune's runner would from an empty
results folder: a run the replay has not "trained" yet is fed to the trial's pruner epoch by epoch
(``trial.report`` at step ``index x epochs + epoch``, ``trial.should_prune()``; a racing run is never pruned); a
pruned run costs the epochs it reported and leaves a virtual pruned marker; a finished one costs the whole
schedule and is then finished for the race, the report and later trials (reused at no cost). Sampling, racing
and the budget run unchanged, on a study in memory of its own (:class:`ReplayBackend`): never the grid's folder,
never a live study's storage. nnU-Net is not started.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from nnunet_polydice.experiments.runs import fold_status
from nnunet_polydice.experiments.tune import record
from nnunet_polydice.experiments.tune.runner import RunOutcome, RunRequest, pruned_earlier_text, pruned_text
from nnunet_polydice.experiments.tune.setup import TuneSetup, wilcoxon_unit
from nnunet_polydice.experiments.tune.values import fold_value
from nnunet_polydice.integration import pruning
from nnunet_polydice.integration.curve_file import CURVE_FILE, read_curve

__all__ = ["GridRun", "check_grid", "ReplayRunner", "ReplayBackend", "run_replay"]


@dataclass(frozen=True)
class GridRun:
    """One finished run of the grid: its validation summary and its full-precision curve."""

    summary: dict
    curve: dict  # curve_file.read_curve's series


def _missing_command(setup: TuneSetup, missing: list) -> str:
    """The ``sweep --seeds`` command that would train the missing runs into the grid."""
    settings = sorted({trainer for trainer, _ in missing})
    folds = sorted({inst.fold for _, inst in missing}, key=setup.folds.index)
    seeds = sorted({inst.seed for _, inst in missing})
    argv = ["nnunet-polydice", "sweep", setup.dataset, setup.configuration, "--trainers", *settings,
            "--folds", *folds, "--seeds", *map(str, seeds), *(["-p", setup.plans] if setup.plans != "nnUNetPlans"
                                                              else [])]
    return f"nnUNet_results={shlex.quote(str(setup.replay))} " + shlex.join(argv)


def check_grid(setup: TuneSetup) -> dict:
    """Read every run the space needs from the grid: ``{(run trainer name, fold): GridRun}``.

    Raises:
        ValueError: for an unseeded setup (unseeded runs do not repeat, so they do not replay), or a grid without
            some of the runs (each not finished, or without its curve file, or with a curve of another schedule):
            the first of them, how many, and the ``sweep --seeds`` command that would train them.
    """
    if not setup.seeded:
        raise ValueError("--replay needs --seeds: only seeded runs repeat bit for bit, so only they replay "
                         "(train the grid with sweep --seeds, then give the same --seeds here).")
    runs, missing = {}, []
    for s in setup.space.settings:
        for inst in setup.instances:
            trainer = setup.run_name(s, inst)
            folder = setup.fold_folder(trainer, inst.fold)
            status = fold_status(folder)
            why = None
            try:
                curve = read_curve(folder)
            except ValueError as err:
                curve, why = None, str(err)
            if status.state not in ("skip", "foreign") or status.summary is None:
                why = f"not finished ({status.reason})"
            elif curve is None:
                why = why or f"no {CURVE_FILE} (trained before this package recorded curves?)"
            elif curve["epochs"] != setup.epochs:
                why = f"its {CURVE_FILE} holds {curve['epochs']} epochs, not the schedule's {setup.epochs}"
            if why is not None:
                missing.append((s.trainer, inst, f"{folder}: {why}"))
            else:
                runs[(trainer, inst.fold)] = GridRun(status.summary, curve)
    if missing:
        raise ValueError(f"--replay {setup.replay} lacks {len(missing)} of the {len(runs) + len(missing)} runs the "
                         f"search space needs; the first: {missing[0][2]}. Train them with: "
                         f"{_missing_command(setup, [(t, i) for t, i, _ in missing])}")
    return runs


def _signal_at(curve: dict, epoch: int, index: int | None) -> float | None:
    """What a live trainer reports after ``epoch`` (:func:`pruning.epoch_signal` on the curve up to it)."""
    def get_value(key, step=None):
        series = curve[key][:epoch + 1]
        return series if step is None else series[step]

    return pruning.epoch_signal(get_value, index)


@dataclass
class ReplayState:
    """What the replay has "trained" so far: finished runs and pruned runs (with their virtual markers)."""

    finished: set = field(default_factory=set)
    pruned: dict = field(default_factory=dict)  # (trainer, fold) -> {"trial": n, "epoch": e}


class ReplayRunner:
    """The runner of a replay (see the module docstring); ``state`` is shared by every runner of one replay."""

    replay = True

    def __init__(self, setup: TuneSetup, runs: dict, state: ReplayState):
        self.setup, self.runs, self.state = setup, runs, state
        # a --label's entry among dice_per_class_or_region, whose order is that of summary.json's "mean" keys
        # (both follow nnU-Net's label manager)
        first = next(iter(runs.values())).summary if runs else {}
        self.index = None if setup.label_key is None else list(first.get("mean", {})).index(setup.label_key)

    def finished_summary(self, trainer: str, fold: str) -> dict | None:
        return self.runs[(trainer, fold)].summary if (trainer, fold) in self.state.finished else None

    def is_finished(self, trainer: str, fold: str) -> bool:
        return (trainer, fold) in self.state.finished

    def run(self, request: RunRequest) -> RunOutcome:
        setup, inst, trial = self.setup, request.instance, request.trial
        key = (setup.run_name(request.setting, inst), inst.fold)
        run, epochs = self.runs[key], setup.epochs
        if key in self.state.finished:
            return RunOutcome(fold_value(run.summary, setup.label_key), {}, run.summary, 0, reused=True,
                              note="reused (skip)")
        if key in self.state.pruned:
            return RunOutcome(None, {}, None, 0, pruned=pruned_earlier_text(self.state.pruned[key], epochs, inst))
        if wilcoxon_unit(setup.pruner) is not None:  # no curve is reported: the run costs its whole schedule
            self.state.finished.add(key)
            return RunOutcome(fold_value(run.summary, setup.label_key), {}, run.summary, epochs)
        curve = {}
        for epoch in range(epochs):
            value = _signal_at(run.curve, epoch, self.index)
            prune = False
            if value is not None:
                trial.report(float(value), request.index * epochs + epoch)
                prune = not request.racing and bool(trial.should_prune())
            curve[epoch] = value
            request.on_epoch(epoch, value)
            if prune:
                self.state.pruned[key] = {"trial": trial.number, "epoch": epoch}
                return RunOutcome(None, curve, None, len(curve), pruned=pruned_text(epoch, epochs, inst, value))
        self.state.finished.add(key)
        return RunOutcome(fold_value(run.summary, setup.label_key), curve, run.summary, epochs)


class ReplayBackend:
    """The study and runs of one replay: a new in-memory Optuna storage and the grid's runs (checked once, by
    :func:`check_grid`), shared by every worker call of the replay."""

    replay = True

    def __init__(self, setup: TuneSetup, runs: dict | None = None):
        import optuna

        self.setup = setup
        self.runs = check_grid(setup) if runs is None else runs
        self.state = ReplayState()
        self.storage = optuna.storages.InMemoryStorage()

    def open(self, setup: TuneSetup, *, heartbeat: bool = False, echo: Callable[[str], None] = lambda s: None):
        from nnunet_polydice.experiments.tune.study import open_study

        study, uid = open_study(setup, storage=self.storage, echo=echo)
        if record.REPLAY not in study.user_attrs:
            study.set_user_attr(record.REPLAY, str(setup.replay))
        return study, uid

    def load(self, setup: TuneSetup):
        return self.open(setup)[0]

    def runner(self, setup: TuneSetup, study, uid: str) -> ReplayRunner:
        return ReplayRunner(setup, self.runs, self.state)



def run_replay(setup: TuneSetup, trials: int, *, sampler: str = "auto", seed: int | None = 0, runs: dict | None = None,
               echo: Callable[[str], None] = lambda s: None):
    """One replayed tune command, in this process: the plan, the search, the race, as ``tune --replay`` runs them.
    Returns ``(summary, study)``; ``runs`` (from :func:`check_grid`) lets many replays of one grid read it once."""
    from nnunet_polydice.experiments.tune.flow import plan, search_then_race
    from nnunet_polydice.experiments.tune.report import summarize

    backend = ReplayBackend(setup, runs)
    study = backend.load(setup)
    the_plan = plan(setup, study, trials, 1, sampler)
    search_then_race(setup, the_plan, 1, seed, echo=echo, backend=backend)
    return summarize(study, setup, backend.runner(setup, study, ""), the_plan.note), study
