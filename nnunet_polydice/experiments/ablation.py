"""Ablation sweeps: which nnU-Net trainings a (K, epsilon) grid needs, and in what state each one is.

The library side of ``nnunet-polydice sweep``. No argparse and no printing: messages go through an
``echo`` callable and the runner is a parameter, so that tests can drive everything without nnU-Net.

A sweep is a list of trainer names (a Poly family x K x epsilon grid made with
:func:`nnunet_polydice.integration.naming.trainer_name`, baselines and extra names, all validated by
:func:`nnunet_polydice.integration.naming.parse_trainer_name` before anything runs) times a list of folds. For each
(trainer, fold) the state is read from nnU-Net's results folder
``$nnUNet_results/<DatasetXXX_Name>/<trainer>__<plans>__<configuration>/fold_<f>/``.

The state of each (trainer, fold) and what is done about it is the rule of
:mod:`nnunet_polydice.experiments.runs`, which ``compare`` and ``tune`` share.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_polydice.experiments import checks
from nnunet_polydice.experiments.runs import STATES, fold_state, fold_status
from nnunet_polydice.integration import lookup
from nnunet_polydice.integration.locate import nnunet_command, with_trainers_folder
from nnunet_polydice.integration.naming import (
    FAMILIES,
    is_class_name,
    parse_trainer_name,
    schedule_suffix,
    seed_suffix,
    setting_and_seed,
    split_schedule,
    split_seed,
    trainer_name,
)
from nnunet_polydice.loss import settings

__all__ = [
    "DEFAULT_FAMILIES",
    "DEFAULT_BASELINES",
    "DEFAULT_FOLDS",
    "STATES",
    "Job",
    "parse_schedule",
    "with_schedule",
    "validate_trainer_name",
    "sweep_trainers",
    "check_trainers_found",
    "parse_folds",
    "resolve_dataset_name",
    "results_root",
    "check_plans",
    "split_fold_count",
    "check_folds",
    "fold_folder",
    "fold_state",
    "train_command",
    "plan_jobs",
    "extTrainer_export",
    "shell_lines",
    "run_jobs",
    "LEFT_ALONE",
    "count_jobs",
]

#: Poly families swept when none are given.
DEFAULT_FAMILIES = ("nnUNetTrainerPolyDice", "nnUNetTrainerPolyDiceCE")
#: Baselines trained beside the grid when none are given: nnU-Net's CE+Dice (the reference of
#: ``nnunet-polydice compare``), nnU-Net's Dice-only trainer and the two Tversky baselines.
DEFAULT_BASELINES = ("nnUNetTrainer", "nnUNetTrainerDiceLoss", "nnUNetTrainerTversky", "nnUNetTrainerFocalTversky")
#: nnU-Net's five-fold cross-validation.
DEFAULT_FOLDS = ("0", "1", "2", "3", "4")
#: Folds nnU-Net's own splits_final.json has (it writes one with 5 folds at the first training).
NNUNET_SPLIT_FOLDS = 5
#: States in which a (trainer, fold) is neither finished nor run: the sweep leaves them alone and says why.
LEFT_ALONE = ("foreign", "pruned")
#: States whose reason is printed beside them (the others say it themselves).
_EXPLAINED = (*LEFT_ALONE, "validate", "skip")

TRAIN_EXECUTABLE = "nnUNetv2_train"


@dataclass(frozen=True)
class Job:
    """One (trainer, fold) of a sweep: its state and the command that brings it to 'finished' (None: skip)."""

    trainer: str
    fold: str
    state: str
    command: tuple[str, ...] | None
    reason: str = ""

    @property
    def shell(self) -> str | None:
        return None if self.command is None else shlex.join(self.command)

    def describe(self) -> str:
        """``<trainer> fold <f>: <state>``, with the reason for 'foreign', 'pruned' and 'validate'."""
        text = f"{self.trainer} fold {self.fold}: {self.state}"
        return f"{text} - {self.reason}" if self.state in _EXPLAINED and self.reason else text


def count_jobs(jobs: Sequence[Job]) -> tuple[int, int, int]:
    """``(to run, finished, left alone)``: jobs with a command, 'skip' jobs, 'foreign'/'pruned' jobs."""
    todo = sum(j.command is not None for j in jobs)
    left = sum(j.state in LEFT_ALONE for j in jobs)
    return todo, len(jobs) - todo - left, left


# --------------------------------------------------------------------------------------------- names

def parse_schedule(text: str, option: str = "--schedule") -> tuple[int, int]:
    """``'30x20'`` (or ``'30ep20it'``) -> ``(30, 20)``: E epochs of I training iterations
    (:func:`nnunet_polydice.experiments.checks.check_schedule`, bounds included).

    Raises:
        ValueError: when the text is not two positive integers within the bounds.
    """
    return checks.check_schedule(text, option)


def validate_trainer_name(name: str) -> str:
    """Check a trainer name before anything runs and return it.

    Names of our families must follow the grammar (:func:`parse_trainer_name` raises its sentence);
    any other name (one of nnU-Net's trainers or a user's own) must at least be an ASCII Python class name
    without ``'__'`` (nnU-Net separates trainer, plans and configuration by ``'__'`` in its folder names).
    Whether such a class exists is asked of nnU-Net's lookup by :func:`check_trainers_found`.
    """
    spec = parse_trainer_name(name)
    if spec is None and not is_class_name(name):
        raise ValueError(f"trainer name {name!r} is not a valid nnU-Net trainer name: it must be an ASCII Python "
                         f"class name (letters, digits 0-9, '_') without '__' and with nothing after it, e.g. "
                         f"nnUNetTrainer or nnUNetTrainerPolyDice_K2_eps1.")
    return name


def with_schedule(name: str, epochs: int | None, iterations: int | None) -> str:
    """``name`` with the schedule suffix ``_<E>ep<I>it`` (unchanged when ``epochs`` is None).

    A name that already carries the same suffix is returned as it is; one with another suffix is refused.
    """
    validate_trainer_name(name)
    if epochs is None:
        return name
    suffix = schedule_suffix(epochs, iterations)
    unseeded, seed = split_seed(name)  # the seed suffix comes last: the schedule goes before it
    _, has_epochs, has_iterations = split_schedule(unseeded)
    if has_epochs is not None:
        existing = schedule_suffix(has_epochs, has_iterations)
        if existing == suffix:
            return name
        raise ValueError(f"trainer name {name!r} already has the schedule {existing!r}; it cannot also "
                         f"take {suffix!r}. Give it without a suffix, or leave out the schedule.")
    return validate_trainer_name(unseeded + suffix + seed_suffix(seed))


def with_seed(name: str, seed: int | None) -> str:
    """``name`` with the seed suffix ``_s<N>`` (unchanged when ``seed`` is None or the name has that seed).

    Raises:
        ValueError: when the name already carries another seed.
    """
    rest, has_seed = split_seed(validate_trainer_name(name))
    if seed is None or has_seed == seed:
        return name
    if has_seed is not None:
        raise ValueError(f"trainer name {name!r} already has the seed _s{has_seed}; it cannot also take "
                         f"_s{seed}. Give it without a seed suffix, or leave out --seeds.")
    return validate_trainer_name(rest + seed_suffix(seed))


def _poly_family(name: str):
    fam = FAMILIES.get(name)
    if fam is None or not fam.loss.is_poly:
        poly = [f for f, v in FAMILIES.items() if v.loss.is_poly]
        raise ValueError(f"{name!r} is not a Poly family that takes K and epsilon; allowed: {', '.join(poly)}. "
                         f"Sweep other trainers with --baselines or --trainers.")
    return fam


def sweep_trainers(
    families: Sequence[str] = DEFAULT_FAMILIES,
    K_values: Sequence = (),
    epsilons: Sequence[float] = (),
    *,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    extra: Sequence[str] = (),
    alpha: float | None = None,
    beta: float | None = None,
    schedule: tuple[int, int] | None = None,
    seeds: Sequence[int] = (),
) -> list[str]:
    """The trainer names of a sweep, in order, without duplicates (first occurrence kept).

    Order: for each family, for each K, for each epsilon (the grid, named by :func:`trainer_name`); then
    the baselines; then the extra names. Poly Tversky families take ``alpha``/``beta`` (default
    :data:`settings.TVERSKY_ALPHA` / :data:`settings.TVERSKY_BETA`). ``schedule = (E, I)`` appends
    ``_<E>ep<I>it`` to every name, baselines and extra names included. ``seeds`` (checked by
    :func:`checks.check_seeds`) repeat the whole list once per seed with ``_s<N>`` appended, seeds outer, so
    that a sweep stopped halfway has every setting on the same seeds.

    Raises:
        ValueError: for a family that takes no K, a bad K or epsilon (the sentence of
            :func:`settings.validate_poly`), K without epsilon or the reverse, alpha/beta without a Poly
            Tversky family, a malformed name, or an empty sweep.
    """
    epochs, iterations = schedule if schedule is not None else (None, None)
    K_values, epsilons = list(K_values), list(epsilons)
    families = list(families) if (K_values or epsilons) else []
    if bool(K_values) != bool(epsilons):
        raise ValueError("a grid needs both K and epsilon values (e.g. --K 1 2 inf --epsilon 0 1); "
                         f"got K={K_values or None} and epsilon={epsilons or None}.")
    fams = [_poly_family(f) for f in families]
    tversky = [f for f in fams if "a" in f.params]
    if (alpha is not None or beta is not None) and not tversky:
        raise ValueError("alpha and beta apply only to the Poly Tversky families (nnUNetTrainerPolyTversky, "
                         "nnUNetTrainerPolyTverskyCE); add one of them to the families, or leave alpha/beta out.")
    a = settings.TVERSKY_ALPHA if alpha is None else alpha
    b = settings.TVERSKY_BETA if beta is None else beta
    if tversky:
        a, b = settings.validate_tversky(a, b)

    names: list[str] = []
    for fam in fams:
        for K in K_values:
            for eps in epsilons:
                K_ok, eps_ok, _ = settings.validate_poly(K, eps)  # the sentence, before any name is made
                kw = {"alpha": a, "beta": b} if "a" in fam.params else {}
                names.append(trainer_name(fam.name, K=K_ok, epsilon=eps_ok, epochs=epochs, iterations=iterations,
                                          **kw))
    for name in (*baselines, *extra):
        names.append(with_schedule(name, epochs, iterations))
    for name in names:
        validate_trainer_name(name)
    unique = list(dict.fromkeys(names))
    if not unique:
        raise ValueError("the sweep is empty: give a grid (--K and --epsilon), baselines or --trainers.")
    if seeds:
        unique = list(dict.fromkeys(with_seed(name, seed) for seed in checks.check_seeds(seeds) for name in unique))
    return unique


def check_trainers_found(names: Sequence[str], environ: dict | None = None) -> list[str]:
    """Ask nnU-Net's own lookup for every name, in the environment the sweep's trainings run with
    (:func:`locate.with_trainers_folder` of ``environ``, default os.environ); return the names.

    Raises:
        TrainerNotFound: (a ValueError) naming every trainer nnU-Net would not find, with the closest known name.
    """
    return lookup.check_trainers(names, with_trainers_folder(environ))


def parse_folds(folds: Iterable, option: str = "--folds") -> list[str]:
    """Folds as nnU-Net names them (``'0'``..., or ``'all'``), without duplicates, order kept
    (:func:`nnunet_polydice.experiments.checks.check_folds`)."""
    return checks.check_folds(folds, option)


# ------------------------------------------------------------------------------------ results folder

def resolve_dataset_name(dataset: str | int) -> str:
    """``'1'``, ``1`` or ``'Dataset001_X'`` -> ``'Dataset001_X'``, the way nnU-Net does it
    (``maybe_convert_to_dataset_name``, which looks in nnUNet_raw, nnUNet_preprocessed and nnUNet_results).

    Raises:
        ValueError: when nnU-Net cannot resolve it (its message, on one line).
    """
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return str(maybe_convert_to_dataset_name(dataset))
    except (RuntimeError, AssertionError) as err:
        first = " ".join(str(err).split("\n")[0].split())
        raise ValueError(f"cannot resolve dataset {dataset!r}: {first}") from None


def results_root(environ: dict | None = None) -> Path:
    """``$nnUNet_results`` as a Path.

    Raises:
        ValueError: when the variable is not set.
    """
    env = os.environ if environ is None else environ
    value = env.get("nnUNet_results")
    if not value:
        raise ValueError("nnUNet_results is not set; export it to the folder where nnU-Net keeps its trained "
                         "models (see nnU-Net's documentation/setting_up_paths.md).")
    return Path(value)


def check_plans(dataset_name: str, plans: str, configuration: str, environ: dict | None = None) -> Path:
    """Check, before anything runs, that ``$nnUNet_preprocessed/<dataset>/<plans>.json`` exists and has the
    configuration (otherwise every nnUNetv2_train of the sweep would fail the same way). Returns its path.

    Raises:
        ValueError: when the plans identifier is not a plain name (:func:`checks.check_plans_name`),
            nnUNet_preprocessed is not set or the configuration is not in the plans.
        FileNotFoundError: when the plans file does not exist.
    """
    checks.check_plans_name(plans)
    env = os.environ if environ is None else environ
    pre = env.get("nnUNet_preprocessed")
    if not pre:
        raise ValueError("nnUNet_preprocessed is not set; export it to the folder of nnU-Net's preprocessed data "
                         "(see nnU-Net's documentation/setting_up_paths.md).")
    path = Path(pre) / dataset_name / f"{plans}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: plan and preprocess the dataset first "
                                f"(nnUNetv2_plan_and_preprocess -d <id>), or give the right -p/--plans.")
    try:
        configurations = json.loads(path.read_text(encoding="utf-8")).get("configurations", {})
    except (ValueError, AttributeError):
        raise ValueError(f"{path} is not an nnU-Net plans file (not a JSON object).") from None
    if configuration not in configurations:
        raise ValueError(f"configuration {configuration!r} is not in {path.name}; it has "
                         f"{', '.join(sorted(configurations)) or 'none'}.")
    return path


def split_fold_count(dataset_name: str, environ: dict | None = None) -> int | None:
    """How many folds ``$nnUNet_preprocessed/<dataset>/splits_final.json`` has; None when it does not exist yet
    (nnU-Net then writes a 5-fold one at the first training).

    Raises:
        ValueError: when nnUNet_preprocessed is not set, or the file is not a JSON list (nnU-Net's format).
    """
    path = _splits_path(dataset_name, environ)
    if not path.is_file():
        return None
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        splits = None
    if not isinstance(splits, list):
        raise ValueError(f"{path} is not nnU-Net's splits_final.json (a JSON list with one train/val entry per "
                         f"fold); fix or remove it before training.")
    return len(splits)


def _splits_path(dataset_name: str, environ: dict | None) -> Path:
    pre = (os.environ if environ is None else environ).get("nnUNet_preprocessed")
    if not pre:
        raise ValueError("nnUNet_preprocessed is not set; export it to the folder of nnU-Net's preprocessed data "
                         "(see nnU-Net's documentation/setting_up_paths.md).")
    return Path(pre) / dataset_name / "splits_final.json"


def check_folds(dataset_name: str, folds: Sequence[str], *, allow_random_split: bool = False,
                environ: dict | None = None) -> list[str]:
    """Refuse folds the dataset's splits_final.json does not have (nnU-Net would silently train them on a random
    80:20 split instead), unless ``allow_random_split``; return the folds.

    Without a splits_final.json the folds of the 5-fold split nnU-Net will write (0-4) are allowed; 'all' always.

    Raises:
        ValueError: naming the folds, the split file and its folds, and ``--allow-random-split``.
    """
    count = split_fold_count(dataset_name, environ)
    have = NNUNET_SPLIT_FOLDS if count is None else count
    beyond = [f for f in folds if f != "all" and int(f) >= have]
    if not beyond or allow_random_split:
        return list(folds)
    path = _splits_path(dataset_name, environ)
    if count is None:
        source = f"{path} does not exist yet, and the split nnU-Net writes at the first training has folds 0-4"
    else:
        source = f"{path} has {count} fold{'s' if count != 1 else ''}" + (f" (0-{count - 1})" if count else "")
    raise ValueError(
        f"--folds {' '.join(beyond)}: {source}. nnU-Net would train {'these folds' if len(beyond) > 1 else 'it'} on "
        f"a random 80:20 split of the training cases instead (with slices of one subject, neighbouring slices would "
        f"land in training and validation). Give folds {f'0-{have - 1} or ' if have else ''}'all', or pass "
        f"--allow-random-split to ask for nnU-Net's random split.")


def fold_folder(results: Path, dataset_name: str, trainer: str, plans: str, configuration: str, fold) -> Path:
    """``<results>/<dataset_name>/<trainer>__<plans>__<configuration>/fold_<fold>`` (nnU-Net's layout)."""
    return Path(results) / dataset_name / f"{trainer}__{plans}__{configuration}" / f"fold_{fold}"


def train_command(dataset_name: str, configuration: str, fold, trainer: str, state: str, *,
                  plans: str = "nnUNetPlans", device: str | None = None, npz: bool = False) -> tuple[str, ...] | None:
    """The ``nnUNetv2_train`` argument list for a state (None for 'skip', 'foreign' and 'pruned').

    ``nnUNetv2_train DATASET CONFIGURATION FOLD -tr TRAINER -p PLANS [-device D] [--npz] [--c | --val]``
    """
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES} (got {state!r}).")
    if state in ("skip", "foreign", "pruned"):
        return None
    cmd = [TRAIN_EXECUTABLE, str(dataset_name), str(configuration), str(fold), "-tr", trainer, "-p", plans]
    if device is not None:
        cmd += ["-device", device]
    if npz:
        cmd.append("--npz")
    if state == "continue":
        cmd.append("--c")
    elif state == "validate":
        cmd.append("--val")
    return tuple(cmd)


