"""nnU-Net's results folder, spelled once: where a training lives and how its ``validation/summary.json`` reads.

Layout (nnU-Net's ``nnunetv2.utilities.file_path_utilities``)::

    $nnUNet_results/<DatasetXXX_Name>/<trainer>__<plans>__<configuration>/dataset.json
                                                                          /fold_<f>/validation/summary.json

Folds are the ``fold_<int>`` folders (``fold_0``, ``fold_12``; ASCII digits, no leading zero). ``fold_all``
(nnU-Net's training on every case, whose validation cases are its training cases) and other ``fold_*`` folders
(a user's ``fold_0_old``, ``fold_x``) are not found as folds; ``--folds all`` still names ``fold_all``.

``validation/summary.json`` as nnU-Net writes it (``compute_metrics_on_folder``)::

    {"foreground_mean": {"Dice": ..., "IoU": ..., ...},
     "mean": {"1": {"Dice": ..., ...}, "(1, 2)": {...}},     # label value, or region tuple, as a string
     "metric_per_case": [{"reference_file": ".../case_001.nii.gz", "prediction_file": ...,
                          "metrics": {"1": {"Dice": ..., "n_ref": ..., ...}, ...}}, ...]}

:func:`read_summary_json` is the one reader of the file; :func:`summary_values` and :func:`per_case_values`
the one reading of its means and cases. Class keys follow :func:`nnunet_polydice.integration.conventions.label_key`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PureWindowsPath

from nnunet_polydice.experiments.instance import fold_sort_key
from nnunet_polydice.integration.conventions import label_key

__all__ = ["FOREGROUND", "FOREGROUND_TITLE", "NNUNET_METRICS", "OVERLAP_METRICS", "SUMMARY", "SummaryError",
           "metric_value", "trainer_folder_name", "trainer_folder", "fold_in", "fold_folder", "fold_of",
           "summary_path", "find_trainers",
           "find_configurations", "find_folds", "select_folds", "read_summary_json", "summary_values",
           "per_case_values", "absent_from_reference", "label_names", "read_label_names"]

#: The key of nnU-Net's foreground mean in summary.json (and of that column in compare and noise).
FOREGROUND = "foreground_mean"
#: How the tools title that column.
FOREGROUND_TITLE = "foreground mean"
#: The per-class metrics nnU-Net's compute_metrics writes into validation/summary.json.
NNUNET_METRICS = ("Dice", "IoU", "FP", "TP", "FN", "TN", "n_pred", "n_ref")
#: Metrics that score overlap with the reference, in [0, 1]: nnU-Net writes 0 for a class the reference lacks
#: and the prediction has, NaN when both lack it.
OVERLAP_METRICS = frozenset({"Dice", "IoU"})
#: The summary of a fold, relative to its fold folder.
SUMMARY = Path("validation") / "summary.json"
#: nnU-Net's checkpoints in a fold folder: the final one (a finished training), and the two it continues from.
CHECKPOINT_FINAL, CHECKPOINT_LATEST, CHECKPOINT_BEST = "checkpoint_final.pth", "checkpoint_latest.pth", \
    "checkpoint_best.pth"
_SUMMARY_KEYS = ("metric_per_case", "mean", FOREGROUND)
_FOLD = re.compile(r"fold_(0|[1-9][0-9]*)", re.ASCII)


class SummaryError(ValueError):
    """A validation/summary.json that is missing or cannot be used; the message says why."""


# ------------------------------------------------------------------------------------------ folders

def trainer_folder_name(trainer: str, plans: str, configuration: str) -> str:
    """``<trainer>__<plans>__<configuration>``."""
    return f"{trainer}__{plans}__{configuration}"


def trainer_folder(results, dataset_name: str, trainer: str, plans: str, configuration: str) -> Path:
    """``<results>/<dataset_name>/<trainer>__<plans>__<configuration>``."""
    return Path(results) / dataset_name / trainer_folder_name(trainer, plans, configuration)


def fold_in(trainer_dir, fold) -> Path:
    """``<trainer folder>/fold_<fold>``."""
    return Path(trainer_dir) / f"fold_{fold}"


def fold_folder(results, dataset_name: str, trainer: str, plans: str, configuration: str, fold) -> Path:
    """``<results>/<dataset_name>/<trainer>__<plans>__<configuration>/fold_<fold>``."""
    return fold_in(trainer_folder(results, dataset_name, trainer, plans, configuration), fold)


def fold_of(name: str) -> str | None:
    """The fold of a folder name (``'fold_3'`` -> ``'3'``); None for other names (``fold_all``, ``fold_01``,
    ``fold_x``)."""
    m = _FOLD.fullmatch(name)
    return None if m is None else m.group(1)


def summary_path(fold_dir) -> Path:
    """``<fold folder>/validation/summary.json``."""
    return Path(fold_dir) / SUMMARY


def find_trainers(dataset_dir, plans: str, configuration: str) -> list[str]:
    """Trainer names of the ``<trainer>__<plans>__<configuration>`` folders in ``dataset_dir``, sorted."""
    suffix = trainer_folder_name("", plans, configuration)
    if not Path(dataset_dir).is_dir():
        return []
    return sorted(p.name[: -len(suffix)] for p in Path(dataset_dir).iterdir()
                  if p.is_dir() and p.name.endswith(suffix) and p.name[: -len(suffix)])


def find_configurations(dataset_dir, plans: str) -> list[str]:
    """The configurations of the trainer folders with these plans in ``dataset_dir``, sorted."""
    infix = f"__{plans}__"
    return sorted({p.name.split(infix, 1)[1] for p in Path(dataset_dir).iterdir() if p.is_dir() and infix in p.name})


def find_folds(trainer_dirs: Sequence) -> list[str]:
    """The union of the folds (:func:`fold_of`) of these trainer folders, numeric folds first."""
    folds = set()
    for d in trainer_dirs:
        if Path(d).is_dir():
            folds.update(f for f in (fold_of(p.name) for p in Path(d).iterdir() if p.is_dir()) if f is not None)
    return sorted(folds, key=fold_sort_key)


def select_folds(trainer_dirs: Sequence[Path], folds: Sequence | None) -> list[str]:
    """The folds asked for (as strings), or :func:`layout.find_folds` of the trainer folders when none are.

    Raises:
        ValueError: when folds are asked for and none of the trainer folders has a ``fold_<f>`` folder of any of
            them (``--folds 9``): the command refuses before it replaces its last outputs with empty ones; the
            sentence lists the folds there are.
    """
    if not folds:
        return find_folds(trainer_dirs)
    folds = [str(f) for f in folds]
    if not any(fold_in(d, f).is_dir() for d in trainer_dirs for f in folds):
        raise ValueError(f"--folds {' '.join(folds)}: none of these trainers has a fold folder of them; folds there: "
                         f"{', '.join(find_folds(trainer_dirs)) or 'none'}.")
    return folds


# ------------------------------------------------------------------------------------- summary.json

def read_summary_json(path) -> dict:
    """nnU-Net's ``validation/summary.json`` as a dict.

    Raises:
        SummaryError: when the file is missing, empty, not valid JSON (e.g. truncated by a crash or a
            full disk), not a JSON object, or lacks one of ``metric_per_case``, ``mean``,
            ``foreground_mean``; the message names the reason.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SummaryError("no validation/summary.json (training unfinished or validation not run)") from None
    except OSError as err:
        raise SummaryError(f"validation/summary.json cannot be read ({err.strerror})") from None
    if not text.strip():
        raise SummaryError("validation/summary.json is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SummaryError(f"validation/summary.json is not valid JSON (truncated?): {err.msg} at line "
                           f"{err.lineno}") from None
    if not isinstance(data, dict):
        raise SummaryError(f"validation/summary.json holds a {type(data).__name__}, not nnU-Net's summary object")
    missing = [k for k in _SUMMARY_KEYS if k not in data]
    if missing:
        raise SummaryError(f"validation/summary.json lacks {', '.join(missing)} (not written by nnU-Net's "
                           "evaluation?)")
    return data


