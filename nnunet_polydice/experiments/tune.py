"""Tuning K and epsilon with Optuna, pruning on nnU-Net's learning curves: the library of ``nnunet-polydice tune``.

No argparse and no printing: messages go through an ``echo`` callable.

**Space.** Families (Poly families), K values (integers, ``inf``) and epsilon values (a list and/or ranges
``START:STOP:STEP`` with a step of at least 0.25). Every trial suggests three categorical parameters over
the canonical name tokens (``family``, ``K`` = ``'3'``/``'inf'``, ``epsilon`` = ``'0p5'``), so the sampler sees
a finite space, and its setting is the canonical trainer name (``nnUNetTrainerPolyDice_K3_eps0p5_30ep40it``,
made by ``sweep``'s :func:`~nnunet_polydice.experiments.ablation.sweep_trainers`) whose results folder is
nnU-Net's ordinary one.

**A trial**, fold after fold (``--folds``, in the order given), reads the fold folder's state with
:func:`~nnunet_polydice.experiments.runs.fold_status`:

* finished (``skip``; or ``foreign``: a summary copied in): reused, its validation Dice is the fold's value,
  no training;
* ``pruned`` by this study (the marker names it): the trial is pruned at once, nothing trained; pruned
  by another study: the marker is removed and the run continued (``--c``);
* ``validate`` / ``continue`` / ``fresh``: ``nnUNetv2_train`` (``--val`` / ``--c`` / plain) in a subprocess
  whose environment links it to the trial (:mod:`nnunet_polydice.integration.pruning`): after each epoch it
  reports nnU-Net's EMA pseudo-Dice at step ``fold_index * epochs + epoch`` and exits when the pruner says so.

The trial's value is the mean over its folds of nnU-Net's validation Dice (``validation/summary.json``:
``foreground_mean['Dice']``, or ``mean[<label>]['Dice']`` with a label). Step ``fold_index * epochs + epoch``
keeps every fold's epochs apart (Optuna keeps one value per step) and makes a step mean the same fold and
epoch in every trial, which is what the pruners compare.

**Never twice at once.** Before a fold is read or trained, the trial creates ``polydice_tune.lock`` in the
fold folder with ``O_CREAT | O_EXCL`` (host, pid, study, trial inside). A trial that meets a live lock
fails at once (state FAIL, user attribute ``reason``; TPE ignores failed trials) and the worker goes on
with its next trial. A lock is stale when its process is gone on this host or its trial is no longer
running in this study.

**Resuming.** Ctrl-C (and SIGTERM, e.g. Slurm's scancel) stops the training, marks the trial failed and
enqueues the same setting again, so the next run of the command continues it (from nnU-Net's
``checkpoint_latest.pth``). A worker killed outright (SIGKILL, a lost node) is taken over after ``--grace``
seconds without its heartbeat, with every storage: :mod:`~nnunet_polydice.experiments.workers`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from nnunet_polydice.experiments import ablation, checks, racing, results, workers
from nnunet_polydice.experiments.outputs import OwnedFolder, check_out_dir
from nnunet_polydice.experiments.runs import PRUNED_MARKER, SummaryError, fold_status
from nnunet_polydice.experiments.workers import LOCK_NAME, acquire_lock, lock_is_stale
from nnunet_polydice.integration import pruning
from nnunet_polydice.integration.locate import with_trainers_folder
from nnunet_polydice.integration.naming import (
    READY_EPSILON,
    READY_K,
    format_k,
    format_number,
    parse_number,
    parse_trainer_name,
    schedule_suffix,
    setting_and_seed,
)

__all__ = [
    "DEFAULT_K", "DEFAULT_EPSILON", "MIN_EPSILON_STEP", "LOCK_NAME", "STORAGE_FILE", "SAMPLERS", "Setting",
    "SearchSpace", "TuneSetup", "SettingBusy", "TrainingFailed", "parse_epsilons", "epsilon_range", "build_space",
    "default_pruner", "default_storage_url", "epoch_note", "check_outputs_free",
    "check_storage_for_workers", "default_study_name", "resolve_label", "absolute_storage",
    "prepare", "open_study", "load_study", "setup_of_study", "untried_settings", "enqueue_grid", "choose_sampler",
    "make_sampler", "NoRepeatSampler", "WILCOXON_PRUNERS", "make_study_pruner", "case_values", "finished_values",
    "spent_iterations", "race", "race_contenders", "sampler_reason", "SettingRow", "BudgetSpent", "worker_shares",
    "fold_value", "acquire_lock", "lock_is_stale", "Objective", "run_worker",
    "TrialRow", "Summary", "trial_rows", "summarize", "next_commands", "tune_argv", "write_outputs",
]

DEFAULT_K = tuple(format_k(k) for k in READY_K)
DEFAULT_EPSILON = tuple(repr(e) for e in READY_EPSILON)
#: The smallest step of an epsilon range: a finer grid of one continuous parameter is no longer a grid.
MIN_EPSILON_STEP = Decimal("0.25")
#: nnU-Net's own schedule (names without ``_<E>ep<I>it``): 1000 epochs of 250 iterations.
NNUNET_SCHEDULE = (1000, 250)
#: The default storage, an Optuna journal file in the dataset's results folder. Not SQLite: Optuna pops a
#: queued trial with a read, then a write, which SQLite does not lock in between, so two workers started
#: together took the same queued trial (seen in this package's two-worker test); the journal's log order
#: decides who owns it. It needs no server and works on network file systems (Slurm).
STORAGE_FILE = "polydice_tune.journal"
SAMPLERS = ("auto", "grid", "tpe", "random")
#: TPESampler's own default n_startup_trials: its first 10 trials are independent random draws.
TPE_STARTUP = 10
#: ``--pruner`` names of Optuna's WilcoxonPruner: over (fold, seed) runs, or over the validation cases.
WILCOXON_PRUNERS = ("wilcoxon-instances", "wilcoxon-cases")
#: Steps of per-case reports: instance index x CASE_STRIDE + the case's index among its fold's sorted cases.
CASE_STRIDE = 1_000_000
RACE_ATTR = "polydice_race"
BUDGET_ATTR = "polydice_budget"
DEFINITION_ATTR = "polydice_definition"
UID_ATTR = "polydice_uid"


class SettingBusy(Exception):
    """Another live trial holds the lock of a (setting, fold)."""


class TrainingFailed(Exception):
    """nnUNetv2_train failed, or its result cannot be read."""


class BudgetSpent(Exception):
    """The trial's worst-case cost is more than the budget left: it is not started."""


# ------------------------------------------------------------------------------------------- space

def epsilon_range(text: str) -> list[float]:
    """``'0:2:0.5'`` -> ``[0.0, 0.5, 1.0, 1.5, 2.0]`` (both ends included, decimal steps without drift).

    Raises:
        ValueError: for a malformed range, a bound that is not finite, a step under :data:`MIN_EPSILON_STEP`,
            an empty range or one of more than :data:`~nnunet_polydice.experiments.checks.MAX_RANGE_VALUES`.
    """
    return [float(d) for d in checks.check_range(text, "--epsilon", MIN_EPSILON_STEP)]


def parse_epsilons(texts: Sequence) -> list[float]:
    """Epsilon values from ``--epsilon`` words: numbers and ``START:STOP:STEP`` ranges, in order.

    Raises:
        ValueError: for a word that is neither.
    """
    out: list[float] = []
    for text in texts:
        text = str(text).strip()
        if ":" in text:
            out += epsilon_range(text)
            continue
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"--epsilon {text!r} is not a finite number or a START:STOP:STEP range (e.g. 0.5 or "
                             f"0:2:0.5).")
        out.append(value)
    return out


@dataclass(frozen=True)
class Setting:
    """One point of the space: the three tokens and the canonical trainer name they make."""

    family: str
    K: str
    epsilon: str
    trainer: str

    @property
    def params(self) -> dict:
        return {"family": self.family, "K": self.K, "epsilon": self.epsilon}

    @property
    def label(self) -> str:
        """``K=3 eps=0.5`` for lines and tables."""
        return f"K={self.K} eps={parse_number(self.epsilon):g}"


@dataclass(frozen=True)
class SearchSpace:
    """Families x K tokens x epsilon tokens (orders as given), with the trainer name of every point."""

    families: tuple[str, ...]
    K: tuple[str, ...]
    epsilon: tuple[str, ...]
    settings: tuple[Setting, ...]
    epochs: int | None = None
    iterations: int | None = None

    @property
    def size(self) -> int:
        return len(self.settings)

    def grid(self) -> dict:
        """``{'family': [...], 'K': [...], 'epsilon': [...]}``: the categorical choices."""
        return {"family": list(self.families), "K": list(self.K), "epsilon": list(self.epsilon)}

    def setting(self, family: str, K: str, epsilon: str) -> Setting:
        """The setting of three tokens.

        Raises:
            KeyError: when they are not a point of the space.
        """
        for s in self.settings:
            if (s.family, s.K, s.epsilon) == (family, K, epsilon):
                return s
        raise KeyError(f"{family} K={K} epsilon={epsilon} is not in the space")

    def by_trainer(self, trainer: str) -> Setting | None:
        return next((s for s in self.settings if s.trainer == trainer), None)

    def suggest(self, trial) -> Setting:
        """Ask ``trial`` for the three categorical parameters; the setting they name."""
        family = trial.suggest_categorical("family", list(self.families))
        K = trial.suggest_categorical("K", list(self.K))
        epsilon = trial.suggest_categorical("epsilon", list(self.epsilon))
        return self.setting(family, K, epsilon)