def checked_jobs(args, trainers: Sequence[str], *, npz: bool = False) -> tuple[Path, str, list[str], list[Job]]:
    """What ``sweep`` and ``noise`` check before anything trains, in order: the folds, the results folder, the
    dataset, its plans and configuration, the folds against splits_final.json, and every trainer name with
    nnU-Net's own lookup; then the jobs. ``args`` carries the training arguments both commands declare
    (dataset, configuration, plans, folds, device, allow_random_split).

    Returns:
        ``(results root, dataset name, folds, jobs)``.
    """
    folds = parse_folds(args.folds)
    results = results_root()
    dataset = resolve_dataset_name(args.dataset)
    check_plans(dataset, args.plans, args.configuration)
    check_folds(dataset, folds, allow_random_split=args.allow_random_split)
    check_trainers_found(trainers)
    jobs = plan_jobs(results, dataset, args.configuration, trainers, folds, plans=args.plans, device=args.device,
                     npz=npz)
    return results, dataset, folds, jobs


def aliases(results: Path, dataset_name: str, trainer: str, plans: str, configuration: str) -> list[str]:
    """Other trainer names with results folders in ``results`` that are the same setting and seed as ``trainer``."""
    dataset_dir = Path(results) / dataset_name
    suffix = f"__{plans}__{configuration}"
    found = sorted(p.name[: -len(suffix)] for p in dataset_dir.glob(f"*{suffix}") if p.is_dir()) \
        if dataset_dir.is_dir() else []
    key = setting_and_seed(trainer)
    return [name for name in found if name != trainer and setting_and_seed(name) == key]


