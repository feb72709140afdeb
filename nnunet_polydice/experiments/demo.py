"""The demo: Poly Dice against nnU-Net's default trainer on an embedded data set, end to end.

The library side of ``nnunet-polydice demo``; no argparse. Messages go through an ``echo`` callable,
nnU-Net's own output goes straight to this process's stdout (its subprocesses inherit it).

Steps, each one resumable (run the demo again after a crash or a Ctrl-C and it goes on where it stopped):

1. ``workspace.prepare_embedded``: the data set in ``<work>/nnUNet_raw``, nnU-Net's plans and ``2d``
   preprocessing (once), the smaller ``2d_cpu`` configuration, the contiguous-block splits;
2. training of each trainer (with the schedule suffix ``_<E>ep<I>it``) on one fold through the sweep
   machinery (``sweep.plan_jobs`` / ``run_jobs``): finished runs are skipped, started ones continued;
3. the held-out fold's images (and reference labels) copied to ``<work>/heldout_fold<f>/imagesTs``
   (``labelsTs``);
4. ``nnUNetv2_predict`` of each trainer into ``<work>/predictions/<trainer>`` (skipped where the
   predictions are newer than the checkpoint and the images);
5. the per-class Dice of each trainer on the held-out slices (:func:`dice_scores`), printed and written
   to ``<work>/demo_dice.md``;
6. the pictures, drawn again on every run: ``<work>/demo_predictions.png`` (:func:`write_prediction_figure`: a
   few held-out slices, chosen by :func:`pick_slices`, with the reference and each trainer's prediction
   outlined) and the learning curves of the trained runs from nnU-Net's ``training_log_*.txt`` in
   ``<work>/curves`` (:func:`curves.collect`, :func:`curves.write_outputs`).

All nnU-Net folders live under ``<work>``; the user's ``nnUNet_*`` variables are neither read nor
changed (the subprocesses get them through their own environment, :func:`workspace.workspace_env`).
"""

from __future__ import annotations

import filecmp
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunet_polydice.experiments import checks, curves, datasets, nnunet_env, sweep
from nnunet_polydice.experiments.demo_report import (
    MAX_SLICES,
    dice_scores,
    format_dice_table,
    pick_slices,
    write_prediction_figure,
)
from nnunet_polydice.experiments.layout import CHECKPOINT_FINAL, fold_folder
from nnunet_polydice.experiments.processes import sigterm_as_interrupt
from nnunet_polydice.experiments.workspace import prepare_embedded, run_logged, workspace_env
from nnunet_polydice.integration.locate import nnunet_command
from nnunet_polydice.integration.naming import split_schedule, split_seed
from nnunet_polydice.integration.plans import CPU_CONFIGURATION

__all__ = [
    "DemoData",
    "DEMO_DATA",
    "DEMO_TRAINERS",
    "CPU_SCHEDULE",
    "GPU_SCHEDULE",
    "MARKER",
    "NNUNET_COMMANDS",
    "check_work_folder",
    "DemoStepError",
    "DemoResult",
    "default_schedule",
    "estimate_cpu_seconds",
    "dice_scores",
    "format_dice_table",
    "pick_slices",
    "write_prediction_figure",
    "PICTURE",
    "CURVES_FOLDER",
    "run_demo",
]


@dataclass(frozen=True)
class DemoData:
    key: str  # command-line name
    dataset: str  # nnU-Net dataset name
    fold: int  # default held-out fold
    why: str


DEMO_DATA = {
    "colin27": DemoData("colin27", "Dataset731_Colin27HippoAmyg", 3,
                        "fold 3 (coronal slices y 116-126) is the only block with both hippocampus and amygdala"),
    "dsb2018": DemoData("dsb2018", "Dataset732_DSB2018Nuclei", 0, "fold 0: the top row of tiles"),
}

#: The two trainers of the demo: Poly Dice with the package's default K and epsilon, and nnU-Net's CE+Dice.
DEMO_TRAINERS = ("nnUNetTrainerPolyDice", "nnUNetTrainer")

#: The demo trains seeded names (``<trainer>_<E>ep<I>it_s0``): on a CPU its trainings, and so its table and picture,
#: are the same every time it runs; both trainers see the same batches (common random numbers).
DEMO_SEED = 0