def build_space(families: Sequence[str], K_values: Sequence, epsilons: Sequence[float],
                schedule: tuple[int, int] | None = None) -> SearchSpace:
    """The space of ``families x K x epsilon``, every name made and checked by ``sweep``'s
    :func:`ablation.sweep_trainers` (Poly families only, K and epsilon validated with their sentences).

    Values that name the same setting (``1`` and ``1.0``) are one token.

    Raises:
        ValueError: for an empty list, a family that takes no K, or a disallowed K or epsilon.
    """
    for option, values in (("--families", families), ("--K", K_values), ("--epsilon", epsilons)):
        if not list(values):
            raise ValueError(f"the search space is empty: {option} has no values.")
    fams, K_tokens, eps_tokens, settings = [], [], [], []
    for fam in dict.fromkeys(families):
        for K in K_values:
            for eps in epsilons:
                name = ablation.sweep_trainers([fam], [K], [eps], baselines=(), schedule=schedule)[0]
                spec = parse_trainer_name(name)
                k_tok, e_tok = format_k(spec.K), format_number(spec.epsilon)
                for seq, tok in ((fams, fam), (K_tokens, k_tok), (eps_tokens, e_tok)):
                    if tok not in seq:
                        seq.append(tok)
                if all(s.trainer != name for s in settings):
                    settings.append(Setting(fam, k_tok, e_tok, name))
    epochs, iterations = schedule if schedule is not None else (None, None)
    return SearchSpace(tuple(fams), tuple(K_tokens), tuple(eps_tokens), tuple(settings), epochs, iterations)


# ------------------------------------------------------------------------------------------- setup

def default_pruner(epochs: int) -> str:
    """``--pruner``'s default: MedianPruner once 3 trials have finished, not before half of a fold's epochs.

    Chosen by replaying finished 30 x 40 runs of the embedded Colin27 data (``benchmarks/tune_pruners.py``):
    their EMA pseudo-Dice ranks the settings poorly in the first epochs (Spearman 0.1 over epochs 1-3 against
    the final validation Dice, 0.4 at epoch 10, 0.7 at epoch 18) and the best setting was behind at epoch 10,
    so every pruner that decides early (successive halving, Hyperband, a median after a third) lost it in
    some arrival orders, while the median after half of the epochs never did.

    ``n_min_trials=3``: the median is taken only over at least three trials that reported at that step, so a
    reused finished run or a racing trial (no curve at the search steps) never stands in for a curve.
    """
    return f"median:n_startup_trials=3,n_warmup_steps={max(1, epochs // 2)},n_min_trials=3"


def make_study_pruner(spec: str, max_resource: int | None = None):
    """The study's pruner: :func:`pruning.make_pruner`, or Optuna's ``WilcoxonPruner`` for
    ``wilcoxon-instances`` / ``wilcoxon-cases`` (``:p_threshold=...,n_startup_steps=...``).

    The Wilcoxon pruners judge a trial on the values the worker reports after each finished run (never
    within a run): its (fold, seed) validation Dice at step = instance index, or each validation case's Dice
    at step = instance index x :data:`CASE_STRIDE` + case index, against the best trial on the same steps
    (one-sided signed-rank test, pruned when p < p_threshold).

    Raises:
        ValueError: for a bad spec.
    """
    import optuna

    name, _, rest = str(spec).strip().partition(":")
    if name.strip().lower() not in WILCOXON_PRUNERS:
        return pruning.make_pruner(spec, max_resource)
    kwargs = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in ("p_threshold", "n_startup_steps"):
            raise ValueError(f"--pruner {spec!r}: {item!r} is not one of WilcoxonPruner's keywords "
                             f"p_threshold=P, n_startup_steps=N.")
        try:
            kwargs[key] = float(value) if key == "p_threshold" else int(value)
        except ValueError:
            raise ValueError(f"--pruner {spec!r}: {key} takes a number, not {value.strip()!r}.") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.pruners.WilcoxonPruner(**kwargs)
    except ValueError as err:
        raise ValueError(f"--pruner {spec!r}: WilcoxonPruner refuses these values: {err}") from None


def wilcoxon_unit(spec: str) -> str | None:
    """``'instances'`` or ``'cases'`` for a Wilcoxon ``--pruner``, None for a learning-curve pruner."""
    name = str(spec).strip().partition(":")[0].strip().lower()
    return name.split("-", 1)[1] if name in WILCOXON_PRUNERS else None


def absolute_storage(url: str) -> str:
    """A journal or SQLite URL with a relative file made absolute (``journal://t.log`` -> ``journal:///cwd/t.log``),
    so that workers started elsewhere (a Slurm job, another shell) open the same file; other URLs as given."""
    kind = pruning.storage_kind(url)
    if kind == "journal":
        path = pruning.journal_path(url)
        return url if path.is_absolute() else f"{pruning.JOURNAL_SCHEME}{path.absolute()}"
    if kind == "sqlite":
        scheme, database, query = pruning.sqlite_database(url)
        path = Path(database)
        return url if path.is_absolute() else f"{scheme}:///{path.absolute()}{query}"
    return url


def default_storage_url(results_dir: Path, dataset_name: str) -> str:
    """``journal:///<results>/<dataset>/polydice_tune.journal`` (absolute, so Slurm tasks find it)."""
    return pruning.JOURNAL_SCHEME + str((Path(results_dir) / dataset_name / STORAGE_FILE).resolve())


def check_storage_for_workers(url: str, workers: int, slurm: bool = False) -> None:
    """Refuse SQLite for more than one worker (see :data:`STORAGE_FILE`).

    Raises:
        ValueError: naming the option and the storages that work.
    """
    if pruning.storage_kind(url) == "sqlite" and (workers > 1 or slurm):
        what = "--slurm" if slurm else f"--workers {workers}"
        raise ValueError(f"--storage {url} with {what}: SQLite lets two workers take the same queued trial (Optuna "
                         f"reads, then writes it, and SQLite does not lock it in between); leave --storage out for "
                         f"the journal file in the results folder, or give journal:///path/file or a PostgreSQL or "
                         f"MySQL URL.")


def default_study_name(configuration: str, plans: str, schedule: tuple[int, int] | None, folds: Sequence[str],
                       label: str | None = None) -> str:
    """``<configuration>[_<plans>]_<E>ep<I>it_folds<f-g>[_<label>]`` (``nnunet`` for nnU-Net's schedule)."""
    parts = [configuration] + ([plans] if plans != "nnUNetPlans" else [])
    parts.append(schedule_suffix(*schedule).lstrip("_") if schedule else "nnunet")
    parts.append("folds" + "-".join(folds))
    if label:
        parts.append(label)
    return "_".join(parts)


def resolve_label(name: str, dataset_json: dict) -> str:
    """The summary.json key of a foreground label name of dataset.json (``'2'``, or ``'(1, 2)'`` for a region).

    Raises:
        ValueError: for a name dataset.json does not have, with the names it has.
    """
    keys = {v: k for k, v in results.label_names(dataset_json).items() if k != "0"}  # summary.json has no background
    if name not in keys:
        raise ValueError(f"--label {name!r} is not a label of this dataset; its labels: "
                         f"{', '.join(keys) or 'none'}.")
    return keys[name]


@dataclass(frozen=True)
class TuneSetup:
    """Everything a tune command and its workers agree on, checked before anything runs."""

    dataset: str
    configuration: str
    plans: str
    folds: tuple[str, ...]
    space: SearchSpace
    storage: str
    study: str
    out_dir: Path
    pruner: str
    results: Path
    label: str | None = None
    label_key: str | None = None
    device: str | None = None
    out_given: bool = False
    allow_random_split: bool = False
    seeds: tuple = (None,)
    budget: int | None = None  # training iterations the study may spend in all; None: no limit
    race: bool = False
    grace: int = pruning.GRACE_PERIOD_S  # seconds without a heartbeat after which a worker is taken for dead

    @property
    def seeded(self) -> bool:
        return self.seeds != (None,)

    @property
    def instances(self) -> list:
        """Every (fold, seed) of a setting, seed-major (:func:`racing.instance_order`)."""
        return racing.instance_order(self.folds, self.seeds)

    @property
    def run_iterations(self) -> int:
        return racing.run_iterations(self.epochs, self.iterations)

    @property
    def grid_iterations(self) -> int:
        """The full grid over the requested folds and seeds."""
        return racing.grid_iterations(self.space.size, len(self.folds), len(self.seeds), self.epochs, self.iterations)

    def run_name(self, setting: Setting, instance) -> str:
        """The trainer name of one run: the setting's name, with ``_s<N>`` for a seeded instance."""
        return ablation.with_seed(setting.trainer, instance[1])

    @property
    def epochs(self) -> int:
        return self.space.epochs or NNUNET_SCHEDULE[0]

    @property
    def iterations(self) -> int:
        return self.space.iterations or NNUNET_SCHEDULE[1]

    @property
    def max_resource(self) -> int:
        """Steps of a whole trial: folds x epochs."""
        return len(self.folds) * self.epochs

    def definition(self) -> dict:
        """What makes two runs the same study (stored in the study; a rerun must match it)."""
        return {"dataset": self.dataset, "configuration": self.configuration, "plans": self.plans,
                "folds": list(self.folds), "schedule": [self.space.epochs, self.space.iterations],
                "label": self.label, "space": self.space.grid(),
                **({"seeds": list(self.seeds)} if self.seeded else {})}

    def fold_folder(self, trainer: str, fold: str) -> Path:
        return ablation.fold_folder(self.results, self.dataset, trainer, self.plans, self.configuration, fold)