def plan_jobs(results: Path, dataset_name: str, configuration: str, trainers: Sequence[str], folds: Sequence,
              *, plans: str = "nnUNetPlans", device: str | None = None, npz: bool = False) -> list[Job]:
    """One :class:`Job` per (trainer, fold), trainers outer and folds inner, with its state and command.

    A (trainer, fold) with nothing of its own that another name of the same setting and seed (:func:`aliases`)
    has finished is 'skip', with that name as the reason: one setting is trained once, whichever name it had.
    """
    jobs = []
    for trainer in trainers:
        others = aliases(results, dataset_name, trainer, plans, configuration)
        for fold in folds:
            status = fold_status(fold_folder(results, dataset_name, trainer, plans, configuration, fold))
            state, reason = status.state, ("" if status.state == "skip" else status.reason or "")
            if state == "fresh":
                done = [a for a in others
                        if fold_status(fold_folder(results, dataset_name, a, plans, configuration, fold)).finished]
                if done:
                    state, reason = "skip", f"finished as {done[0]} (the same setting)"
            jobs.append(Job(trainer, str(fold), state,
                            train_command(dataset_name, configuration, fold, trainer, state, plans=plans,
                                          device=device, npz=npz), reason))
    return jobs


# ------------------------------------------------------------------------------- printing