#: Default schedules (epochs, iterations per epoch). CPU: sized by :func:`estimate_cpu_seconds` to stay
#: well under 15 minutes on 2 CPU cores; GPU: four times as many epochs.
CPU_SCHEDULE = (15, 25)
GPU_SCHEDULE = (60, 25)

# Timing model of the full Colin27 data in the 2d_cpu configuration on 2 otherwise idle CPU cores, from the
# timed default demo (`/usr/bin/time nnunet-polydice demo`, 2026-11-27: 6 min 10 s in all; 375 iterations
# trained in 107 s per trainer, epochs of 25 training + 5 validation iterations in 5.6 s on average).
SECONDS_PER_ITERATION = 107.0 / 375  # per training iteration, its share of validation iterations included
PLAN_SECONDS = 25  # writing the data, nnU-Net's planning and preprocessing of 2d (first run only)
TRAIN_OVERHEAD_SECONDS = 35  # start-up of nnUNetv2_train and its final validation, per trainer
PREDICT_SECONDS = 30  # one nnUNetv2_predict of the held-out slices, start-up included

#: File in the work folder that records which data set and variant the folder was made for.
MARKER = "polydice_demo.json"

#: nnU-Net's commands the demo runs: planning, training, prediction.
NNUNET_COMMANDS = ("nnUNetv2_plan_and_preprocess", "nnUNetv2_train", "nnUNetv2_predict")

#: The picture of held-out slices and the folder of learning curves, in the work folder.
PICTURE = "demo_predictions.png"
CURVES_FOLDER = "curves"



class DemoStepError(RuntimeError):
    """A step of the demo failed; the message names the step and the failing command."""


@dataclass
class DemoResult:
    dataset: str
    fold: int
    trainers: list
    scores: dict  # trainer -> class name -> {"pooled", "per_case_mean", "n_cases"}
    table: str
    table_file: Path
    skipped_training: list = field(default_factory=list)  # trainers whose run was finished already
    skipped_prediction: list = field(default_factory=list)
    picture: Path | None = None  # the held-out slices with reference and predictions (PICTURE)
    curves: list = field(default_factory=list)  # files written by the learning-curve step (CURVES_FOLDER)
    environ: dict = field(default_factory=dict)  # the three nnUNet_* folders of the work folder
    heldout: Path | None = None  # the held-out images (imagesTs)
    schedule: tuple = (0, 0)
    device: str = "cpu"


def default_schedule(device: str) -> tuple[int, int]:
    """:data:`GPU_SCHEDULE` for ``'cuda'``, :data:`CPU_SCHEDULE` otherwise."""
    return GPU_SCHEDULE if device == "cuda" else CPU_SCHEDULE


def estimate_cpu_seconds(epochs: int, iterations: int, n_trainers: int = len(DEMO_TRAINERS),
                         planned: bool = False) -> float:
    """Expected wall time of a demo on the full Colin27 data, ``2d_cpu``, 2 idle CPU cores, in seconds.

    ``planning + n_trainers * (start-up + epochs * iterations * s/it + prediction)`` with the measured
    constants of this module; ``planned`` leaves out the planning (a rerun whose plans exist).
    """
    per_trainer = TRAIN_OVERHEAD_SECONDS + epochs * iterations * SECONDS_PER_ITERATION + PREDICT_SECONDS
    return (0 if planned else PLAN_SECONDS) + n_trainers * per_trainer


# ------------------------------------------------------------------------------------------- Dice

# -------------------------------------------------------------------------------------------- steps