def prepare(dataset, configuration: str, *, families: Sequence[str] = ablation.DEFAULT_FAMILIES,
            K_values: Sequence = DEFAULT_K, epsilons: Sequence = DEFAULT_EPSILON, folds: Sequence | None = None,
            schedule: str | None = None, plans: str = "nnUNetPlans", label: str | None = None,
            storage: str | None = None, study: str | None = None, out_dir=None, pruner: str | None = None,
            device: str | None = None, allow_random_split: bool = False, lookup: bool = True,
            environ: dict | None = None, seeds: Sequence | None = None, budget: str | None = None,
            race: bool | None = None, grace=None) -> TuneSetup:
    """Check every input and return the :class:`TuneSetup` (nothing is trained, the storage is not opened).

    The checks are ``sweep``'s where they are the same (:mod:`ablation`: dataset, plans and configuration,
    folds against splits_final.json, and, with ``lookup``, every trainer name through nnU-Net's own lookup).

    Raises:
        ValueError / FileNotFoundError: with a sentence, for an unknown dataset, plans or configuration, an
            empty or invalid space, folds not in the splits, a name nnU-Net would not find, an unknown label,
            a bad pruner or storage URL, or an output folder that cannot be written; ``seeds`` empty or repeated;
        ``budget`` unparsable, 0 or less, above the grid or below one run (:func:`racing.parse_budget`);
        ``race`` asked for with one setting or one seed; ``grace`` not an integer from
        :data:`~workers.MIN_GRACE_S` to :data:`~workers.MAX_GRACE_S` seconds.
    """
    env = os.environ if environ is None else environ
    grace = pruning.GRACE_PERIOD_S if grace is None else \
        checks.check_int(grace, "--grace", workers.MIN_GRACE_S, workers.MAX_GRACE_S)
    sched = ablation.parse_schedule(schedule) if schedule else None
    seed_list = tuple(checks.check_seeds(seeds)) if seeds is not None else (None,)
    space = build_space(families, K_values, parse_epsilons(epsilons), sched)
    if race and space.size < 2:
        raise ValueError(f"--race needs at least two settings to race; the space has one ({space.settings[0].label})."
                         f" Widen --K or --epsilon, or leave --race out.")
    if race and len(seed_list) < 2:
        raise ValueError("--race needs at least two seeds (--seeds 0 1 2): racing tells settings apart only when "
                         "it sees run-to-run noise, i.e. two seeds or more on every fold.")
    race = (space.size >= 2 and len(seed_list) >= 2) if race is None else bool(race)
    results_dir = ablation.results_root(env)
    name = ablation.resolve_dataset_name(dataset)
    plans_path = ablation.check_plans(name, plans, configuration, env)
    split_folds = ablation.check_folds(name, ablation.parse_folds(folds) if folds else ["0"],
                                       allow_random_split=allow_random_split, environ=env)
    label_key = None
    if label is not None:
        ds_json = plans_path.parent / "dataset.json"
        try:
            label_key = resolve_label(label, json.loads(ds_json.read_text(encoding="utf-8")))
        except (OSError, ValueError) as err:
            if isinstance(err, ValueError) and str(err).startswith("--label"):
                raise
            raise ValueError(f"--label needs {ds_json}, which cannot be read ({err}).") from None
    epochs = sched[0] if sched else NNUNET_SCHEDULE[0]
    iterations = sched[1] if sched else NNUNET_SCHEDULE[1]
    grid = racing.grid_iterations(space.size, len(split_folds), len(seed_list), epochs, iterations)
    run = racing.run_iterations(epochs, iterations)
    budget_its = racing.default_budget(grid, space.size, len(split_folds), run) if budget is None else \
        racing.parse_budget(budget, grid, run)
    pruner = pruner or default_pruner(epochs)
    make_study_pruner(pruner, len(split_folds) * epochs)  # its sentence now, not in a trainer
    if storage is None:
        storage = default_storage_url(results_dir, name)
        pruning.storage_kind(storage)
    else:
        storage = absolute_storage(checks.check_storage(storage))
    study = checks.check_study_name(study) if study is not None else \
        default_study_name(configuration, plans, sched, split_folds, label)
    given = out_dir is not None
    if given:
        out = checks.check_output_folder(out_dir, "--out").absolute()
    else:
        out = check_out_dir(Path(results_dir).resolve() / name / "polydice_tune" / study, "the output folder")
    if lookup:
        ablation.check_trainers_found([ablation.with_seed(s.trainer, seed) for seed in seed_list
                                       for s in space.settings], env)
    return TuneSetup(dataset=name, configuration=configuration, plans=plans, folds=tuple(split_folds), space=space,
                     storage=storage, study=study, out_dir=out, pruner=pruner, results=Path(results_dir).resolve(),
                     label=label, label_key=label_key, device=device, out_given=given,
                     allow_random_split=allow_random_split, seeds=seed_list, budget=budget_its, race=race,
                     grace=grace)


# ------------------------------------------------------------------------------------------- study

def _quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own lines say what happened to each trial
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def open_study(setup: TuneSetup, *, sampler=None, heartbeat: bool = False, create: bool = True,
               echo: Callable[[str], None] = lambda s: None):
    """Create (or load) the study and check that it was made for the same definition.

    ``heartbeat`` (a worker): its storage sends heartbeats for the worker's running trial and fails, with
    :func:`workers.stale_callback` (which says so through ``echo``), trials whose worker fell silent for
    ``setup.grace`` seconds.

    Returns ``(study, uid)``; ``uid`` tells this study from a namesake in another storage (pruned markers).

    Raises:
        ValueError: when the storage cannot be opened, the study belongs to another tool, or was created
            for another dataset, configuration, folds, schedule, label or space.
    """
    import optuna

    _quiet_optuna()
    if setup.storage == default_storage_url(setup.results, setup.dataset):
        Path(pruning.journal_path(setup.storage)).parent.mkdir(parents=True, exist_ok=True)
    storage = pruning.open_storage(setup.storage, heartbeat=heartbeat, grace=setup.grace,
                                   interval=workers.heartbeat_interval(setup.grace),
                                   on_stale=workers.stale_callback(echo))
    pruner = make_study_pruner(setup.pruner, setup.max_resource)
    if create:
        study = optuna.create_study(storage=storage, study_name=setup.study, direction="maximize",
                                    load_if_exists=True, sampler=sampler, pruner=pruner)
    else:
        study = load_study(setup.storage, setup.study, storage=storage, sampler=sampler, pruner=pruner)
    attrs = study.user_attrs
    wanted = setup.definition()
    if DEFINITION_ATTR not in attrs:
        if study.get_trials(deepcopy=False):
            raise ValueError(f"study {setup.study!r} in {setup.storage} was not created by nnunet-polydice tune; "
                             f"give another --study.")
        study.set_user_attr(DEFINITION_ATTR, wanted)
        study.set_user_attr(UID_ATTR, uuid.uuid4().hex)
    elif attrs[DEFINITION_ATTR] != wanted:
        had = attrs[DEFINITION_ATTR]
        diff = [k for k in wanted if had.get(k) != wanted[k]]
        raise ValueError(f"study {setup.study!r} was created for another {', '.join(diff)} "
                         f"({'; '.join(f'{k}: {had.get(k)}' for k in diff)}); rerun with those options, or give "
                         f"another --study for this one.")
    if create and setup.budget is not None and attrs.get(BUDGET_ATTR) != setup.budget:
        study.set_user_attr(BUDGET_ATTR, setup.budget)  # the budget of the last command, for --status
    return study, study.user_attrs.get(UID_ATTR, "")


def load_study(url: str, name: str, *, storage=None, sampler=None, pruner=None):
    """An existing study.

    Raises:
        ValueError: when the storage has no study of that name (naming those it has).
    """
    import optuna

    _quiet_optuna()
    storage = storage or pruning.open_storage(url)
    names = optuna.get_all_study_names(storage)
    if name not in names:
        raise ValueError(f"{url} has no study {name!r}; studies there: {', '.join(names) or 'none'} "
                         f"(give --study NAME, or the options that make its default name).")
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)


def setup_of_study(setup: TuneSetup, study) -> TuneSetup:
    """``setup`` with the space, folds, schedule and label the study was created for (``--status`` reads a
    study without repeating its options).

    Raises:
        ValueError: when the study was not created by tune.
    """
    import dataclasses

    d = study.user_attrs.get(DEFINITION_ATTR)
    if not isinstance(d, dict):
        raise ValueError(f"study {setup.study!r} was not created by nnunet-polydice tune.")
    epochs, iterations = d["schedule"]
    schedule = (epochs, iterations) if epochs else None
    space = d["space"]
    seeds = tuple(d.get("seeds") or (None,))
    budget = study.user_attrs.get(BUDGET_ATTR, setup.budget)
    return dataclasses.replace(
        setup, folds=tuple(d["folds"]), label=d["label"],
        label_key=setup.label_key if d["label"] == setup.label else None,
        space=build_space(space["family"], space["K"], [parse_number(e) for e in space["epsilon"]], schedule),
        seeds=seeds, budget=budget, race=setup.race if len(seeds) > 1 else False)