def extTrainer_export(environ: dict | None = None) -> str | None:
    """``export nnUNet_extTrainer=...`` when ``environ`` (default os.environ) does not list our trainers
    folder yet, else None."""
    env = dict(os.environ if environ is None else environ)
    wanted = with_trainers_folder(env)
    if wanted.get("nnUNet_extTrainer") == env.get("nnUNet_extTrainer"):
        return None
    return f"export nnUNet_extTrainer={shlex.quote(wanted['nnUNet_extTrainer'])}"


def _left_alone_comments(jobs: Sequence[Job]) -> list[str]:
    """``# <trainer> fold <f>: foreign - <why>; left alone`` for each job the sweep does not touch."""
    return [f"# {j.describe()}; left alone" for j in jobs if j.state in LEFT_ALONE]


def shell_lines(jobs: Sequence[Job], environ: dict | None = None) -> list[str]:
    """The shell commands of the jobs that need one, one per line, the export line first if needed; then a
    comment line for each (trainer, fold) left alone ('foreign', 'pruned') with the reason."""
    lines = [j.shell for j in jobs if j.command is not None]
    export = extTrainer_export(environ)
    return ([export] if export and lines else []) + lines + _left_alone_comments(jobs)


# ------------------------------------------------------------------------------------------- running

def _executable(environ: dict) -> str:
    """nnUNetv2_train on the PATH of ``environ`` or beside this interpreter (:func:`locate.nnunet_command`)."""
    return nnunet_command(TRAIN_EXECUTABLE, environ)