def _read_array(path: Path) -> np.ndarray:
    """An image or label map written by the demo (or nnU-Net's prediction of it) as an array ``(Z, H, W)``."""
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def check_work_folder(work, data: DemoData, variant: str) -> Path:
    """The demo's work folder, checked before any work, as an absolute path: a folder the demo can write, that
    exists or whose parent does (:func:`checks.check_output_folder`), and that is either new, empty, or a work
    folder of an earlier demo of the same data and variant (its :data:`MARKER`: a rerun resumes there). A folder
    of anything else is refused: the demo works in a folder of its own.

    Raises:
        ValueError: naming --work and what is wrong; nothing is created.
    """
    work = checks.check_output_folder(work, "--work").resolve()
    marker = work / MARKER
    if marker.is_file():
        try:
            have = json.loads(marker.read_text())
        except ValueError:
            have = None
        wanted = {"data": data.key, "dataset": data.dataset, "variant": variant}
        if have != wanted:
            raise ValueError(f"{work} holds a demo of {have.get('data') if isinstance(have, dict) else '?'} "
                             f"({have.get('variant') if isinstance(have, dict) else '?'} variant); this run asks "
                             f"for {data.key} ({variant} variant). Give another --work folder, or delete {work}.")
    elif work.is_dir() and any(work.iterdir()):
        raise ValueError(f"--work {work} is a folder with other files in it and no {MARKER}: the demo works in a "
                         f"folder of its own (new, empty, or one an earlier demo made). Give a new folder, e.g. "
                         f"--work {work / 'polydice_demo'}.")
    return work


def _write_marker(work: Path, data: DemoData, variant: str) -> None:
    """Make the work folder (checked by :func:`check_work_folder`; its parent exists) and its :data:`MARKER`."""
    marker = work / MARKER
    if marker.is_file():
        return
    work.mkdir(exist_ok=True)
    marker.write_text(json.dumps({"data": data.key, "dataset": data.dataset, "variant": variant}, indent=2) + "\n")


def _copy_if_changed(src: Path, dst: Path) -> None:
    if not (dst.is_file() and filecmp.cmp(src, dst, shallow=False)):
        shutil.copy2(src, dst)


def copy_heldout(raw_dataset: Path, cases: Sequence[str], dest: Path) -> tuple[Path, Path]:
    """Copy the images (``<case>_XXXX``, every channel) and reference labels of ``cases`` from an nnU-Net
    raw data set folder to ``dest/imagesTs`` and ``dest/labelsTs``. Files already identical are left (their
    times too); other ``.nii.gz`` files in those two folders are removed, so that they hold exactly these
    cases. Returns the two folders."""
    images, labels = dest / "imagesTs", dest / "labelsTs"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    keep_images, keep_labels = set(), set()
    for case in cases:
        channels = sorted((raw_dataset / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9].nii.gz"))
        if not channels:
            raise FileNotFoundError(f"no image of case {case} in {raw_dataset / 'imagesTr'}.")
        for src in channels:
            _copy_if_changed(src, images / src.name)
            keep_images.add(src.name)
        _copy_if_changed(raw_dataset / "labelsTr" / f"{case}.nii.gz", labels / f"{case}.nii.gz")
        keep_labels.add(f"{case}.nii.gz")
    for folder, keep in ((images, keep_images), (labels, keep_labels)):
        for stale in folder.glob("*.nii.gz"):
            if stale.name not in keep:
                stale.unlink()
    return images, labels


def _predictions_current(out_dir: Path, cases: Sequence[str], inputs: Sequence[Path], checkpoint: Path) -> bool:
    files = [out_dir / f"{c}.nii.gz" for c in cases]
    if not all(f.is_file() for f in files) or not checkpoint.is_file():
        return False
    newest_input = max([checkpoint.stat().st_mtime, *(p.stat().st_mtime for p in inputs)])
    return all(f.stat().st_mtime >= newest_input for f in files)


class _Steps:
    """The demo's numbered steps: a header line each, and a failure as :class:`DemoStepError` naming the step."""

    total = 6

    def __init__(self, echo: Callable[[str], None]):
        self.echo = echo

    def header(self, i: int, text: str) -> None:
        self.echo(f"\n=== Step {i}/{self.total}: {text} ===")

    def run(self, i: int, what: str, fn):
        try:
            return fn()
        except RuntimeError as err:
            raise DemoStepError(f"step {i}/{self.total} ({what}) failed: {err}") from err

    def fail(self, i: int, what: str, why: str) -> DemoStepError:
        return DemoStepError(f"step {i}/{self.total} ({what}) failed: {why}")


def _checked_plan(data: str, variant: str, fold: int | None, schedule, device: str, trainers: Sequence[str],
                  seed: int | None) -> tuple[DemoData, list, int, int, int, list[str]]:
    """``(info, splits, fold, epochs, iterations, trainer names)`` of the demo's options, each checked (the
    ``ValueError`` s of :func:`run_demo`, before any file is written)."""
    if data not in DEMO_DATA:
        raise ValueError(f"unknown demo data {data!r}; choose one of {', '.join(DEMO_DATA)}.")
    info = DEMO_DATA[data]
    if variant not in datasets.VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(datasets.VARIANTS)} (got {variant!r}).")
    splits = datasets.splits_for(info.dataset, variant)
    fold = info.fold if fold is None else checks.check_int(fold, "--fold", 0, len(splits) - 1)
    epochs, iterations = schedule if schedule is not None else default_schedule(device)
    names = sweep.sweep_trainers((), (), (), baselines=list(trainers), schedule=(epochs, iterations),
                                 seeds=() if seed is None else [seed])
    return info, splits, fold, epochs, iterations, names