def _setting_of(space: SearchSpace, trial) -> Setting | None:
    """The setting of a trial (of a waiting one: its enqueued parameters), None when it has none."""
    params = trial.params or trial.system_attrs.get("fixed_params") or {}
    try:
        return space.setting(params["family"], params["K"], params["epsilon"])
    except KeyError:
        return None


def untried_settings(study, space: SearchSpace) -> list[Setting]:
    """Settings without a COMPLETE, PRUNED or RUNNING trial (WAITING and FAILed ones count as untried)."""
    from optuna.trial import TrialState

    done = {_setting_of(space, t) for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)}
    return [s for s in space.settings if s not in done]


def enqueue_grid(study, space: SearchSpace, seed: int | None, limit: int | None = None) -> list[Setting]:
    """Enqueue untried settings not already waiting, in a seeded random order (at most ``limit`` in all
    waiting, so that racing trials enqueued later are not stuck behind search trials); return them.

    Optuna hands a waiting trial to exactly one worker, so workers never draw the same point, and a later
    command enqueues the rest: random search without replacement.
    """
    import random

    from optuna.trial import TrialState

    waiting = {_setting_of(space, t) for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
    todo = [s for s in untried_settings(study, space) if s not in waiting]
    random.Random(seed).shuffle(todo)
    if limit is not None:
        todo = todo[:max(0, limit - len(waiting))]
    for s in todo:
        study.enqueue_trial(s.params, user_attrs={"enqueued_at": time.time()})  # workers.left_over
    return todo


def choose_sampler(requested: str, n_trials: int, n_untried: int) -> str:
    """``auto`` -> ``grid`` (the untried settings in a seeded random order: brute force when the trials cover
    them, random search without replacement otherwise) when this command's trials cover every untried
    setting or are at most TPE's :data:`TPE_STARTUP` random start-up trials; else ``tpe``."""
    if requested not in SAMPLERS:
        raise ValueError(f"--sampler {requested!r}: allowed: {', '.join(SAMPLERS)}.")
    if requested != "auto":
        return requested
    return "grid" if n_trials >= n_untried or n_trials <= TPE_STARTUP else "tpe"


def sampler_reason(requested: str, chosen: str, n_trials: int, n_untried: int) -> str:
    """Why this sampler, in one sentence for the console and tune.md."""
    if requested != "auto":
        return f"{chosen}: asked for with --sampler"
    if chosen == "grid" and n_trials >= n_untried:
        return (f"grid: {n_trials} trials cover the {n_untried} untried settings, so each is tried once in a seeded "
                f"order (brute force)")
    if chosen == "grid":
        return (f"grid: {n_trials} trials are no more than TPE's {TPE_STARTUP} random start-up trials, so TPE would "
                f"only draw at random, with repeats; a seeded random order of the {n_untried} untried settings "
                f"draws without repeats")
    return (f"tpe: {n_trials} trials over {n_untried} untried settings, more than TPE's {TPE_STARTUP} random "
            f"start-up trials, so its model has trials to learn from; a proposal already tried is replaced by an "
            f"untried setting")


class NoRepeatSampler:
    """A sampler that never proposes a setting with a trial (complete, pruned or running) while untried ones
    remain: TPE's (or random) joint proposal of (family, K, epsilon) when it is untried, else a seeded random
    untried setting. Enqueued trials keep their fixed parameters (Optuna applies them over any sampler).
    """

    def __init__(self, inner, space: SearchSpace, seed: int | None):
        import random

        from optuna.distributions import CategoricalDistribution

        self.inner, self.space, self.rng = inner, space, random.Random(seed)
        self.dists = {k: CategoricalDistribution(v) for k, v in space.grid().items()}

    def __getattr__(self, name):  # reseed_rng, before_trial, after_trial, ...: the inner sampler's
        return getattr(self.inner, name)

    def infer_relative_search_space(self, study, trial):
        return dict(self.dists)

    def sample_relative(self, study, trial, search_space):
        inner_space = self.inner.infer_relative_search_space(study, trial)
        proposal = self.inner.sample_relative(study, trial, inner_space) if inner_space else {}
        untried = untried_settings(study, self.space)
        try:
            proposed = self.space.setting(proposal["family"], proposal["K"], proposal["epsilon"])
        except KeyError:
            proposed = None
        if proposed is not None and (proposed in untried or not untried):
            return dict(proposed.params)
        if not untried:
            return {}
        return dict(self.rng.choice(untried).params)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self.inner.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self.inner.after_trial(study, trial, state, values)


def make_sampler(kind: str, seed: int | None, worker_index: int = 0, n_existing: int = 0,
                 space: SearchSpace | None = None):
    """The worker's Optuna sampler for the trials the queue does not give: TPE (multivariate, constant
    liar so that running trials steer the others away) or random, inside :class:`NoRepeatSampler` when
    ``space`` is given. The seed is shifted per worker and by the trials already in the study, so that two
    workers, or a rerun, do not repeat the same draws."""
    import optuna

    shifted = None if seed is None else int(seed) + 1000 * int(worker_index) + int(n_existing)
    if kind == "random":
        inner = optuna.samplers.RandomSampler(seed=shifted)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inner = optuna.samplers.TPESampler(seed=shifted, multivariate=True, constant_liar=True)
    return inner if space is None else NoRepeatSampler(inner, space, shifted)


def worker_shares(n_trials: int, workers: int) -> list[int]:
    """``n_trials`` split over ``workers`` as evenly as possible (the first ones take one more)."""
    if workers < 1:
        raise ValueError(f"--workers must be at least 1 (got {workers}).")
    return [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]


# ------------------------------------------------------------------------------------------- a trial

def fold_value(summary: dict, label_key: str | None = None) -> float:
    """nnU-Net's validation Dice of a fold: ``foreground_mean['Dice']``, or ``mean[label_key]['Dice']``.

    Raises:
        ValueError: when it is missing or NaN (the label is in neither reference nor prediction).
    """
    try:
        value = summary["foreground_mean"]["Dice"] if label_key is None else summary["mean"][label_key]["Dice"]
    except (KeyError, TypeError):
        raise ValueError(f"validation/summary.json has no Dice for {label_key or 'foreground_mean'}.") from None
    value = math.nan if value is None else float(value)
    if math.isnan(value):
        raise ValueError(f"validation Dice of {label_key or 'the foreground mean'} is NaN (in neither the reference "
                         f"nor the prediction of any validation case).")
    return value


def _stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM (never ignored, unlike SIGINT in background jobs), then kill after 60 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _run_logged(argv: Sequence[str], env: dict, log_path: Path, on_report: Callable[[dict], None]) -> int:
    """Run ``argv``, its output appended to ``log_path``; each report line of the trainer goes to
    ``on_report``. Returns the exit status; on an exception (Ctrl-C) the process is stopped first."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        proc = subprocess.Popen(list(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1)
        try:
            for line in proc.stdout:
                log.write(line)
                at = line.find(pruning.REPORT_PREFIX)
                if at >= 0:
                    try:
                        on_report(json.loads(line[at + len(pruning.REPORT_PREFIX):]))
                    except ValueError:
                        pass
            return proc.wait()
        except BaseException:
            _stop_process(proc)
            raise
        finally:
            proc.stdout.close()


def _read_marker(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class Objective:
    """The function Optuna calls for each trial of a worker (see the module docstring)."""

    def __init__(self, setup: TuneSetup, study, study_uid: str, *, environ: dict | None = None,
                 echo: Callable[[str], None] = lambda s: None, executable: str | None = None):
        self.setup, self.study, self.uid, self.echo = setup, study, study_uid, echo
        self.env = with_trainers_folder(environ)
        self.env.pop(pruning.TRIAL_ENV, None)
        self.executable = executable
        self.host = socket.gethostname()
        self.budget_spent = False  # set when a trial was not started for the budget: the worker stops

    def _exe(self) -> str:
        if self.executable is None:
            self.executable = ablation._executable(self.env)
        return self.executable

    def _trial_running(self, trial_id: int) -> bool:
        from optuna.trial import TrialState

        try:
            return self.study._storage.get_trial(trial_id).state == TrialState.RUNNING
        except KeyError:
            return False

    def _todo(self, trial) -> list:
        """``(index in the instance order, (fold, seed))`` of what this trial trains: a racing trial's own
        instances, else the search block (every fold, first seed)."""
        order = self.setup.instances
        keys = trial.user_attrs.get("race_instances")
        chosen = [racing.parse_instance_key(k) for k in keys] if keys else \
            racing.search_block(self.setup.folds, self.setup.seeds)
        return [(order.index(i), i) for i in chosen]

    def _reserve(self, trial, setting: Setting, todo) -> None:
        """Reserve the trial's worst-case cost (every run it would train, trained to the end; less the epochs
        of a dead worker's trial it continues) under a lock, or refuse to start it (:class:`BudgetSpent`, and the
        worker stops) when the budget cannot pay for it."""
        inherited = self.study._storage.get_trial(trial._trial_id).intermediate_values \
            if trial.user_attrs.get("inherited_epochs") else {}
        cost = sum(remaining_epochs(index, self.setup.epochs, inherited) * self.setup.iterations
                   for index, inst in todo
                   if not fold_status(self.setup.fold_folder(self.setup.run_name(setting, inst), inst[0])).finished)
        budget = self.setup.budget
        if budget is None:
            return
        with _budget_lock(self.setup.out_dir):
            spent = spent_iterations(self.study, self.setup, exclude=trial.number)
            if spent + cost > budget:
                trial.set_user_attr("epochs_trained", 0)
                self.budget_spent = True
                self.study.stop()
                raise self._fail(trial, BudgetSpent, f"not started: it could cost {cost} training iterations and "
                                                     f"{max(0, budget - spent)} of the budget's {budget} are left")
            trial.set_user_attr("reserved", cost)

    def __call__(self, trial) -> float:
        setting = self.setup.space.suggest(trial)
        for key, value in (("trainer", setting.trainer), ("host", self.host), ("pid", os.getpid())):
            trial.set_user_attr(key, value)
        todo = self._todo(trial)
        racing_trial = bool(trial.user_attrs.get("race_instances"))
        self.epochs = 0
        self._reserve(trial, setting, todo)
        self.echo(live_line(trial.number, setting, "RUNNING", note="started" + (
            f" (race: {', '.join(racing.instance_key(i) for _, i in todo)})" if racing_trial else "") + (
            f", continuing trial {trial.user_attrs['resumes']}" if "resumes" in trial.user_attrs else "")))
        values, reused = [], []
        unit = wilcoxon_unit(self.setup.pruner)
        try:
            for pos, (index, inst) in enumerate(todo):
                value, was_reused, summary = self._instance(trial, setting, index, inst, racing_trial)
                values.append(value)
                key = racing.instance_key(inst)
                if was_reused:
                    reused.append(key)
                trial.set_user_attr("instance_values", {**trial.user_attrs.get("instance_values", {}), key: value})
                if unit is not None and not racing_trial and pos < len(todo) - 1:
                    self._wilcoxon_report(trial, index, value, summary, unit)
        except KeyboardInterrupt:
            trial.set_user_attr("reason", "interrupted; the setting is enqueued again")
            workers.requeue(self.study, self.study._storage.get_trial(trial._trial_id), "interrupted",
                            count_retry=False)
            raise
        finally:
            trial.set_user_attr("epochs_trained", self.epochs)
            trial.set_user_attr("reused_folds", reused)
        return statistics.fmean(values)

    def _wilcoxon_report(self, trial, index: int, value: float, summary, unit: str) -> None:
        """Report a finished run to a Wilcoxon pruner (its value, or each case's) and stop the trial when told."""
        import optuna

        if unit == "cases":
            per_case = case_values(summary, self.setup.label_key) if summary else {}
            for k, case in enumerate(sorted(per_case)):
                trial.report(per_case[case], index * CASE_STRIDE + k)
        else:
            trial.report(value, index)
        if trial.should_prune():
            runs = len(trial.user_attrs.get("instance_values", {}))
            reason = f"pruned by the Wilcoxon test over {unit} after {runs} run(s)"
            trial.set_user_attr("reason", reason)
            raise optuna.TrialPruned(reason)

    def _fail(self, trial, exc_type, reason: str):
        trial.set_user_attr("reason", reason)
        return exc_type(reason)

    def _instance(self, trial, setting: Setting, index: int, inst, racing_trial: bool = False):
        """``(validation Dice, reused, summary)`` of one (fold, seed) run of the setting, under its lock."""
        import optuna

        folder = self.setup.fold_folder(self.setup.run_name(setting, inst), inst[0])
        where = _where(inst)
        owner = {"host": self.host, "pid": os.getpid(), "study": self.setup.study, "study_uid": self.uid,
                 "trial": trial.number, "trial_id": trial._trial_id}
        holder = acquire_lock(folder, owner)
        if holder is not None:
            stale = lock_is_stale(holder, self.uid, self._trial_running, self.host, age=workers.lock_age(folder),
                                  grace=self.setup.grace)
            if stale is None:
                raise self._fail(trial, SettingBusy, f"busy: {where} of {setting.trainer} is being trained by "
                                 f"trial {holder.get('trial')} of study {holder.get('study')} "
                                 f"({holder.get('host')}, pid {holder.get('pid')})")
            (folder / LOCK_NAME).unlink(missing_ok=True)
            if acquire_lock(folder, owner) is not None:
                raise self._fail(trial, SettingBusy, f"busy: {where} of {setting.trainer} was taken meanwhile")
        try:
            with workers.LockHeartbeat(folder / LOCK_NAME, workers.heartbeat_interval(self.setup.grace)):
                return self._instance_locked(trial, setting, index, inst, folder, optuna, racing_trial)
        finally:
            (folder / LOCK_NAME).unlink(missing_ok=True)

    def _instance_locked(self, trial, setting, index, inst, folder: Path, optuna, racing_trial: bool):
        fold, where = inst[0], _where(inst)
        trainer = self.setup.run_name(setting, inst)
        status = fold_status(folder)
        state = status.state
        if state in ("skip", "foreign"):
            try:
                if status.summary is None:  # a foreign summary.json that cannot be read
                    raise SummaryError(status.summary_problem)
                value = fold_value(status.summary, self.setup.label_key)
            except (SummaryError, ValueError) as err:
                raise self._fail(trial, TrainingFailed, f"{where}: finished run unusable: {err}") from None
            self.echo(live_line(trial.number, setting, "RUNNING", value, note=f"{where} reused ({state})"))
            return value, True, status.summary
        if state == "pruned":
            marker = _read_marker(folder / PRUNED_MARKER)
            ours = marker.get("study_uid") == self.uid if marker.get("study_uid") else \
                marker.get("study") == self.setup.study
            if ours:
                trial.set_user_attr("reason", f"pruned earlier in trial {marker.get('trial')} (after "
                                              f"{epoch_note(marker.get('epoch', -1), self.setup.epochs)} of {where})")
                raise optuna.TrialPruned(trial.user_attrs.get("reason"))
            (folder / PRUNED_MARKER).unlink()
            state = "continue"
        argv = ablation.train_command(self.setup.dataset, self.setup.configuration, fold, trainer, state,
                                      plans=self.setup.plans, device=self.setup.device)
        curve = wilcoxon_unit(self.setup.pruner) is None
        env = dict(self.env)
        if curve:  # the trainer reports its learning curve; racing runs are never pruned
            link = pruning.TrialLink(storage=self.setup.storage, study=self.setup.study, trial_id=trial._trial_id,
                                     trial_number=trial.number,
                                     pruner="none" if racing_trial else self.setup.pruner,
                                     max_resource=self.setup.max_resource, step_offset=index * self.setup.epochs,
                                     label_key=self.setup.label_key, marker=PRUNED_MARKER, study_uid=self.uid,
                                     worker_pid=os.getpid())
            env[pruning.TRIAL_ENV] = link.to_env()
        suffix = "" if inst[1] is None else f"_s{inst[1]}"
        log = self.setup.out_dir / "logs" / f"trial{trial.number:04d}_fold{fold}{suffix}.log"
        last = {}

        def on_report(report: dict) -> None:
            self.epochs += 1
            last.update(report)
            self.echo(live_line(trial.number, setting, "RUNNING", report.get("value"),
                                note=f"{where} {epoch_note(report['epoch'], self.setup.epochs)}"))

        try:
            rc = _run_logged([self._exe(), *argv[1:]], env, log, on_report)
        finally:
            if not curve:  # no per-epoch reports: count the whole run (a resumed one trains less)
                self.epochs += self.setup.epochs
        if rc == pruning.PRUNED_EXIT_CODE:
            value = last.get("value")
            reason = (f"pruned after {epoch_note(last.get('epoch', -1), self.setup.epochs)} of {where} "
                      f"(value {'n/a' if value is None else format(value, '.4f')})")
            trial.set_user_attr("reason", reason)
            raise optuna.TrialPruned(reason)
        if rc != 0:
            raise self._fail(trial, TrainingFailed, f"nnUNetv2_train exited with status {rc} on {where}; see {log}")
        done = fold_status(folder)
        if not done.finished:
            raise self._fail(trial, TrainingFailed, f"{where} is not finished after nnUNetv2_train "
                                                    f"({done.reason}); see {log}")
        try:
            return fold_value(done.summary, self.setup.label_key), False, done.summary
        except ValueError as err:
            raise self._fail(trial, TrainingFailed, f"{where}: {err}") from None


def remaining_epochs(index: int, epochs: int, reported) -> int:
    """Epochs left of the run at instance ``index`` when the trial already has the steps ``reported`` (step
    ``index * epochs + epoch``: a dead worker's curve, inherited by the trial that continues it)."""
    return epochs - sum(index * epochs <= int(step) < (index + 1) * epochs for step in reported)


def _where(inst) -> str:
    """``'fold 0'`` or ``'fold 0 seed 1'``."""
    return f"fold {inst[0]}" + ("" if inst[1] is None else f" seed {inst[1]}")


@contextlib.contextmanager
def _budget_lock(folder: Path, timeout: float = 600.0, stale_after: float = 120.0):
    """An exclusive lock file (``O_CREAT | O_EXCL``) around reading the spent budget and reserving a trial's
    cost, so that two workers starting at once cannot both take the last of it. A lock older than
    ``stale_after`` seconds is a dead worker's and is removed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".polydice_budget.lock"
    start = time.monotonic()
    while True:
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            break
        except FileExistsError:
            try:
                if time.time() - path.stat().st_mtime > stale_after:
                    path.unlink(missing_ok=True)
                    continue
            except FileNotFoundError:
                continue
            if time.monotonic() - start > timeout:
                raise SettingBusy(f"the budget lock {path} has been held for {timeout:.0f} s") from None
            time.sleep(0.05)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def epoch_note(epoch, epochs: int) -> str:
    """``'epoch 5 of 0-9'``: nnU-Net's 0-based epoch number (as its log prints "Epoch 5") and its range, the one
    convention of every line, table, marker and plot that says when a trial was pruned."""
    return f"epoch {int(epoch)} of 0-{int(epochs) - 1}"


def live_line(number: int, setting: Setting | None, state: str, value: float | None = None, note: str = "") -> str:
    """``trial   3  nnUNetTrainerPolyDice  K=3 eps=0.5    RUNNING   0.6123  fold 0 epoch 4/30``."""
    family = setting.family if setting else "?"
    what = setting.label if setting else ""
    shown = "" if value is None else f"{value:.4f}"
    return f"trial {number:3d}  {family:26s} {what:16s} {state:9s} {shown:7s}  {note}".rstrip()


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_worker(setup: TuneSetup, n_trials: int, *, sampler: str = "tpe", seed: int | None = 0, worker_index: int = 0,
               environ: dict | None = None, echo: Callable[[str], None] = lambda s: None,
               executable: str | None = None, settle: bool = True) -> None:
    """One worker: ``n_trials`` trials of the study (fewer when the queue and space run out), then, with
    ``settle``, the study's WAITING trials and a watch over its RUNNING ones until none is left
    (:func:`workers.run_until_settled`: a worker that died is taken over). A worker that finds the budget spent
    stops at once.

    Ctrl-C / SIGTERM end the current trial as described in the module docstring and propagate.
    """
    from optuna.trial import TrialState

    study, uid = open_study(setup, heartbeat=True, echo=echo)
    workers.fail_dead_local_trials(study, echo)
    study.sampler = make_sampler(sampler if sampler != "grid" else "tpe", seed, worker_index,
                                 len(study.get_trials(deepcopy=False)), setup.space)
    objective = Objective(setup, study, uid, environ=environ, echo=echo, executable=executable)
    def after_trial(study, frozen) -> None:
        setting = _setting_of(setup.space, frozen)
        value = frozen.value if frozen.state == TrialState.COMPLETE else None
        if value is None and frozen.intermediate_values:
            value = frozen.intermediate_values[max(frozen.intermediate_values)]
        note = frozen.user_attrs.get("reason", "")
        if frozen.state == TrialState.COMPLETE:
            reused = frozen.user_attrs.get("reused_folds") or []
            note = "validation Dice" + (f"; reused fold {', '.join(reused)}" if reused else "")
        echo(live_line(frozen.number, setting, frozen.state.name, value, note))

    def optimize(n: int) -> bool:
        study.optimize(objective, n_trials=n, catch=(SettingBusy, TrainingFailed, BudgetSpent),
                       callbacks=[after_trial], gc_after_trial=False)
        return not objective.budget_spent

    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    except ValueError:  # not the main thread
        previous = None
    try:
        if optimize(n_trials) and settle:
            workers.run_until_settled(study, lambda: optimize(1), workers.heartbeat_interval(setup.grace), echo,
                                      grace=setup.grace)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------------------- runs, budget, race

def case_values(summary: dict | None, label_key: str | None = None) -> dict:
    """``{case: Dice}`` of one run's validation/summary.json: the ``--label``'s Dice, or the mean over the
    foreground classes that are defined for the case (NaN classes, absent from reference and prediction,
    left out); cases without any value left out; ``{}`` when the summary has no readable per-case part."""
    try:
        per = results.per_case_values(summary or {})
    except (KeyError, TypeError, ValueError):
        return {}
    out = {}
    for case, classes in per.items():
        if label_key is not None:
            value = classes.get(label_key, (math.nan, None))[0]
        else:
            defined = [v for v, _ in classes.values() if not math.isnan(v)]
            value = statistics.fmean(defined) if defined else math.nan
        if not math.isnan(value):
            out[case] = value
    return out


def finished_values(setup: TuneSetup, settings: Sequence[Setting], instances: Sequence | None = None
                    ) -> tuple[dict, dict]:
    """``({trainer: {instance: Dice}}, {trainer: {instance: {case: Dice}}})`` of the finished runs (nnU-Net's
    results folders, whoever trained them: a trial, ``sweep --seeds``), read at no cost."""
    values, cases = {}, {}
    for s in settings:
        values[s.trainer], cases[s.trainer] = {}, {}
        for inst in setup.instances if instances is None else instances:
            status = fold_status(setup.fold_folder(setup.run_name(s, inst), inst[0]))
            if status.state not in ("skip", "foreign") or status.summary is None:
                continue
            try:
                values[s.trainer][inst] = fold_value(status.summary, setup.label_key)
            except ValueError:
                continue
            cases[s.trainer][inst] = case_values(status.summary, setup.label_key)
    return values, cases


def _trial_cost(t, iterations: int) -> int:
    epochs = t.user_attrs.get("epochs_trained")
    if epochs is not None:
        return int(epochs) * iterations
    # the epochs it reported itself (a trial that continues a dead worker's inherits that one's curve)
    reported = max(0, len(t.intermediate_values) - int(t.user_attrs.get("inherited_epochs", 0)))
    if t.state.name == "RUNNING":  # what it reserved, or what it has reported so far
        return max(int(t.user_attrs.get("reserved", 0)), reported * iterations)
    return reported * iterations  # ended without saying (its worker died), or waiting (0)


def spent_iterations(study, setup: TuneSetup, exclude: int | None = None) -> int:
    """Training iterations of every trial of the study (a running one: what it reserved), ``exclude`` left out."""
    return sum(_trial_cost(t, setup.iterations) for t in study.get_trials(deepcopy=False) if t.number != exclude)


def _race_record(study) -> dict:
    record = study.user_attrs.get(RACE_ATTR)
    return record if isinstance(record, dict) else {}


def race_contenders(study, setup: TuneSetup) -> list[Setting]:
    """Settings with a completed search trial, in the space's order, less those an earlier race separated."""
    from optuna.trial import TrialState

    done = {_setting_of(setup.space, t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if not t.user_attrs.get("race_instances")}
    left = set(_race_record(study).get("left", {}))
    return [s for s in setup.space.settings if s in done and s.trainer not in left]


def race(setup: TuneSetup, study, run_trials: Callable[[int], None],
         echo: Callable[[str], None] = lambda s: None) -> racing.RaceResult:
    """Race the contenders (:func:`racing.run_race`): each round enqueues one trial per contender that lacks
    the next instance (user attribute ``race_instances``), ``run_trials(n)`` runs them (this process or its
    workers), and the results folders are read again. The outcome is kept in the study (``polydice_race``)."""
    from optuna.trial import TrialState

    contenders = race_contenders(study, setup)
    by_name = {s.trainer: s for s in setup.space.settings}

    def read(names):
        return finished_values(setup, [by_name[n] for n in names])

    def train(names, inst):
        key = racing.instance_key(inst)
        for n in names:
            study.enqueue_trial(by_name[n].params, user_attrs={"race_instances": [key], "enqueued_at": time.time()})
        run_trials(len(names))
        values, _ = finished_values(setup, [by_name[n] for n in names], [inst])
        failed = {}
        for n in names:
            if inst in values[n]:
                continue
            mine = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("race_instances") == [key]
                    and t.user_attrs.get("trainer") == n and t.state != TrialState.WAITING]
            failed[n] = mine[-1].user_attrs.get("reason", mine[-1].state.name.lower()) if mine else "not run"
        return failed

    def budget_left():
        return (10**18 if setup.budget is None else setup.budget) - spent_iterations(study, setup)

    result = racing.run_race([s.trainer for s in contenders], setup.instances, read=read, train=train,
                             budget_left=budget_left, run_cost=setup.run_iterations, echo=echo)
    record = _race_record(study)
    left = dict(record.get("left", {}))
    for name, rival in result.left.items():
        left[name] = {"n": rival.n, "difference": rival.difference, "ci": list(rival.ci), "unit": rival.unit,
                      "leader": result.last.leader if result.last else ""}
    stop = result.last.stop if result.last else None
    study.set_user_attr(RACE_ATTR, {"left": left, "failed": {**record.get("failed", {}), **result.failed},
                                    "stop": stop or result.note})
    return result


# ------------------------------------------------------------------------------------------- summary

@dataclass
class TrialRow:
    """One trial as the tables show it."""

    number: int
    state: str
    setting: Setting | None
    value: float | None
    curve: dict = field(default_factory=dict)
    epochs_trained: int = 0
    reused_folds: list = field(default_factory=list)
    reason: str = ""
    instances: list = field(default_factory=list)  # instance keys it trained or reused ('0', '0:s1')
    phase: str = "search"  # or 'race'

    @property
    def trainer(self) -> str:
        return self.setting.trainer if self.setting else ""

    @property
    def last(self) -> tuple[int | None, float | None]:
        """(step, value) of the last report."""
        if not self.curve:
            return None, None
        step = max(self.curve)
        return step, self.curve[step]


def trial_rows(study, space: SearchSpace) -> list[TrialRow]:
    """Every trial of the study, by number (from the storage; fresh intermediate values)."""
    rows = []
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    continued = {t.user_attrs["resumes"]: t for t in trials if "resumes" in t.user_attrs}
    for t in trials:
        epochs = t.user_attrs.get("epochs_trained")
        reason = str(t.user_attrs.get("reason", ""))
        if t.state.name == "FAIL" and not reason:  # its worker died without a word: say what became of it
            later = continued.get(t.number)
            reason = f"{later.user_attrs.get('requeue_reason', 'its worker was lost')}; continued as trial " \
                     f"{later.number}" if later is not None else "its worker was lost; not enqueued again"
        rows.append(TrialRow(number=t.number, state=t.state.name, setting=_setting_of(space, t),
                             value=t.value if t.state.name == "COMPLETE" else None,
                             curve={int(k): float(v) for k, v in t.intermediate_values.items()},
                             epochs_trained=len(t.intermediate_values) if epochs is None else int(epochs),
                             reused_folds=list(t.user_attrs.get("reused_folds") or []),
                             reason=reason,
                             instances=list(t.user_attrs.get("race_instances")
                                            or t.user_attrs.get("instance_values") or []),
                             phase="race" if t.user_attrs.get("race_instances") else "search"))
    return rows


@dataclass
class SettingRow:
    """One setting over its finished (fold, seed) runs, and where the race left it."""

    setting: Setting
    values: dict  # {instance: validation Dice}
    status: str

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values.values()) if self.values else None

    @property
    def seed_sd(self) -> float | None:
        from nnunet_polydice.experiments.statistics import seed_sd

        return seed_sd(self.values) if self.values else None