def metric_value(value, metric: str, where: str) -> float:
    """One value of nnU-Net's summary as a float, checked: a number (not ``true``, a string, a list or an object),
    finite or NaN (nnU-Net's NaN, or ``null``, for a class in neither reference nor prediction), in [0, 1] for an
    overlap score (:data:`OVERLAP_METRICS`), not negative for a count. ``where`` names it (``mean/1/Dice``).

    Raises:
        SummaryError: otherwise, naming ``where``, the value and what is allowed: a damaged summary never
            enters a number.
    """
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SummaryError(f"validation/summary.json: {where} = {json.dumps(value)[:40]} is not a number")
    number = float(value)
    if math.isnan(number):
        return number
    if math.isinf(number):
        raise SummaryError(f"validation/summary.json: {where} = {number} is not a finite number")
    if metric in OVERLAP_METRICS and not 0.0 <= number <= 1.0:
        raise SummaryError(f"validation/summary.json: {where} = {number:g} is outside [0, 1], where every "
                           f"{metric} lies")
    if metric not in OVERLAP_METRICS and number < 0:
        raise SummaryError(f"validation/summary.json: {where} = {number:g} is negative (a count of voxels)")
    return number


def summary_values(data: Mapping, metric: str = "Dice") -> tuple[dict, float]:
    """``({class key: value}, foreground mean)`` of ``metric`` from nnU-Net's summary (as
    :func:`read_summary_json` returns it). Keys are kept as nnU-Net writes them (``'1'``, ``'(1, 2)'``); values
    may be NaN.

    Raises:
        SummaryError: when ``mean`` or ``foreground_mean`` is not an object of metrics.
        ValueError: when the summary lacks the metric (a wrong ``metric``, not a broken file).
    """
    mean, fg = data["mean"], data[FOREGROUND]
    if not isinstance(mean, Mapping) or not all(isinstance(m, Mapping) for m in mean.values()) \
            or not isinstance(fg, Mapping):
        raise SummaryError("validation/summary.json: mean or foreground_mean is not nnU-Net's object of metrics")
    values = {}
    for key, metrics in mean.items():
        if metric not in metrics:
            raise ValueError(f"a validation/summary.json has no metric {metric!r} for class {key}; it has "
                             f"{sorted(metrics)}.")
        values[str(key)] = metric_value(metrics[metric], metric, f"mean/{key}/{metric}")
    if metric not in fg:
        raise ValueError(f"a validation/summary.json has no foreground mean of {metric!r}; it has {sorted(fg)}.")
    return values, metric_value(fg[metric], metric, f"{FOREGROUND}/{metric}")


