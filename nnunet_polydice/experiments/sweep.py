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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from nnunet_polydice.experiments import checks, locks
from nnunet_polydice.experiments.layout import find_trainers, fold_folder, trainer_folder
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
from nnunet_polydice.experiments.paths import check_path_length, ensure_writable_dir
from nnunet_polydice.experiments.processes import run_child, sigterm_as_interrupt
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

__all__ = ["DEFAULT_FAMILIES", "DEFAULT_BASELINES", "DEFAULT_FOLDS", "LEFT_ALONE", "LOCK_COMMAND", "Job", "Place",
           "Training", "count_jobs", "plan_job",
           "parse_schedule", "with_schedule", "with_seed", "sweep_trainers", "parse_folds", "aliases", "plan_jobs",
           "checked_jobs", "shell_lines", "Ran", "run_jobs"]

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
#: Who a sweep's (and noise's, and the demo's) fold lock names as its holder.
LOCK_COMMAND = "nnunet-polydice sweep"


@dataclass(frozen=True)
class Place:
    """Where the runs of a sweep are and how they train: what :func:`plan_job` needs to plan one again."""

    results: Path
    dataset: str
    configuration: str
    plans: str = "nnUNetPlans"
    device: str | None = None
    npz: bool = False

    def folder(self, trainer: str, fold) -> Path:
        return fold_folder(self.results, self.dataset, trainer, self.plans, self.configuration, fold)