@dataclass
class Summary:
    """The study's outcome and its cost against the budget and the full grid."""

    setup: TuneSetup
    rows: list
    best: TrialRow | None
    iterations_spent: int
    full_grid_iterations: int
    budget: int | None = None
    sampler_note: str = ""
    look: racing.RaceStep | None = None  # the race now, over the contenders' common instances (seeded studies)
    settings: list = field(default_factory=list)  # SettingRow, seeded studies
    left: dict = field(default_factory=dict)  # trainer -> the record of the look that separated it
    stop: str = ""
    noise: tuple = (None, 0)  # pooled run-to-run sd and its degrees of freedom

    @property
    def reused(self) -> list:
        return [r for r in self.rows if r.reused_folds]

    @property
    def winner(self) -> str | None:
        """The trainer name to use next: the race's leader (seeded) or the best trial."""
        if self.look is not None:
            return self.look.leader
        return self.best.trainer if self.best else None

    def verdict_lines(self) -> list[str]:
        """What was found, with the noise known, in sentences."""
        s, lines = self.setup, []
        sd, dof = self.noise
        if self.look is None:
            if self.best is None:
                lines.append("No completed trial yet.")
            else:
                lines.append(f"Best: {self.best.trainer}  validation Dice {self.best.value:.4f} (trial "
                             f"{self.best.number})")
        else:
            look = self.look
            n, leader = look.n, look.leader
            mean = look.means[leader]
            cis = "; ".join(f"{_short(r.setting)} {r.difference:+.4f} [{r.ci[0]:+.4f}, {r.ci[1]:+.4f}]"
                            for r in look.rivals if r.setting in look.remaining)
            if len(look.remaining) == 1:
                lines.append(f"Winner: {leader}  mean validation Dice {mean:.4f} over {n} (fold, seed) runs, told "
                             f"apart from every other contender" + (f" (separated: {', '.join(map(_short, self.left))})"
                                                                    if self.left else ""))
            else:
                others = [x for x in look.remaining if x != leader]
                default = self.default_among(look.remaining)
                among = f"; the default setting {_short(default)} is among them" if default else ""
                lines.append(f"No single winner: the leader {leader} (mean validation Dice {mean:.4f} over {n} "
                             f"(fold, seed) runs) could not be told apart from {', '.join(map(_short, others))}: any "
                             f"of these{among}.")
                lines.append(f"Leader - rival on the same {n} runs, {racing.LEVEL:.0%} CI"
                             f" ({look.rivals[0].unit if look.rivals else 'instances'}): {cis}")
                if not look.seed_noise_seen:
                    lines.append("These intervals see no run-to-run noise yet (one seed per fold among the common "
                                 "runs): racing needs two seeds on every fold before it separates anything.")
            if self.stop:
                lines.append(f"Race: {_stop_text(self.stop)}.")
        if sd is None:
            lines.append("Noise: none known. Every setting has one run per fold, so a gap between settings may be "
                         "run-to-run noise; give --seeds 0 1 2 to measure it and race the best ones"
                         if not s.seeded else "Noise: none known yet (no setting has two seeds on one fold).")
        else:
            gap = ""
            if self.look is not None and len(self.look.means) > 1:
                ranked = sorted(self.look.means.values(), reverse=True)
                gap = f"; the gap from the leader to the runner-up is {ranked[0] - ranked[1]:.4f}"
            lines.append(f"Noise: run-to-run sd of one setting's validation Dice {sd:.4f} (pooled within setting "
                         f"and fold over seeds, {dof} degrees of freedom){gap}.")
        return lines

    def default_among(self, trainers: Sequence[str]) -> str | None:
        """The trainer of ``trainers`` that is its family's default setting, if any."""
        for name in trainers:
            setting = self.setup.space.by_trainer(name)
            if setting is None:
                continue
            space = self.setup.space
            family_default = ablation.with_schedule(setting.family, space.epochs, space.iterations)
            if setting_and_seed(family_default)[0] == setting_and_seed(name)[0]:
                return name
        return None

    def table(self) -> str:
        """A Markdown table of the trials."""
        lines = ["| trial | state | family | K | epsilon | runs | value | last report (step) | epochs trained "
                 "| reused runs | note |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            step, last = r.last
            s = r.setting
            lines.append(f"| {r.number} | {r.state} | {s.family if s else '?'} | {s.K if s else ''} | "
                         f"{'' if s is None else f'{parse_number(s.epsilon):g}'} | {' '.join(r.instances)} | "
                         f"{'' if r.value is None else f'{r.value:.4f}'} | "
                         f"{'' if last is None else f'{last:.4f} ({step})'} | {r.epochs_trained} | "
                         f"{' '.join(r.reused_folds)} | {r.reason} |")
        return "\n".join(lines)

    def settings_table(self) -> str:
        """A Markdown table of the settings over their (fold, seed) runs."""
        lines = ["| setting | runs | mean Dice | seed sd | status |", "|---|---|---|---|---|"]
        for row in self.settings:
            mean, sd = row.mean, row.seed_sd
            lines.append(f"| {row.setting.trainer} | {len(row.values)} | {'' if mean is None else f'{mean:.4f}'} | "
                         f"{'' if sd is None else f'{sd:.4f}'} | {row.status} |")
        return "\n".join(lines)

    def cost_lines(self) -> list[str]:
        s = self.setup
        share = self.iterations_spent / self.full_grid_iterations if self.full_grid_iterations else 0.0
        seeds = f" x {len(s.seeds)} seeds" if s.seeded else ""
        budget = "" if self.budget is None else \
            f" of a budget of {self.budget} ({self.budget / self.full_grid_iterations:.0%} of the grid)"
        lines = [f"training iterations spent: {self.iterations_spent}{budget} (epochs trained x {s.iterations} "
                 f"iterations), {share:.1%} of the full grid's {self.full_grid_iterations} ({s.space.size} settings "
                 f"x {len(s.folds)} folds{seeds} x {s.epochs} epochs x {s.iterations} iterations)"]
        reused = self.reused
        if reused:
            lines.append("reused finished runs (0 iterations): " + ", ".join(
                f"trial {r.number} {r.trainer} {'fold' if not s.seeded else 'run'} {' '.join(r.reused_folds)}"
                for r in reused))
        if self.sampler_note:
            lines.append(f"sampler {self.sampler_note}")
        return lines

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["trial", "state", "trainer", "family", "K", "epsilon", "value", "last_step", "last_value",
                    "epochs_trained", "reused_folds", "note", "runs", "phase"])
        for r in self.rows:
            step, last = r.last
            s = r.setting
            w.writerow([r.number, r.state, r.trainer, s.family if s else "", s.K if s else "",
                        "" if s is None else repr(parse_number(s.epsilon)), "" if r.value is None else repr(r.value),
                        "" if step is None else step, "" if last is None else repr(last), r.epochs_trained,
                        " ".join(r.reused_folds), r.reason, " ".join(r.instances), r.phase])
        return buf.getvalue()

    def settings_csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["trainer", "runs", "mean", "seed_sd", "status", "values"])
        for row in self.settings:
            w.writerow([row.setting.trainer, len(row.values), "" if row.mean is None else repr(row.mean),
                        "" if row.seed_sd is None else repr(row.seed_sd), row.status,
                        " ".join(f"{racing.instance_key(i)}={v!r}" for i, v in row.values.items())])
        return buf.getvalue()

    def markdown(self, plot_name: str) -> str:
        s = self.setup
        what = f"mean[{s.label_key}] ({s.label})" if s.label else "foreground_mean"
        over = (f"(fold, seed) runs, folds {', '.join(s.folds)} x seeds {' '.join(map(str, s.seeds))} (seed-major)"
                if s.seeded else f"folds {', '.join(s.folds)}")
        parts = [f"# Tuning: {s.dataset}, {s.configuration}, plans {s.plans}, study {s.study}", "",
                 f"Value: mean over {over} of nnU-Net's validation Dice ({what} of validation/summary.json). "
                 f"Pruned with `{s.pruner}`" + (", raced on more seeds while the leader and a rival cannot be told "
                                                 "apart." if s.race else "."), "",
                 *self.verdict_lines(), "", *[f"- {line}" for line in self.cost_lines()], ""]
        if self.settings:
            parts += ["## Settings", "", self.settings_table(), ""]
        parts += ["## Trials", "", self.table(), "", f"![reported values per epoch]({plot_name})", ""]
        if self.winner is not None:
            parts += ["Next:", "", "```", *next_commands(s, self.winner), "```", ""]
        return "\n".join(parts)


