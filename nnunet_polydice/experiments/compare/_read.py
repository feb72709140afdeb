"""First stage of ``compare``: read each trainer's folds into one raw row per trainer folder."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_polydice.experiments import checks
from nnunet_polydice.experiments.compare._model import Cell, Method, Missing, Row, Selection
from nnunet_polydice.experiments.instance import Instance
from nnunet_polydice.experiments.layout import (
    FOREGROUND,
    FOREGROUND_TITLE,
    SummaryError,
    absent_from_reference,
    find_trainers,
    fold_in,
    per_case_values,
    read_label_names,
    select_folds,
    summary_path,
    summary_values,
    trainer_folder,
)
from nnunet_polydice.experiments.runs import fold_status
from nnunet_polydice.integration.naming import parse_trainer_name, setting_and_seed, split_schedule, split_seed

__all__ = ["RunsRead", "read_runs", "check_reference", "fold_summary"]


@dataclass
class RunsRead:
    """What :func:`read_runs` found: one :class:`Row` per trainer (keyed ``Instance(fold)``), the folds compared,
    the classes ``[(key, name)]`` in dataset.json order, and the missing entries and notes so far."""

    rows: list
    folds: list
    classes: list
    missing: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def _setting_core(name: str) -> str:
    """A name without its seed and schedule suffixes, parameters spelled out for our families."""
    try:
        core = split_schedule(split_seed(name)[0])[0]
        spec = parse_trainer_name(core)
    except ValueError:
        return name
    return core if spec is None else spec.setting


def check_reference(reference: str, found: Sequence[str], option: str = "--reference") -> str:
    """``reference`` when some trainer with results is it, or one of its schedule/seed variants or other names.

    Raises:
        ValueError: otherwise (a table whose difference column would be empty), listing the trainers with results.
    """
    if not any(_setting_core(t) == _setting_core(reference) for t in found):
        raise ValueError(f"{option} {reference}: no results folder of it (or of a schedule or seed variant of it); "
                         f"trainers with results: {', '.join(found) or 'none'}.")
    return reference


def fold_summary(fold_dir: Path) -> tuple[dict | None, str | None, bool]:
    """``(summary, None, foreign)`` for a fold that is compared, ``(None, reason, False)`` for one that is not,
    by the rule of :func:`nnunet_polydice.experiments.runs.fold_status`."""
    status = fold_status(fold_dir)
    path = summary_path(fold_dir)
    if status.state == "skip":
        return status.summary, None, False
    if status.state == "foreign":
        if status.summary is not None:
            return status.summary, None, True
        return None, f"{status.summary_problem} ({path})", False
    if status.state == "pruned":
        return None, f"pruned: {status.reason}", False
    if status.state == "validate":
        if not path.exists():
            return None, "checkpoint_final.pth but no validation/summary.json (validation not run)", False
        return None, f"{status.reason} ({path})", False
    if status.state == "continue":
        return None, "training started, not finished (no checkpoint_final.pth)", False
    return None, "not trained (no checkpoint, no validation/summary.json)", False


def _unreadable_name(name: str) -> str | None:
    """Why a trainer folder's name is not read as a run of any setting (None when it is): a name that is not
    ASCII (a look-alike of a trainer name), or a seed suffix that is not canonical (``_s01``)."""
    if not name.isascii():
        return "its name is not ASCII (a look-alike of a trainer name?)"
    try:
        split_seed(name)
    except ValueError as err:
        return str(err).rstrip(".")
    return None


def _seeds_text(trainers) -> str:
    seeds = sorted({seed for t in trainers if (seed := setting_and_seed(t)[1]) is not None})
    return ", ".join(map(str, seeds)) or "none (only unseeded runs)"


def _seeds_without_folders(selection: Selection, trainers) -> list[Missing]:
    """A Missing line for each seed of ``--seeds`` that no selected trainer folder has."""
    have = {setting_and_seed(t)[1] for t in trainers}
    return [Missing(f"seed {seed}", None, f"no trainer folder of this seed (--seeds); the seeds with folders: "
                                          f"{_seeds_text(trainers)}")
            for seed in selection.seeds or () if seed not in have]


def _trainer_dirs(selection: Selection) -> tuple[dict, list]:
    """``({trainer: its folder}, trainers with results)`` of the selection, checked.

    Raises:
        FileNotFoundError: when the dataset has no results folder.
        ValueError: when no trainer is selected, or none of them has a results folder.
    """
    s = selection
    dataset_dir = Path(s.results) / s.dataset_name
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"{dataset_dir} does not exist: no results of {s.dataset_name} in nnUNet_results.")
    found = [t for t in find_trainers(dataset_dir, s.plans, s.configuration) if _unreadable_name(t) is None]
    trainers = list(dict.fromkeys(s.trainers)) if s.trainers else found
    if s.seeds is not None:
        trainers = [t for t in trainers if setting_and_seed(t)[1] in (None, *s.seeds)]
        if not trainers and found:  # the folders are there: the seeds are what finds none of them
            raise ValueError(f"--seeds {' '.join(map(str, s.seeds))}: no trainer folder *__{s.plans}__"
                             f"{s.configuration} in {dataset_dir} is of these seeds; the seeds with folders: "
                             f"{_seeds_text(found)}.")
    if not trainers:
        raise ValueError(f"no trainer folders *__{s.plans}__{s.configuration} in {dataset_dir}; check the "
                         f"configuration and -p/--plans.")
    tdir = {t: trainer_folder(s.results, s.dataset_name, t, s.plans, s.configuration) for t in trainers}
    if not any(d.is_dir() for d in tdir.values()):  # an empty table would replace the last one: refuse instead
        raise ValueError(f"--trainers {' '.join(trainers)}: none has a results folder <trainer>__{s.plans}__"
                         f"{s.configuration}; trainers with results: {', '.join(found) or 'none'}.")
    return tdir, found


@dataclass
class _Reading:
    """What the reading of one comparison shares between its folds."""

    method: Method
    names: dict
    keys: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seen: dict = field(default_factory=dict)  # real fold folder or summary bytes -> (trainer, fold) read first

    def duplicate_of(self, trainer: str, fold: str, fold_dir: Path) -> str | None:
        """Who this fold's data was already read as (the same folder through a link, or a byte-identical
        summary.json copied), or None; the first reading is kept, so a run is counted once."""
        keys = [("folder", str(fold_dir.resolve()))]
        try:
            keys.append(("summary", hashlib.sha256(summary_path(fold_dir).read_bytes()).hexdigest()))
        except OSError:
            pass
        first = next((self.seen[k] for k in keys if k in self.seen), None)
        if first is not None:
            return f"{first[0]} fold {first[1]}"
        for k in keys:
            self.seen[k] = (trainer, fold)
        return None


def _read_fold(row: Row, fold: str, fold_dir: Path, reading: _Reading) -> None:
    """Add one fold's values and cases to ``row``, or its reason to the missing entries."""
    t, metric = row.trainer, reading.method.metric
    if not fold_dir.is_dir():
        reading.missing.append(Missing(t, fold, "not trained (no fold folder)"))
        return
    twin = reading.duplicate_of(t, fold, fold_dir)
    if twin is not None:
        reading.missing.append(Missing(t, fold, f"the same run as {twin} (a linked folder or a copied "
                                                f"validation/summary.json): counted once, there"))
        return
    data, reason, foreign = fold_summary(fold_dir)
    if data is not None:
        try:
            values, fg = summary_values(data, metric)
            cases = per_case_values(data, metric)
        except SummaryError as err:
            data, reason = None, f"{err} ({summary_path(fold_dir)})"
    if data is None:
        reading.missing.append(Missing(t, fold, reason))
        return
    if foreign:
        reading.notes.append(Missing(t, fold, "compared from a validation/summary.json without any checkpoint "
                                              "(copied in; sweep never trains over it)"))
    absent = absent_from_reference(data) if reading.method.overlap else {}
    inst = Instance(fold)
    row.folds.append(fold)
    row.cases[inst] = cases
    for key, v in [*values.items(), (FOREGROUND, fg)]:
        if key != FOREGROUND and key not in reading.keys:
            reading.keys.append(key)
        cell = row.cells.setdefault(key, Cell())
        name = reading.names.get(key, key)
        if math.isnan(v):
            what = FOREGROUND_TITLE if key == FOREGROUND else f"class {name}"
            why = " (in neither the reference nor the prediction of any validation case)" if key in absent else ""
            reading.missing.append(Missing(t, fold, f"{what}: {metric} is NaN{why}"))
            continue
        cell.values[inst] = v
        if absent.get(key):
            reading.notes.append(Missing(t, fold, f"class {name}: absent from the reference of every validation "
                                                  f"case; {absent[key]:.0f} false-positive voxels, so nnU-Net's "
                                                  f"{metric} {v:.4f} counts"))