def _predict(steps: _Steps, work: Path, results: Path, dataset: str, names: Sequence[str], fold: int,
             images: Path, cases: Sequence[str], device: str, env: dict) -> list[str]:
    """Step 4: ``nnUNetv2_predict`` of each trainer into ``work/predictions/<trainer>``, skipping predictions
    newer than the checkpoint and the images; the trainers skipped."""
    skipped = []
    inputs = sorted(images.glob("*.nii.gz"))
    n_proc = "1" if device != "cuda" else "3"
    for name in names:
        out_dir = work / "predictions" / name
        checkpoint = fold_folder(results, dataset, name, "nnUNetPlans", CPU_CONFIGURATION, fold) / CHECKPOINT_FINAL
        if _predictions_current(out_dir, cases, inputs, checkpoint):
            steps.echo(f"{name}: predictions in {out_dir} are newer than the checkpoint and the images; skipped")
            skipped.append(name)
            continue
        cmd = ["nnUNetv2_predict", "-i", str(images), "-o", str(out_dir), "-d", dataset, "-c", CPU_CONFIGURATION,
               "-f", str(fold), "-tr", name, "-device", device, "-npp", n_proc, "-nps", n_proc]
        steps.run(4, f"prediction with {name}", lambda cmd=cmd: run_logged(cmd, env, steps.echo))
    return skipped


def _score(steps: _Steps, work: Path, names: Sequence[str], cases: Sequence[str], references: list,
           labels_of: dict) -> tuple[dict, dict]:
    """Step 5: ``({trainer: Dice scores}, {trainer: predicted arrays})`` of the held-out cases."""
    scores, predictions = {}, {}
    for name in names:
        out_dir = work / "predictions" / name
        missing = [c for c in cases if not (out_dir / f"{c}.nii.gz").is_file()]
        if missing:
            raise steps.fail(5, "Dice", f"no prediction of {', '.join(missing)} in {out_dir}")
        predictions[name] = [_read_array(out_dir / f"{c}.nii.gz") for c in cases]
        scores[name] = dice_scores(predictions[name], references, labels_of)
    return scores, predictions