def run_jobs(jobs: Sequence[Job], *, environ: dict | None = None, echo: Callable[[str], None] = lambda s: None,
             runner: Callable[..., int] | None = None) -> list[Job]:
    """Run the jobs one after the other and return those that failed.

    Before each job ``echo`` gets ``[i/n]`` and :meth:`Job.describe`. Commands run in a subprocess
    whose environment is :func:`locate.with_trainers_folder` of ``environ`` (default os.environ; the
    user's variables are kept) and whose output goes straight to this process's stdout/stderr.
    A failed run (non-zero exit) is reported through ``echo`` and the sweep goes on.

    ``runner(argv, env=...) -> exit status`` defaults to :func:`subprocess.call`.
    """
    env = with_trainers_folder(environ)
    exe = TRAIN_EXECUTABLE
    if runner is None:
        runner = subprocess.call
        if any(j.command is not None for j in jobs):
            exe = _executable(env)  # fails before the first job, not after the first skip
    failed = []
    n = len(jobs)
    for i, job in enumerate(jobs, start=1):
        echo(f"[{i}/{n}] {job.describe()}")
        if job.command is None:
            continue
        argv = [exe, *job.command[1:]]
        try:
            rc = runner(argv, env=env)
        except OSError as err:
            rc = None
            echo(f"[{i}/{n}] {job.trainer} fold {job.fold}: could not start ({err})")
        if rc != 0:
            if rc is not None:
                echo(f"[{i}/{n}] {job.trainer} fold {job.fold}: FAILED (exit status {rc})")
            failed.append(job)
    return failed