def _short(trainer: str) -> str:
    spec = parse_trainer_name(trainer)
    return trainer if spec is None or spec.K is None else f"K={format_k(spec.K)} eps={spec.epsilon:g}"


def _stop_text(stop: str) -> str:
    return {racing.SEPARATED: "stopped: the leader was told apart from every rival",
            racing.EXHAUSTED: "stopped: every (fold, seed) run was used",
            racing.BUDGET: "stopped: the next round of runs would exceed the budget"}.get(stop, stop)


def summarize(study, setup: TuneSetup, sampler_note: str = "") -> Summary:
    """The :class:`Summary` of the study as the storage and the results folders hold it now."""
    rows = trial_rows(study, setup.space)
    complete = [r for r in rows if r.state == "COMPLETE" and r.value is not None and r.phase == "search"]
    best = max(complete, key=lambda r: r.value) if complete else None
    spent = spent_iterations(study, setup)
    summary = Summary(setup, rows, best, spent, setup.grid_iterations, setup.budget, sampler_note)
    if not setup.seeded:
        return summary
    record = _race_record(study)
    summary.left, summary.stop = dict(record.get("left", {})), str(record.get("stop") or "")
    tried = {r.setting for r in rows if r.setting is not None}
    values, cases = finished_values(setup, [s for s in setup.space.settings if s in tried])
    summary.noise = racing.pooled_seed_sd(values)
    contenders = {s.trainer: values[s.trainer] for s in race_contenders(study, setup) if values[s.trainer]}
    if contenders and racing.common_prefix(contenders, setup.instances):
        summary.look = racing.race_step(contenders, setup.instances, cases=cases)
    failed = record.get("failed", {})
    for s in setup.space.settings:
        if s not in tried:
            continue
        look = summary.look
        if look is not None and s.trainer == look.leader:
            status = "winner" if len(look.remaining) == 1 else "leader"
        elif look is not None and s.trainer in look.remaining:
            r = next(r for r in look.rivals if r.setting == s.trainer)
            status = f"not told apart: leader {r.difference:+.4f} [{r.ci[0]:+.4f}, {r.ci[1]:+.4f}] over {r.n} runs"
        elif s.trainer in summary.left:
            r = summary.left[s.trainer]
            status = (f"separated after {r['n']} runs: leader {r['difference']:+.4f} "
                      f"[{r['ci'][0]:+.4f}, {r['ci'][1]:+.4f}]")
        elif look is not None and any(r.setting == s.trainer for r in look.rivals):
            r = next(r for r in look.rivals if r.setting == s.trainer)
            status = f"separated: leader {r.difference:+.4f} [{r.ci[0]:+.4f}, {r.ci[1]:+.4f}] over {r.n} runs"
        elif s.trainer in failed:
            status = f"failed: {failed[s.trainer]}"
        else:
            states = {r.state for r in rows if r.setting == s}
            status = "pruned in the search" if "PRUNED" in states else "no finished search trial"
        summary.settings.append(SettingRow(s, values[s.trainer], status))
    return summary