def _case_name(reference_file) -> str:
    """The file name of a case's reference (paths written on Windows or POSIX alike)."""
    return PureWindowsPath(str(reference_file)).name


def per_case_values(data: Mapping, metric: str = "Dice") -> dict:
    """``{case: {class key: (value, n_ref)}}`` of ``metric`` from nnU-Net's ``metric_per_case``.

    A case is named by the file name of its ``reference_file`` (the same for every trainer of a dataset,
    wherever the results were computed); ``n_ref`` is the reference's voxel count of the class (None when
    the summary lacks it).

    Raises:
        SummaryError: when ``metric_per_case`` is not nnU-Net's list of cases, or two cases share a
            reference file name.
    """
    entries = data["metric_per_case"]
    if not isinstance(entries, list):
        raise SummaryError("validation/summary.json: metric_per_case is not a list of cases")
    cases = {}
    for i, entry in enumerate(entries):
        try:
            name = _case_name(entry["reference_file"])
            where = f"metric_per_case/{i}/metrics"
            values = {str(k): (metric_value(m[metric], metric, f"{where}/{k}/{metric}"),
                               None if m.get("n_ref") is None
                               else metric_value(m["n_ref"], "n_ref", f"{where}/{k}/n_ref"))
                      for k, m in entry["metrics"].items()}
        except SummaryError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise SummaryError(f"validation/summary.json: case {i} of metric_per_case is not nnU-Net's "
                               f"({type(err).__name__}: {err})") from None
        if name in cases:
            raise SummaryError(f"validation/summary.json: two cases have the reference file name {name}")
        cases[name] = values
    return cases


def absent_from_reference(summary) -> dict:
    """``{class key: false-positive voxels}`` for the classes of one summary (a dict, or the path of a
    summary.json) that no validation case's reference contains (nnU-Net's mean ``n_ref`` is 0).
    Summaries without ``n_ref`` give ``{}``."""
    data = summary if isinstance(summary, Mapping) else json.loads(Path(summary).read_text(encoding="utf-8"))
    absent = {}
    for key, metrics in data.get("mean", {}).items():
        n_ref = metrics.get("n_ref") if isinstance(metrics, dict) else None
        if n_ref is not None and float(n_ref) == 0.0:
            cases = len(data.get("metric_per_case") or []) or 1
            absent[str(key)] = float(metrics.get("FP") or 0.0) * cases  # the mean FP times the cases
    return absent


# ------------------------------------------------------------------------------------- dataset.json

def label_names(dataset_json: dict) -> dict:
    """``{summary key: name}`` from dataset.json ``labels`` (label values and region lists alike)."""
    return {label_key(value): name for name, value in (dataset_json.get("labels") or {}).items() if name != "ignore"}


def read_label_names(trainer_dirs: Sequence) -> dict:
    """:func:`label_names` of the ``dataset.json`` nnU-Net copies into each trainer folder: of the first of
    ``trainer_dirs`` whose file gives any; ``{}`` when none does."""
    for d in trainer_dirs:
        path = Path(d) / "dataset.json"
        if path.is_file():
            try:
                names = label_names(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, TypeError, AttributeError, OSError):
                names = {}
            if names:
                return names
    return {}