@dataclass(frozen=True)
class Job:
    """One (trainer, fold) of a sweep: its state and the command that brings it to 'finished' (None: skip);
    ``holder``: who held its fold lock when it was planned (:func:`locks.holder_text`; '' when nobody);
    ``place``: where it is (None for a job made by hand: then it is run as it is, without a lock)."""

    trainer: str
    fold: str
    state: str
    command: tuple[str, ...] | None
    reason: str = ""
    holder: str = ""
    place: Place | None = None

    @property
    def shell(self) -> str | None:
        return None if self.command is None else shlex.join(self.command)

    @property
    def finished(self) -> bool:
        return self.state == "skip"

    def describe(self) -> str:
        """``<trainer> fold <f>: <state>``, with the reason for 'foreign', 'pruned' and 'validate', or
        ``busy (trained by <holder>)`` while another live process holds its fold lock."""
        text = f"{self.trainer} fold {self.fold}: "
        if self.holder:
            return f"{text}busy (trained by {self.holder})"
        text += self.state
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
    dataset, its plans and configuration, the folds against splits_final.json, the length of every results folder
    name (the file system's limit), and every trainer name with nnU-Net's own lookup; then the jobs.

    Returns:
        ``(results root, dataset name, folds, jobs)``.
    """
    folds = parse_folds(training.folds)
    results = results_root()
    dataset = resolve_dataset_name(training.dataset)
    check_plans(dataset, training.plans, training.configuration)
    check_folds(dataset, folds, allow_random_split=training.allow_random_split)
    for trainer in trainers:  # a configuration name too long for a folder (written by hand or by an old add-config)
        check_path_length(trainer_folder(results, dataset, trainer, training.plans, training.configuration),
                          f"the results folder of {trainer} (configuration {training.configuration[:40]!r})")
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
    place = Place(Path(results), dataset_name, configuration, plans, device, npz)
    return [plan_job(place, trainer, fold) for trainer in trainers for fold in folds]


def plan_job(place: Place, trainer: str, fold) -> Job:
    """The :class:`Job` of one (trainer, fold) as its files are now (:func:`plan_jobs`), with the holder of a
    live fold lock (:func:`locks.live_holder`)."""
    folder = place.folder(trainer, fold)
    status = fold_status(folder)
    state, reason = status.state, ("" if status.state == "skip" else status.reason or "")
    if state == "fresh":
        others = aliases(place.results, place.dataset, trainer, place.plans, place.configuration)
        done = [a for a in others if fold_status(place.folder(a, fold)).finished]
        if done:
            state, reason = "skip", f"finished as {done[0]} (the same setting)"
    holder = locks.live_holder(folder) if state not in ("skip", *LEFT_ALONE) else None
    return Job(trainer, str(fold), state,
               train_command(place.dataset, place.configuration, fold, trainer, state, plans=place.plans,
                             device=place.device, npz=place.npz), reason,
               holder=locks.holder_text(holder) if holder is not None else "", place=place)


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


@dataclass(frozen=True)
class Ran:
    """What :func:`run_jobs` did besides the runs that succeeded: the jobs that failed, those skipped because a live
    process held their fold lock, and those another process finished before their turn."""

    failed: list = field(default_factory=list)
    busy: list = field(default_factory=list)
    meanwhile: list = field(default_factory=list)


def check_writable(jobs: Sequence[Job]) -> None:
    """Check that the fold folder of every job with a command and a :class:`Place` can be written (or created):
    nnU-Net writes its checkpoints there.

    Raises:
        ValueError: naming nnUNet_results, the folder and why (:func:`paths.ensure_writable_dir`).
    """
    for job in jobs:
        if job.command is not None and job.place is not None:
            ensure_writable_dir(job.place.folder(job.trainer, job.fold), "nnUNet_results: the run's folder")


def run_jobs(jobs: Sequence[Job], *, environ: dict | None = None, echo: Callable[[str], None] = lambda s: None,
             runner: Callable[..., int] | None = None) -> Ran:
    """Run the jobs one after the other and say which failed or were skipped at their turn (:class:`Ran`).

    Before each job ``echo`` gets ``[i/n]`` and :meth:`Job.describe`. A job with a :class:`Place` is run under its
    fold lock (:mod:`nnunet_polydice.experiments.locks`, the one tune takes; a stale one is taken over) and planned
    again under it (:func:`plan_job`): a run another process finished meanwhile is skipped, and so is one whose
    lock a live process holds (the line names it), each with a line saying so. The lock is removed when the run
    ends, on Ctrl-C and SIGTERM too.

    Commands run in a subprocess whose environment is :func:`locate.with_trainers_folder` of ``environ`` (default
    os.environ; the user's variables are kept) and whose output goes straight to this process's stdout/stderr.
    A failed run (non-zero exit) is reported through ``echo`` and the sweep goes on. SIGTERM is Ctrl-C while the
    jobs run (:func:`processes.sigterm_as_interrupt`): the running training is stopped and KeyboardInterrupt
    propagates.

    ``runner(argv, env=...) -> exit status`` defaults to :func:`processes.run_child`.
    """
    env = with_trainers_folder(environ)
    exe = TRAIN_EXECUTABLE
    if runner is None:
        runner = run_child
        if any(j.command is not None for j in jobs):
            exe = train_executable(env)  # fails before the first job, not after the first skip
    check_writable(jobs)  # before the first training, not as nnU-Net's PermissionError after a minute of it
    ran = Ran()
    n = len(jobs)
    with sigterm_as_interrupt():
        for i, job in enumerate(jobs, start=1):
            echo(f"[{i}/{n}] {job.describe()}")
            if job.command is None:
                continue
            if job.place is None:
                how = _run_one(job, [exe, *job.command[1:]], env, runner, echo, f"[{i}/{n}]")
            else:
                how = _run_locked(job, exe, env, runner, echo, f"[{i}/{n}]")
            {"failed": ran.failed, "busy": ran.busy, "meanwhile": ran.meanwhile}.get(how, []).append(job)
    return ran


def _run_locked(job: Job, exe: str, env: dict, runner: Callable[..., int], echo: Callable[[str], None],
                tag: str) -> str:
    """One job under its fold lock, planned again first: 'ok', 'failed', 'busy' or 'meanwhile'."""
    folder = job.place.folder(job.trainer, job.fold)

    def on_stale(holder: dict, why: str) -> None:
        echo(f"{tag} {job.trainer} fold {job.fold}: taking over the lock of {locks.holder_text(holder)} ({why})")

    holder = locks.take_lock(folder, locks.command_owner(LOCK_COMMAND), on_stale=on_stale)
    if holder is not None:
        echo(f"{tag} {job.trainer} fold {job.fold}: skipped, busy: trained by {locks.holder_text(holder)}")
        return "busy"
    with locks.held(folder):
        now = replace(plan_job(job.place, job.trainer, job.fold), holder="")
        if now.command is None:
            what = "finished meanwhile, by another process" if now.finished else \
                f"meanwhile {now.state}" + (f" - {now.reason}" if now.reason else "")
            echo(f"{tag} {job.trainer} fold {job.fold}: {what}; skipped")
            return "meanwhile"
        if now.state != job.state:
            echo(f"{tag} {job.trainer} fold {job.fold}: now {now.state} (changed by another process)")
        return _run_one(now, [exe, *now.command[1:]], env, runner, echo, tag)


def _run_one(job: Job, argv: list[str], env: dict, runner: Callable[..., int], echo: Callable[[str], None],
             tag: str) -> str:
    """Run one job's command and say why it failed: 'ok' or 'failed'."""
    try:
        rc = runner(argv, env=env)
    except OSError as err:
        echo(f"{tag} {job.trainer} fold {job.fold}: could not start ({err})")
        return "failed"
    if rc != 0:
        echo(f"{tag} {job.trainer} fold {job.fold}: FAILED (exit status {rc})")
        return "failed"
    return "ok"
