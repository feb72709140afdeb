"""Ablation sweeps: which nnU-Net trainings a (K, epsilon) grid needs, and in what state each one is.

The library side of ``nnunet-polydice sweep`` (and of ``noise``'s trainings). No argparse and no printing:
messages go through an ``echo`` callable and the runner is a parameter, so that tests can drive everything
without nnU-Net.

A sweep is a list of trainer names (a Poly family x K x epsilon grid made with
:func:`nnunet_polydice.integration.naming.trainer_name`, baselines and extra names, all validated by
:func:`nnunet_polydice.integration.naming.parse_trainer_name` before anything runs) times a list of folds. For each
(trainer, fold) the state is read from its fold folder (:mod:`nnunet_polydice.experiments.layout`) by the rule of
:mod:`nnunet_polydice.experiments.runs`, which ``compare`` and ``tune`` share. nnU-Net's environment (dataset,
plans, splits, the train command) is :mod:`nnunet_polydice.experiments.nnunet_env`'s.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_polydice.experiments import checks
from nnunet_polydice.experiments.layout import find_trainers, fold_folder
from nnunet_polydice.experiments.nnunet_env import (
    TRAIN_EXECUTABLE,
    check_folds,
    check_plans,
    check_trainers_found,
    extTrainer_export,
    resolve_dataset_name,
    results_root,
    train_command,
    train_executable,
    validate_trainer_name,
)
from nnunet_polydice.experiments.runs import fold_status
from nnunet_polydice.integration.locate import with_trainers_folder
from nnunet_polydice.integration.naming import (
    FAMILIES,
    schedule_suffix,
    seed_suffix,
    setting_and_seed,
    split_schedule,
    split_seed,
    trainer_name,
)
from nnunet_polydice.loss import settings

__all__ = ["DEFAULT_FAMILIES", "DEFAULT_BASELINES", "DEFAULT_FOLDS", "LEFT_ALONE", "Job", "Training", "count_jobs",
           "parse_schedule", "with_schedule", "with_seed", "sweep_trainers", "parse_folds", "aliases", "plan_jobs",
           "checked_jobs", "shell_lines", "run_jobs"]

#: Poly families swept when none are given.
DEFAULT_FAMILIES = ("nnUNetTrainerPolyDice", "nnUNetTrainerPolyDiceCE")
#: Baselines trained beside the grid when none are given: nnU-Net's CE+Dice (the reference of
#: ``nnunet-polydice compare``), nnU-Net's Dice-only trainer and the two Tversky baselines.
DEFAULT_BASELINES = ("nnUNetTrainer", "nnUNetTrainerDiceLoss", "nnUNetTrainerTversky", "nnUNetTrainerFocalTversky")
#: nnU-Net's five-fold cross-validation.
DEFAULT_FOLDS = ("0", "1", "2", "3", "4")
#: States in which a (trainer, fold) is neither finished nor run: the sweep leaves them alone and says why.
LEFT_ALONE = ("foreign", "pruned")
#: States whose reason is printed beside them (the others say it themselves).
_EXPLAINED = (*LEFT_ALONE, "validate", "skip")


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


def parse_folds(folds: Iterable, option: str = "--folds") -> list[str]:
    """Folds as nnU-Net names them (``'0'``..., or ``'all'``), without duplicates, order kept
    (:func:`nnunet_polydice.experiments.checks.check_folds`)."""
    return checks.check_folds(folds, option)


# -------------------------------------------------------------------------------------------- jobs

@dataclass(frozen=True)
class Training:
    """What every ``nnUNetv2_train`` of a sweep shares: the dataset (id or name), configuration, plans, folds
    (as typed), device, and whether folds beyond splits_final.json may train on nnU-Net's random split."""

    dataset: str
    configuration: str
    plans: str = "nnUNetPlans"
    folds: Sequence = DEFAULT_FOLDS
    device: str | None = None
    allow_random_split: bool = False


def checked_jobs(trainers: Sequence[str], training: Training, *, npz: bool = False
                 ) -> tuple[Path, str, list[str], list[Job]]:
    """What ``sweep`` and ``noise`` check before anything trains, in order: the folds, the results folder, the
    dataset, its plans and configuration, the folds against splits_final.json, and every trainer name with
    nnU-Net's own lookup; then the jobs.

    Returns:
        ``(results root, dataset name, folds, jobs)``.
    """
    folds = parse_folds(training.folds)
    results = results_root()
    dataset = resolve_dataset_name(training.dataset)
    check_plans(dataset, training.plans, training.configuration)
    check_folds(dataset, folds, allow_random_split=training.allow_random_split)
    check_trainers_found(trainers)
    jobs = plan_jobs(results, dataset, training.configuration, trainers, folds, plans=training.plans,
                     device=training.device, npz=npz)
    return results, dataset, folds, jobs


def aliases(results: Path, dataset_name: str, trainer: str, plans: str, configuration: str) -> list[str]:
    """Other trainer names with results folders in ``results`` that are the same setting and seed as ``trainer``."""
    found = find_trainers(Path(results) / dataset_name, plans, configuration)
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


# ------------------------------------------------------------------------------- printing and running

def _left_alone_comments(jobs: Sequence[Job]) -> list[str]:
    """``# <trainer> fold <f>: foreign - <why>; left alone`` for each job the sweep does not touch."""
    return [f"# {j.describe()}; left alone" for j in jobs if j.state in LEFT_ALONE]


def shell_lines(jobs: Sequence[Job], environ: dict | None = None) -> list[str]:
    """The shell commands of the jobs that need one, one per line, the export line first if needed; then a
    comment line for each (trainer, fold) left alone ('foreign', 'pruned') with the reason."""
    lines = [j.shell for j in jobs if j.command is not None]
    export = extTrainer_export(environ)
    return ([export] if export and lines else []) + lines + _left_alone_comments(jobs)


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
            exe = train_executable(env)  # fails before the first job, not after the first skip
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

