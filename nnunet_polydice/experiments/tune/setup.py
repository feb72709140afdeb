"""What a tune command and its workers agree on (:class:`TuneSetup`), every option checked before anything runs
(:func:`prepare`), and its only round trips: to a worker's argv (:func:`tune_argv`) and to the study's stored
definition (:meth:`TuneSetup.definition`, :func:`setup_of_study`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_polydice.experiments import checks, layout, nnunet_env, racing, sweep
from nnunet_polydice.experiments.instance import Instance
from nnunet_polydice.experiments.outputs import check_out_dir
from nnunet_polydice.experiments.tune import record, takeover
from nnunet_polydice.experiments.tune.space import (
    DEFAULT_EPSILON,
    DEFAULT_K,
    SearchSpace,
    Setting,
    build_space,
    parse_epsilons,
)
from nnunet_polydice.integration import pruning
from nnunet_polydice.integration.naming import parse_number, schedule_suffix

__all__ = ["NNUNET_SCHEDULE", "STORAGE_FILE", "WILCOXON_PRUNERS", "CASE_STRIDE", "TuneSetup", "prepare",
           "DEFAULT_PRUNER", "median_pruner", "make_study_pruner", "wilcoxon_unit", "absolute_storage",
           "default_storage_url",
           "check_storage_for_workers", "default_study_name", "resolve_label", "setup_of_study", "tune_argv",
           "REPLAY_STORAGE", "label_key_of", "grid_environment"]

#: nnU-Net's own schedule (names without ``_<E>ep<I>it``): 1000 epochs of 250 iterations.
NNUNET_SCHEDULE = (1000, 250)
#: The default storage, an Optuna journal file in the dataset's results folder. Not SQLite: Optuna pops a
#: queued trial with a read, then a write, which SQLite does not lock in between, so two workers started
#: together took the same queued trial (seen in this package's two-worker test); the journal's log order
#: decides who owns it. It needs no server and works on network file systems (Slurm).
STORAGE_FILE = "polydice_tune.journal"
#: ``--pruner`` names of Optuna's WilcoxonPruner: over (fold, seed) runs, or over the validation cases.
WILCOXON_PRUNERS = ("wilcoxon-instances", "wilcoxon-cases")
#: Steps of per-case reports: instance index x CASE_STRIDE + the case's index among its fold's sorted cases.
CASE_STRIDE = 1_000_000


#: ``--pruner``'s default: no pruning. 50 replays of the default tune on the shipped tabular grid (8 settings x
#: folds 1, 3 x seeds 0-2 at 12 x 40, ``benchmarks/tune_vs_grid.py``): with :func:`median_pruner` the tune's set
#: held the grid's best setting in 38 % of the tuner seeds at every budget (the best, K=3 eps=1, starts slowly
#: and was pruned), without pruning in 100 % at the default half-grid budget, for 33 % of the grid's iterations
#: instead of 21 %.
DEFAULT_PRUNER = "none"


def median_pruner(epochs: int) -> str:
    """The median pruner we recommend when pruning is wanted (``--pruner median``'s keywords as tested):
    MedianPruner once 3 trials have finished, not before half of a fold's epochs.

    Chosen (as the default, until the replays above) by replaying finished 30 x 40 runs of the embedded Colin27
    data (``benchmarks/tune_pruners.py``):
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

    name, kwargs = pruning.parse_pruner(spec, {**pruning.PRUNERS, **dict.fromkeys(WILCOXON_PRUNERS, "WilcoxonPruner")})
    if name not in WILCOXON_PRUNERS:
        return pruning.make_pruner(spec, max_resource)
    texts = [f"{k}={v!r}" for k, v in kwargs.items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
    if texts:
        raise ValueError(f"--pruner {spec!r}: WilcoxonPruner takes numbers, not {', '.join(texts)}.")
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
    keys = {v: k for k, v in layout.label_names(dataset_json).items() if k != "0"}  # summary.json has no background
    if name not in keys:
        raise ValueError(f"--label {name!r} is not a label of this dataset; its labels: "
                         f"{', '.join(keys) or 'none'}.")
    return keys[name]


#: The ``storage`` of a replay's setup: its study lives in memory, in the replaying process only.
REPLAY_STORAGE = "memory (a replay's own study)"


def label_key_of(label: str, ds_json: Path) -> str:
    """The summary.json key of ``--label`` from the data set's ``dataset.json`` (:func:`resolve_label`).

    Raises:
        ValueError: for a label the data set lacks, or a dataset.json that cannot be read.
    """
    try:
        return resolve_label(label, json.loads(ds_json.read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        if isinstance(err, ValueError) and str(err).startswith("--label"):
            raise
        raise ValueError(f"--label needs {ds_json}, which cannot be read ({err}).") from None


def _live_environment(dataset, configuration: str, plans: str, folds, allow_random_split: bool, env: dict):
    """``(results folder, dataset name, folds, dataset.json)`` of a live tune, checked against nnU-Net's folders:
    the plans and configuration, the folds against splits_final.json."""
    results_dir = nnunet_env.results_root(env)
    name = nnunet_env.resolve_dataset_name(dataset)
    plans_path = nnunet_env.check_plans(name, plans, configuration, env)
    split_folds = nnunet_env.check_folds(name, sweep.parse_folds(folds) if folds else ["0"],
                                       allow_random_split=allow_random_split, environ=env)
    return results_dir, name, split_folds, plans_path.parent / "dataset.json"


def grid_environment(grid, dataset, configuration: str, plans: str, folds):
    """``(grid, dataset name, folds, dataset.json)`` of a replay: the data set is a ``Dataset<ID>_<name>`` folder of
    the grid (an nnU-Net results folder; nnU-Net's own folders are not needed), and its dataset.json is the one
    nnU-Net copied into any of its ``<trainer>__<plans>__<configuration>`` folders. Whether the grid holds every
    run the space needs is checked by :func:`~nnunet_polydice.experiments.tune.replay.check_grid`.

    Raises:
        ValueError: for a grid that is not a folder, a data set it does not hold, or no trainer folder of the
            plans and configuration.
    """
    grid = Path(grid).expanduser().absolute()
    if not grid.is_dir():
        raise ValueError(f"--replay {grid}: not a folder (give an nnU-Net results folder of finished seeded runs).")
    text = str(dataset).strip()
    found = [d for d in sorted(grid.iterdir()) if d.is_dir() and d.name.startswith("Dataset") and
             (d.name == text or (text.isascii() and text.isdigit() and d.name[7:10] == f"{int(text):03d}"
                                 and d.name[10:11] == "_"))]
    if not found:
        have = ", ".join(d.name for d in sorted(grid.glob("Dataset*")) if d.is_dir()) or "none"
        raise ValueError(f"--replay {grid} holds no data set {text!r} (data sets there: {have}).")
    name = found[0].name
    suffix = layout.trainer_folder_name("", plans, configuration)
    jsons = sorted(found[0].glob(f"*{suffix}/dataset.json"))
    if not jsons:
        raise ValueError(f"--replay {grid}: {name} has no trainer folder of plans {plans!r} and configuration "
                         f"{configuration!r} with nnU-Net's dataset.json (folders '<trainer>{suffix}').")
    split_folds = sweep.parse_folds(folds) if folds else ["0"]
    return grid, name, split_folds, jsons[0]


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
    replay: Path | None = None  # the grid of finished seeded runs a replay reads (then ``results`` is that grid)

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
        return sweep.with_seed(setting.trainer, Instance.of(instance).seed)

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
        return layout.fold_folder(self.results, self.dataset, trainer, self.plans, self.configuration, fold)


def prepare(dataset, configuration: str, *, families: Sequence[str] = sweep.DEFAULT_FAMILIES,
            K_values: Sequence = DEFAULT_K, epsilons: Sequence = DEFAULT_EPSILON, folds: Sequence | None = None,
            schedule: str | None = None, plans: str = "nnUNetPlans", label: str | None = None,
            storage: str | None = None, study: str | None = None, out_dir=None, pruner: str | None = None,
            device: str | None = None, allow_random_split: bool = False, lookup: bool = True,
            environ: dict | None = None, seeds: Sequence | None = None, budget: str | None = None,
            race: bool | None = None, grace=None, replay=None) -> TuneSetup:
    """Check every input and return the :class:`TuneSetup` (nothing is trained, the storage is not opened).

    The checks are ``sweep``'s where they are the same (:mod:`~nnunet_polydice.experiments.nnunet_env`: dataset,
    plans and configuration, folds against splits_final.json, and, with ``lookup``, every trainer name through
    nnU-Net's own lookup).

    Raises:
        ValueError / FileNotFoundError: with a sentence, for an unknown dataset, plans or configuration, an
            empty or invalid space, folds not in the splits, a name nnU-Net would not find, an unknown label,
            a bad pruner or storage URL, or an output folder that cannot be written; ``seeds`` empty or repeated;
        ``budget`` unparsable, 0 or less, above the grid or below one run (:func:`racing.parse_budget`);
        ``race`` asked for with one setting or one seed; ``grace`` not an integer from
        :data:`~takeover.MIN_GRACE_S` to :data:`~takeover.MAX_GRACE_S` seconds.
    """
    env = os.environ if environ is None else environ
    grace = pruning.GRACE_PERIOD_S if grace is None else \
        checks.check_int(grace, "--grace", takeover.MIN_GRACE_S, takeover.MAX_GRACE_S)
    sched = sweep.parse_schedule(schedule) if schedule else None
    seed_list = tuple(checks.check_seeds(seeds)) if seeds is not None else (None,)
    space = build_space(families, K_values, parse_epsilons(epsilons), sched)
    if race and space.size < 2:
        raise ValueError(f"--race needs at least two settings to race; the space has one ({space.settings[0].label})."
                         f" Widen --K or --epsilon, or leave --race out.")
    if race and len(seed_list) < 2:
        raise ValueError("--race needs at least two seeds (--seeds 0 1 2): racing tells settings apart only when "
                         "it sees run-to-run noise, i.e. two seeds or more on every fold.")
    race = bool(race)  # off unless asked for: replays of the shipped grid found it does not pay (docs/tune.md)
    if replay is None:
        results_dir, name, split_folds, ds_json = _live_environment(dataset, configuration, plans, folds,
                                                                    allow_random_split, env)
    else:
        results_dir, name, split_folds, ds_json = grid_environment(replay, dataset, configuration, plans, folds)
    label_key = None if label is None else label_key_of(label, ds_json)
    epochs = sched[0] if sched else NNUNET_SCHEDULE[0]
    iterations = sched[1] if sched else NNUNET_SCHEDULE[1]
    grid = racing.grid_iterations(space.size, len(split_folds), len(seed_list), epochs, iterations)
    run = racing.run_iterations(epochs, iterations)
    budget_its = racing.default_budget(grid, space.size, len(split_folds), run) if budget is None else \
        racing.parse_budget(budget, grid, run)
    pruner = pruner or DEFAULT_PRUNER
    make_study_pruner(pruner, len(split_folds) * epochs)  # its sentence now, not in a trainer
    if replay is not None:
        storage = REPLAY_STORAGE
    elif storage is None:
        storage = default_storage_url(results_dir, name)
        pruning.storage_kind(storage)
    else:
        storage = absolute_storage(checks.check_storage(storage))
    study = checks.check_study_name(study) if study is not None else \
        default_study_name(configuration, plans, sched, split_folds, label)
    given = out_dir is not None
    if given:
        out = checks.check_output_folder(out_dir, "--out").absolute()
    elif replay is not None:  # never inside the grid (it may be read-only, and it is not this replay's)
        out = check_out_dir(Path.cwd() / "polydice_replay" / study, "the output folder")
    else:
        out = check_out_dir(Path(results_dir).resolve() / name / "polydice_tune" / study, "the output folder")
    lookup = lookup and replay is None
    if lookup:
        nnunet_env.check_trainers_found([sweep.with_seed(s.trainer, seed) for seed in seed_list
                                       for s in space.settings], env)
    return TuneSetup(dataset=name, configuration=configuration, plans=plans, folds=tuple(split_folds), space=space,
                     storage=storage, study=study, out_dir=out, pruner=pruner, results=Path(results_dir).resolve(),
                     label=label, label_key=label_key, device=device, out_given=given,
                     allow_random_split=allow_random_split, seeds=seed_list, budget=budget_its, race=race,
                     grace=grace, replay=None if replay is None else Path(results_dir))


def setup_of_study(setup: TuneSetup, study) -> TuneSetup:
    """``setup`` with the space, folds, schedule and label the study was created for (``--status`` reads a
    study without repeating its options).

    Raises:
        ValueError: when the study was not created by tune.
    """
    d = study.user_attrs.get(record.DEFINITION)
    if not isinstance(d, dict):
        raise ValueError(f"study {setup.study!r} was not created by nnunet-polydice tune.")
    epochs, iterations = d["schedule"]
    schedule = (epochs, iterations) if epochs else None
    space = d["space"]
    seeds = tuple(d.get("seeds") or (None,))
    budget = study.user_attrs.get(record.BUDGET, setup.budget)
    return dataclasses.replace(
        setup, folds=tuple(d["folds"]), label=d["label"],
        label_key=setup.label_key if d["label"] == setup.label else None,
        space=build_space(space["family"], space["K"], [parse_number(e) for e in space["epsilon"]], schedule),
        seeds=seeds, budget=budget, race=setup.race if len(seeds) > 1 else False)


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
    if s.seeded:
        argv.append("--race" if s.race else "--no-race")
    if seed is not None:
        argv += ["--seed", str(seed)]
    if s.grace != pruning.GRACE_PERIOD_S:
        argv += ["--grace", str(s.grace)]
    return argv