@sigterm_as_interrupt()
def run_demo(work, data: str = "colin27", fold: int | None = None, schedule: tuple[int, int] | None = None,
             trainers: Sequence[str] = DEMO_TRAINERS, device: str = "cpu", variant: str = "full",
             echo: Callable[[str], None] = print, environ: dict | None = None,
             seed: int | None = DEMO_SEED) -> DemoResult:
    """Run the demo's five steps (module docstring) in ``work`` and return the scores.

    Raises:
        ValueError: for an unknown data set, a fold the data set does not have, a bad trainer name or
            schedule, a trainer nnU-Net does not find, or a work folder that is a file, has no parent, holds other
            files or was made for another data set or variant (:func:`check_work_folder`; before anything runs).
        FileNotFoundError: when nnU-Net's commands are neither on PATH nor beside this interpreter.
        DemoStepError: when a step fails; the message names the step and the failing command.
        KeyboardInterrupt: on Ctrl-C and on SIGTERM (while it runs, SIGTERM is Ctrl-C): nnU-Net's running command is
            stopped first.
    """
    info, splits, fold, epochs, iterations, names = _checked_plan(data, variant, fold, schedule, device, trainers,
                                                                  seed)
    work = check_work_folder(work, info, variant)
    env = workspace_env(work, environ, cpu=(device != "cuda"))
    for command in NNUNET_COMMANDS:
        nnunet_command(command, env)  # beside this interpreter when not on PATH; a sentence when in neither
    nnunet_env.check_trainers_found(names, env)  # nnU-Net's own lookup: a typo gets "Did you mean", before planning
    _write_marker(work, info, variant)
    cases = splits[fold]["val"]
    steps = _Steps(echo)

    steps.header(1, f"{info.dataset} ({variant}) into {work}: nnU-Net planning and preprocessing (2d), "
                    f"configuration {CPU_CONFIGURATION}, contiguous-block splits")
    dataset = steps.run(1, "planning", lambda: prepare_embedded(info.dataset, work, variant=variant, echo=echo,
                                                                 environ=env))

    steps.header(2, f"training {', '.join(names)} on fold {fold} ({epochs} epochs x {iterations} iterations, "
                    f"device {device})")
    results = Path(env["nnUNet_results"])
    jobs = sweep.plan_jobs(results, dataset, CPU_CONFIGURATION, names, [fold], device=device)
    skipped = [j.trainer for j in jobs if j.command is None]
    ran = sweep.run_jobs(jobs, environ=env, echo=echo)
    failed = ran.failed + ran.busy  # a busy run has no checkpoint to predict with yet
    if failed:
        raise steps.fail(2, "training", "; ".join(f"{j.trainer} fold {j.fold}: {j.shell}" for j in failed))

    heldout = work / f"heldout_fold{fold}"
    steps.header(3, f"copying the {len(cases)} held-out cases of fold {fold} to {heldout / 'imagesTs'}")
    images, labels = copy_heldout(Path(env["nnUNet_raw"]) / dataset, cases, heldout)
    echo(f"{len(cases)} cases: {', '.join(cases)}")

    steps.header(4, f"nnUNetv2_predict with each trainer (configuration {CPU_CONFIGURATION}, fold {fold}, "
                    f"device {device})")
    skipped_prediction = _predict(steps, work, results, dataset, names, fold, images, cases, device, env)

    steps.header(5, f"Dice per class on the {len(cases)} held-out cases of fold {fold}")
    labels_of = datasets.get_dataset(dataset).labels
    references = [_read_array(labels / f"{c}.nii.gz") for c in cases]
    scores, predictions = _score(steps, work, names, cases, references, labels_of)
    unit = "slices" if datasets.get_dataset(dataset).dim == 2 else "volumes"
    table = format_dice_table(scores, unit=unit)
    table_file = work / "demo_dice.md"
    report = _report(dataset, variant, fold, cases, epochs, iterations, device, table, unit)
    table_file.write_text(report, encoding="utf-8")

    curves_dir = work / CURVES_FOLDER
    steps.header(6, f"pictures: held-out slices with reference and predictions ({PICTURE}), learning curves "
                    f"({CURVES_FOLDER}/)")
    images_of = [_read_array(images / f"{c}_0000.nii.gz") for c in cases]
    shown = pick_slices(references, labels_of)
    echo(f"slices shown (per class the slice with the most reference pixels of it, then the most reference "
         f"foreground, at most {MAX_SLICES}): {', '.join(cases[i] for i, _ in shown)}")
    picture = steps.run(6, "picture of the predictions", lambda: write_prediction_figure(
        work / PICTURE, images_of, references, predictions, cases, labels_of,
        f"{dataset} ({variant}): held-out fold {fold}, {epochs}x{iterations} iterations per trainer"))
    curve_files = steps.run(6, "learning curves", lambda: _write_curves(results, dataset, names, fold, curves_dir))
    table_file.write_text(report + _pictures_section(work, picture, curve_files), encoding="utf-8")
    return DemoResult(dataset, fold, names, scores, table, table_file, skipped, skipped_prediction, picture,
                      curve_files, environ={k: env[k] for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")},
                      heldout=images, schedule=(epochs, iterations), device=device)


def next_steps(result: DemoResult) -> list[str]:
    """What to type after the demo: the three ``export nnUNet_...`` lines of its folders, then ``compare``,
    ``curves`` and ``nnUNetv2_predict`` with the exact trainer names, configuration and fold it used."""
    import shlex

    lines = [f"export {k}={shlex.quote(v)}" for k, v in result.environ.items()]
    epochs, iterations = result.schedule
    trainers = " ".join(result.trainers)
    tool = _typed("nnunet-polydice")
    lines += [f"{tool} compare {result.dataset} {CPU_CONFIGURATION} --trainers {trainers}",
              f"{tool} curves {result.dataset} {CPU_CONFIGURATION} --trainers {trainers}"]
    if result.heldout is not None:
        out = result.heldout.parent / "my_predictions"
        lines.append(f"{_typed('nnUNetv2_predict')} -i {shlex.quote(str(result.heldout))} -o {shlex.quote(str(out))} "
                     f"-d {result.dataset} -c {CPU_CONFIGURATION} -f {result.fold} -tr {result.trainers[0]} "
                     f"-device {result.device}")
    lines.append(f"{tool} sweep {result.dataset} {CPU_CONFIGURATION} --folds 0 1 2 3 4 --trainers "
                 f"{' '.join(split_schedule(split_seed(t)[0])[0] for t in result.trainers)} "
                 f"--schedule {epochs}x{iterations} "
                 f"--seeds 0 1 2 --device {result.device}")
    return lines


def _typed(command: str) -> str:
    """``command`` as the user types it: its name when it is on PATH, else its path beside this interpreter (the
    demo run as ``/path/to/venv/bin/nnunet-polydice demo`` prints commands that work the same way)."""
    import shlex
    import shutil

    if shutil.which(command):
        return command
    try:
        return shlex.quote(nnunet_command(command))
    except FileNotFoundError:
        return command


def _write_curves(results: Path, dataset: str, trainers: Sequence[str], fold: int, out_dir: Path) -> list:
    """The learning curves of the demo's runs from nnU-Net's training logs (:mod:`curves`); the files written."""
    try:
        found = curves.collect(results, dataset, CPU_CONFIGURATION, trainers=list(trainers), folds=[str(fold)])
        written, _ = curves.write_outputs(found, out_dir)
    except (ValueError, OSError) as err:
        raise RuntimeError(str(err)) from err
    return list(written)


def _pictures_section(work: Path, picture: Path, curve_files: Sequence[Path]) -> str:
    lines = ["", "## Pictures", "",
             f"Held-out slices (per class the slice with the most reference pixels of it, then those with the most "
             f"reference foreground, at most {MAX_SLICES}): the image, the reference outlined, each trainer's "
             "prediction outlined with that slice's Dice per class.", "",
             f"![held-out slices]({picture.relative_to(work)})", ""]
    if curve_files:
        lines += ["Learning curves (validation pseudo Dice per epoch, from nnU-Net's training logs):", ""]
    lines += [f"- [{p.relative_to(work)}]({p.relative_to(work)})" for p in curve_files if p.suffix == ".png"]
    return "\n".join(lines) + "\n"


def _report(dataset, variant, fold, cases, epochs, iterations, device, table, unit) -> str:
    return "\n".join([
        f"# nnunet-polydice demo: {dataset} ({variant}), fold {fold} held out",
        "",
        f"Trained on the other folds for {epochs} epochs x {iterations} iterations ({epochs * iterations} "
        f"iterations, configuration `{CPU_CONFIGURATION}`, device {device}); predicted with `nnUNetv2_predict` "
        f"on the {len(cases)} held-out {unit}.",
        "",
        table,
        "",
        f"pooled: 2 sum|P&G| / (sum|P| + sum|G|) over all held-out {unit}. mean per {unit[:-1]}: the mean of the "
        f"Dice of each {unit[:-1]} over the n {unit} where the class is in the reference or the prediction. "
        "n/a: the class is in neither.",
        "",
        "A short schedule on one fold shows how fast each loss finds small structures; it says nothing "
        "about final accuracy, which needs full schedules over several folds (`nnunet-polydice sweep`).",
        "",
    ])