def _natural_key(key: str):
    try:
        return (0, (int(key),))
    except ValueError:
        return (1, tuple(int(v) for v in re.findall(r"-?\d+", key)))


def read_runs(selection: Selection, method: Method) -> RunsRead:
    """Every selected trainer's ``fold_<f>/validation/summary.json``, one raw :class:`Row` per trainer folder.

    Raises:
        FileNotFoundError: when the dataset has no results folder.
        ValueError: when no trainer is found, the metric is not nnU-Net's, a named reference has no results, or no
            asked-for fold has a folder. An unusable summary.json is not an error: its fold is a missing entry.
    """
    tdir, found = _trainer_dirs(selection)
    checks.check_metric(method.metric)
    left_out = [Missing(t, None, f"results folder left out: {why}") for t in
                find_trainers(Path(selection.results) / selection.dataset_name, selection.plans,
                              selection.configuration) if (why := _unreadable_name(t)) is not None]
    if method.reference_required:  # a reference the user named must exist; the default may be absent
        check_reference(method.reference, found)
    folds = select_folds(list(tdir.values()), selection.folds)
    left_out += _seeds_without_folders(selection, found)
    reading = _Reading(method, read_label_names(list(tdir.values())), missing=left_out)
    rows = []
    for t, folder in tdir.items():
        row = Row(t)
        rows.append(row)
        if not folder.is_dir():
            reading.missing.append(Missing(t, None, f"no results folder {folder.name}"))
            continue
        for f in folds:
            _read_fold(row, f, fold_in(folder, f), reading)
    reported = {m.trainer for m in reading.missing}
    for row in rows:
        if row.n_folds == 0 and row.trainer not in reported:
            reading.missing.append(Missing(row.trainer, None, "no fold_<f> folders with results"))
    order = {k: i for i, k in enumerate(reading.names)}
    keys = sorted(reading.keys, key=lambda k: (order.get(k, len(order)), _natural_key(k)))
    classes = [(k, reading.names.get(k, k)) for k in keys]
    return RunsRead(rows, folds, classes, reading.missing, reading.notes)