def next_commands(setup: TuneSetup, trainer: str) -> list[str]:
    """The commands after tuning: train the best setting on all five folds, then predict with it."""
    extra = (["-p", setup.plans] if setup.plans != "nnUNetPlans" else [])
    device = ["--device", setup.device] if setup.device else []
    sweep = ["nnunet-polydice", "sweep", setup.dataset, setup.configuration, "--trainers", trainer,
             "--folds", "0", "1", "2", "3", "4", *extra, *device]
    predict = ["nnUNetv2_predict", "-i", "INPUT_FOLDER", "-o", "OUTPUT_FOLDER", "-d", setup.dataset, "-c",
               setup.configuration, "-tr", trainer, "-p", setup.plans, "-f", "0", "1", "2", "3", "4"]
    if setup.device:
        predict += ["-device", setup.device]
    return [shlex.join(sweep), shlex.join(predict)]


def plot_curves(rows: Sequence[TrialRow], path: Path, setup: TuneSetup) -> None:
    """Each trial's reported values against the step; pruned trials dashed, ending in an x; completed ones
    end in a dot at their validation Dice (one step after their last report); reused runs are a star at
    their validation Dice after the last step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        if not r.curve:
            if r.value is not None:  # reused finished runs: their validation Dice at the end
                ax.plot(setup.max_resource, r.value, "*", ms=10,
                        label=f"{r.number}: {r.setting.label if r.setting else '?'} (reused)")
            continue
        steps = sorted(r.curve)
        ys = [r.curve[s] for s in steps]
        pruned = r.state == "PRUNED"
        (line,) = ax.plot(steps, ys, ls="--" if pruned else "-", lw=1.2,
                          label=f"{r.number}: {r.setting.label if r.setting else '?'} ({r.state.lower()})")
        if pruned:
            ax.plot(steps[-1], ys[-1], "x", color=line.get_color(), ms=9, mew=2)
        elif r.value is not None:
            ax.plot(steps[-1] + 1, r.value, "o", color=line.get_color())
    for k in range(1, len(setup.folds)):
        ax.axvline(k * setup.epochs - 0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("step = fold index x epochs + epoch" if len(setup.folds) > 1 else "epoch")
    ax.set_ylabel(f"Dice{' of ' + setup.label if setup.label else ''}: lines EMA pseudo-Dice (reported), "
                  f"dots and stars validation Dice", fontsize=8)
    ax.set_title(f"{setup.study}: reported values (dashed + x: pruned; dot: validation Dice; star: reused)", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


OUTPUT_FILES = ("tune.md", "tune.csv", "tune_curves.png", "tune_settings.csv")


def check_outputs_free(setup: TuneSetup) -> None:
    """Refuse, before any study is opened or trial run, an output folder with a file of :data:`OUTPUT_FILES`
    that ``tune`` did not write there (:func:`checks.check_files_free`).

    Raises:
        FileExistsError: naming the file.
    """
    checks.check_files_free(setup.out_dir, OUTPUT_FILES, OwnedFolder(setup.out_dir, "tune").owned(), "tune",
                            "--out" if setup.out_given else "the output folder")


def write_outputs(summary: Summary) -> list[Path]:
    """``tune.md``, ``tune.csv`` (trials), ``tune_curves.png`` and ``tune_settings.csv`` (settings over their
    (fold, seed) runs) in the setup's output folder; only files this tool
    wrote there before are overwritten (:class:`~nnunet_polydice.experiments.outputs.OwnedFolder`).

    Raises:
        FileExistsError: when one of them exists and was not written by ``tune``.
    """
    folder = OwnedFolder(summary.setup.out_dir, "tune")
    folder.claim(OUTPUT_FILES)
    out = summary.setup.out_dir
    plot_curves(summary.rows, out / OUTPUT_FILES[2], summary.setup)
    (out / OUTPUT_FILES[1]).write_text(summary.csv_text(), encoding="utf-8")
    (out / OUTPUT_FILES[3]).write_text(summary.settings_csv_text(), encoding="utf-8")
    (out / OUTPUT_FILES[0]).write_text(summary.markdown(OUTPUT_FILES[2]), encoding="utf-8")
    folder.commit(OUTPUT_FILES)
    return [out / f for f in OUTPUT_FILES]


# ------------------------------------------------------------------------------------------- workers

def tune_argv(setup: TuneSetup, *, sampler: str, seed: int | None, executable: Sequence[str] = ("nnunet-polydice",)
              ) -> list[str]:
    """The ``tune`` command line of one worker of this setup (without ``--trials`` and ``--worker-index``)."""
    s = setup
    argv = [*executable, "tune", s.dataset, s.configuration, "--families", *s.space.families, "--K", *s.space.K,
            "--epsilon", *(repr(parse_number(e)) for e in s.space.epsilon), "--folds", *s.folds,
            "-p", s.plans, "--storage", s.storage, "--study", s.study, "--pruner", s.pruner, "--sampler", sampler]
    if s.space.epochs is not None:
        argv += ["--schedule", f"{s.space.epochs}x{s.space.iterations}"]
    if s.label:
        argv += ["--label", s.label]
    if s.device:
        argv += ["--device", s.device]
    if s.out_given:
        argv += ["--out", str(s.out_dir)]
    if s.allow_random_split:
        argv.append("--allow-random-split")
    if s.seeded:
        argv += ["--seeds", *(str(x) for x in s.seeds)]
    if s.budget is not None:
        argv += ["--budget", str(s.budget)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    if s.grace != pruning.GRACE_PERIOD_S:
        argv += ["--grace", str(s.grace)]
    return argv


def worker_processes(setup: TuneSetup, shares: Sequence[int], *, sampler: str, seed: int | None,
                     environ: dict | None = None) -> list[subprocess.Popen]:
    """Start one local worker process per share (``tune ... --worker-index i --no-outputs``)."""
    python = (sys.executable, "-c", "import sys; from nnunet_polydice.cli import main; sys.exit(main(sys.argv[1:]))")
    base = tune_argv(setup, sampler=sampler, seed=seed, executable=python)
    env = dict(os.environ if environ is None else environ)
    return [subprocess.Popen([*base, "--trials", str(n), "--worker-index", str(i), "--no-outputs"], env=env)
            for i, n in enumerate(shares) if n > 0]
