"""Learning curves from nnU-Net's own training logs, without loading any network weights.

The library side of ``nnunet-polydice curves``; no argparse, no printing.

Input: the ``training_log_<Y>_<M>_<D>_<h>_<m>_<s>.txt`` files of each
``$nnUNet_results/<DatasetXXX_Name>/<trainer>__<plans>__<configuration>/fold_<f>/``. nnU-Net's
``nnUNetTrainer.print_to_log_file`` writes every line as ``<datetime>: <args joined by spaces> ``, and per
epoch (``on_train_epoch_start``, ``on_epoch_end``)::

    2024-05-01 12:00:00.000001: Epoch 3
    2024-05-01 12:00:00.000002: Current learning rate: 0.00973
    2024-05-01 12:00:09.000003: train_loss -0.3012
    2024-05-01 12:00:09.000004: val_loss -0.2871
    2024-05-01 12:00:09.000005: Pseudo dice [np.float32(0.7312), np.float32(0.4021)]
    2024-05-01 12:00:09.000006: Epoch time: 9.12 s
    2024-05-01 12:00:09.000007: Yayy! New best EMA pseudo Dice: 0.4113

(numpy < 2 prints the pseudo Dice as ``[0.7312, 0.4021]``; a class without any voxel in the validation
batches and none predicted is ``nan``). The values are rounded to 4 decimals by nnU-Net.

EMA: nnU-Net's logger (``nnunetv2/training/logging/nnunet_logger.py``, ``MetaLogger.log``) keeps, per
epoch t, the mean foreground pseudo Dice ``m_t = nanmean_c(pseudo Dice_c)`` and its exponential moving
average ``ema_0 = m_0``, ``ema_t = 0.9 * ema_(t-1) + 0.1 * m_t``; nnU-Net's checkpoint_best is the epoch
of the highest ``ema_t``. :func:`ema` recomputes it exactly so from the logged values (which differ from
nnU-Net's unrounded ones by at most 5e-5 per class).

Resumed trainings (``nnUNetv2_train ... --c``) write a new log file; nnU-Net restores the logger from a
checkpoint and goes on from the epoch after it. :func:`merge_logs` follows that: the files in the order
of the time in their names; a file that starts at epoch s replaces every epoch >= s of the earlier ones
(the later file wins), so that the merged history is the one nnU-Net's logger holds.

Output (:func:`write_outputs`): one PNG per class (the pseudo Dice of each trainer per epoch: the mean
over its folds, a band from the lowest to the highest fold; the seeded runs of one setting, ``_s<N>`` names,
are one line and band over all their (fold, seed) runs, :meth:`Curves.settings`), one of the EMA of the foreground-mean
pseudo Dice with the threshold, ``curves.md`` and ``curves.csv`` (per trainer and fold: epochs, last and
best EMA, the epochs until the EMA first reaches the threshold) and ``curves_epochs.csv`` (every epoch).
Files are written under :class:`nnunet_polydice.experiments.outputs.OwnedFolder` (``.polydice_curves.json``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_polydice.experiments import outputs
from nnunet_polydice.experiments.layout import (
    find_configurations,
    find_trainers,
    fold_in,
    label_names,
    select_folds,
    trainer_folder,
)
from nnunet_polydice.experiments.outputs import file_slug
from nnunet_polydice.experiments.runs import fold_status
from nnunet_polydice.integration.conventions import EMA_DECAY, ema_series, label_key
from nnunet_polydice.integration.naming import setting_and_seed

__all__ = ["DEFAULT_THRESHOLD", "EMA_DECAY", "FIGSIZE", "DPI", "Epoch", "FoldCurve", "Curves", "PlottedLine",
           "parse_log", "log_files", "merge_logs", "mean_foreground", "ema", "epochs_to_reach", "class_names",
           "collect", "default_out_dir", "write_outputs"]

#: The EMA pseudo Dice the table's "epochs until" column waits for, unless given.
DEFAULT_THRESHOLD = 0.1
#: Size of every PNG: FIGSIZE inches at DPI dots per inch (800 x 500 pixels).
FIGSIZE = (8.0, 5.0)
DPI = 100
STATE_WORDS = {"skip": "finished", "foreign": "copied in", "pruned": "pruned", "validate": "trained, not validated",
               "continue": "not finished", "fresh": "no checkpoint yet"}

_LINE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2} \d{1,2}:\d{2}:\d{2}(?:\.\d+)?: (.*?)\s*$")
_NUMPY_SCALAR = re.compile(r"np\.\w+\(([^()]*)\)")
_NUMBER = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"


@dataclass
class Epoch:
    """What nnU-Net logged for one epoch (None: that line is not in the log)."""

    epoch: int
    learning_rate: float | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    pseudo_dice: list | None = None  # per class (or region), in nnU-Net's order
    seconds: float | None = None
    best_ema: float | None = None  # "Yayy! New best EMA pseudo Dice": nnU-Net's own ema_t, rounded

    @property
    def complete(self) -> bool:
        """True once the validation of the epoch was logged (its pseudo Dice)."""
        return self.pseudo_dice is not None


@dataclass
class FoldCurve:
    """One trainer x fold: its merged epochs and what was found on the way."""

    trainer: str
    fold: str
    state: str  # nnunet_polydice.experiments.runs state of the fold folder
    files: list  # the training_log_*.txt read, oldest first
    epochs: list  # complete Epochs 0, 1, ... without a gap (see notes)
    notes: list = field(default_factory=list)

    @property
    def mean_fg(self) -> list:
        return [mean_foreground(e.pseudo_dice) for e in self.epochs]

    @property
    def ema(self) -> list:
        return ema(self.mean_fg)

    def epochs_to(self, threshold: float) -> int | None:
        return epochs_to_reach(self.ema, threshold)


@dataclass(frozen=True)
class PlottedLine:
    """One line of a figure: the trainer it shows, its colour (RGB, 0..1) and its points."""

    trainer: str
    color: tuple
    x: tuple
    y: tuple


@dataclass
class Curves:
    dataset: str
    configuration: str
    plans: str
    trainers: list
    folds: list
    classes: list  # names, in nnU-Net's pseudo Dice order
    runs: list  # FoldCurve, trainers outer, folds inner
    missing: list  # (trainer, fold, reason)
    threshold: float = DEFAULT_THRESHOLD

    def runs_of(self, trainer: str) -> list:
        return [r for r in self.runs if r.trainer == trainer]

    def settings(self) -> list[tuple[str, str, bool, list]]:
        """What the plots draw, one line and band each: ``[(label, setting, seeded, trainers)]``. The seeded
        runs (``_s<N>`` names) of one setting are one entry labelled ``<setting> (seeds 0,1,2)``; its unseeded
        runs another, never pooled with them; names of one setting (a family name and its explicit default
        name) are one entry, labelled by the name when only one was trained, else by the setting."""
        groups: dict = {}
        for t in self.trainers:
            setting, seed = setting_and_seed(t)
            groups.setdefault((setting, seed is not None), []).append((seed, t))
        out = []
        for (setting, seeded), members in groups.items():
            if seeded:
                label = f"{setting} (seeds {','.join(str(s) for s in sorted({s for s, _ in members}))})"
            else:
                label = members[0][1] if len(members) == 1 else setting
            out.append((label, setting, seeded, [t for _, t in members]))
        return out

    # ------------------------------------------------------------------------------ the table
    def fold_summary(self, run: FoldCurve) -> tuple:
        """``(last EMA, best EMA, its epoch index, epochs until EMA >= threshold)`` of one fold (None: none)."""
        emas = run.ema
        finite = [i for i, v in enumerate(emas) if not math.isnan(v)]
        best = max(finite, key=lambda i: emas[i]) if finite else None
        return (emas[-1] if emas and not math.isnan(emas[-1]) else None, None if best is None else emas[best], best,
                run.epochs_to(self.threshold))

    def records(self) -> list[dict]:
        """The table's content, unformatted: per fold ``trainer, fold, state, epochs, last, best, best_epoch,
        until, reaching (None), files``; then per trainer a ``mean`` record: epochs and last EMA over its folds,
        ``until`` over the folds that reach the threshold (None when none does), ``reaching = (k, folds)``."""
        out = []
        for trainer in self.trainers:
            runs = self.runs_of(trainer)
            if not runs:
                continue
            for r in runs:
                last, best, at, until = self.fold_summary(r)
                out.append(dict(trainer=trainer, fold=r.fold, state=r.state, epochs=len(r.epochs), last=last, best=best,
                                best_epoch=at, until=until, reaching=None, files=[p.name for p in r.files]))
            lasts = [rec["last"] for rec in out[-len(runs):] if rec["last"] is not None]
            reached = [rec["until"] for rec in out[-len(runs):] if rec["until"] is not None]
            epochs = statistics.fmean(len(r.epochs) for r in runs)
            out.append(dict(trainer=trainer, fold="mean", state="", epochs=epochs,
                            last=statistics.fmean(lasts) if lasts else None, best=None, best_epoch=None,
                            until=statistics.fmean(reached) if reached else None, reaching=(len(reached), len(runs)),
                            files=[]))
        return out

    def table(self) -> list:
        """Rows ``[trainer, fold, state, epochs, last EMA, best EMA (epoch), epochs until EMA >= X]`` of
        :meth:`records`, as text."""
        num = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        rows = []
        for rec in self.records():
            if rec["reaching"] is None:
                rows.append([rec["trainer"], rec["fold"], STATE_WORDS.get(rec["state"], rec["state"]),
                             str(rec["epochs"]), num(rec["last"]),
                             "-" if rec["best"] is None else f"{rec['best']:.4f} ({rec['best_epoch']})",
                             "never" if rec["until"] is None else str(rec["until"])])
            else:
                k, n = rec["reaching"]
                until = "never" if rec["until"] is None else f"{rec['until']:.1f}"
                rows.append([rec["trainer"], "mean", "", f"{rec['epochs']:.1f}", num(rec["last"]), "",
                             f"{until} ({k}/{n} folds)"])
        return rows

    def header(self) -> list:
        return ["trainer", "fold", "state", "epochs", "last EMA", "best EMA (epoch)",
                f"epochs until EMA >= {self.threshold:g}"]

    def legend(self) -> list:
        return ["From nnU-Net's training_log_*.txt of each fold (no weights loaded). EMA: nnU-Net's moving average "
                "of the foreground-mean pseudo Dice, ema_0 = m_0, ema_t = 0.9 ema_(t-1) + 0.1 m_t, m_t the nanmean "
                "over classes of the epoch's logged pseudo Dice (4 decimals).",
                f"epochs until EMA >= {self.threshold:g}: the number of epochs trained when the EMA first reached "
                f"{self.threshold:g} (epoch index + 1); never: not within the logged epochs. mean: over the folds "
                f"that reach it (how many in brackets); epochs and last EMA: over all folds.",
                "best EMA (epoch): the highest EMA and its epoch index, the epoch of nnU-Net's checkpoint_best.",
                "Plots: line = mean over the folds that logged the epoch; band = lowest to highest fold value. "
                "The seeded runs of one setting (<setting>_s<N>) are one line and band, '(seeds ...)': mean and "
                "lowest..highest over all its (fold, seed) runs, pooled; its unseeded runs are a line of their own "
                "in the same colour (solid; seeded dashed). Names of one setting are one line (a fold trained under "
                "both names adds both runs)."]

    def title(self) -> str:
        return (f"{self.dataset}, {self.configuration}, plans {self.plans}: learning curves, folds "
                f"{', '.join(self.folds) or '-'}")

    def text(self) -> str:
        header, body = self.header(), self.table()
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
        lines = [self.title(), "", "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
        lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)).rstrip() for b in body]
        lines += ["", *self.legend(), "", *self._missing_lines("  ")]
        return "\n".join(lines) + "\n"

    def _missing_lines(self, bullet: str, heading: str = "") -> list:
        notes = [f"{r.trainer} / fold {r.fold}: {n}" for r in self.runs for n in r.notes]
        items = [f"{t} / fold {f}: {why}" for t, f, why in self.missing] + notes
        if not items:
            return [f"{heading}Missing and notes: none."]
        return [f"{heading}Missing and notes ({len(items)}):", *([""] if heading else []),
                *[f"{bullet}{i}" for i in items]]

    def markdown(self, images: Sequence[str] = ()) -> str:
        header, body = self.header(), self.table()
        lines = [f"# {self.title()}", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join("---" for _ in header) + "|", *["| " + " | ".join(b) + " |" for b in body], "",
                 *self.legend(), "", *self._missing_lines("- ", "## ")]
        if images:
            lines += ["", "## Plots", "", *[f"![{Path(p).stem}]({Path(p).name})" for p in images]]
        return "\n".join(lines) + "\n"

    def csv_text(self) -> str:
        """One line per trainer x fold, plus a ``mean`` line per trainer: the table's columns, unformatted."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["trainer", "fold", "state", "epochs", "last_ema", "best_ema", "best_ema_epoch", "threshold",
                    "epochs_to_threshold", "folds_reaching", "log_files"])
        num = lambda v: "" if v is None else repr(float(v))  # noqa: E731
        for rec in self.records():
            reaching = "" if rec["reaching"] is None else "{}/{}".format(*rec["reaching"])
            w.writerow([rec["trainer"], rec["fold"], rec["state"], rec["epochs"], num(rec["last"]), num(rec["best"]),
                        "" if rec["best_epoch"] is None else rec["best_epoch"], self.threshold,
                        "never" if rec["until"] is None else rec["until"], reaching, ";".join(rec["files"])])
        return buf.getvalue()

    def epochs_csv(self) -> str:
        """Every logged epoch of every fold: losses, learning rate, pseudo Dice per class, their mean, the EMA."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["trainer", "fold", "epoch", "learning_rate", "train_loss", "val_loss",
                    *[f"pseudo_dice_{c}" for c in self.classes], "mean_fg_pseudo_dice", "ema_fg_pseudo_dice"])
        num = lambda v: "" if v is None else repr(float(v))  # noqa: E731
        for r in self.runs:
            for e, m, a in zip(r.epochs, r.mean_fg, r.ema):
                dice = list(e.pseudo_dice) + [None] * (len(self.classes) - len(e.pseudo_dice))
                w.writerow([r.trainer, r.fold, e.epoch, num(e.learning_rate), num(e.train_loss), num(e.val_loss),
                            *[num(v) for v in dice[: len(self.classes)]], num(m), num(a)])
        return buf.getvalue()


# ---------------------------------------------------------------------------------------- parsing

def _values(text: str) -> list:
    """``'[np.float32(0.5), nan]'`` or ``'[0.5, nan]'`` -> ``[0.5, nan]``."""
    inner = _NUMPY_SCALAR.sub(r"\1", text.strip())
    if not (inner.startswith("[") and inner.endswith("]")):
        raise ValueError(f"not a list of numbers: {text!r}")
    return [float(v) for v in inner[1:-1].split(",") if v.strip()]


def parse_log(text: str) -> list[Epoch]:
    """The epochs of one nnU-Net training log, in the order they appear (complete or not).

    Lines that are not nnU-Net's per-epoch lines (the plans, warnings, validation output) are skipped; a
    line that belongs to no ``Epoch N`` is ignored.
    """
    epochs: list[Epoch] = []
    current: Epoch | None = None
    patterns = (
        (re.compile(rf"Current learning rate: {_NUMBER}"), "learning_rate"),
        (re.compile(rf"train_loss {_NUMBER}"), "train_loss"),
        (re.compile(rf"val_loss {_NUMBER}"), "val_loss"),
        (re.compile(rf"Epoch time: {_NUMBER} s"), "seconds"),
        (re.compile(rf"Yayy! New best EMA pseudo Dice: {_NUMBER}"), "best_ema"),
    )
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        body = m.group(1)
        start = re.fullmatch(r"Epoch (\d+)", body)
        if start:
            current = Epoch(int(start.group(1)))
            epochs.append(current)
            continue
        if current is None:
            continue
        if body.startswith("Pseudo dice "):
            try:
                current.pseudo_dice = _values(body[len("Pseudo dice "):])
            except ValueError:
                pass
            continue
        for pattern, attr in patterns:
            value = pattern.fullmatch(body)
            if value:
                setattr(current, attr, float(value.group(1)))
                break
    return epochs


def _log_time(path: Path) -> tuple:
    """The time in nnU-Net's log file name (``training_log_2024_5_1_09_03_07.txt``; month and day are not
    zero-padded, so the names do not sort as text), then the name."""
    numbers = re.findall(r"\d+", path.name)
    return tuple(int(n) for n in numbers), path.name


def log_files(fold_dir) -> list[Path]:
    """The ``training_log_*.txt`` of a fold folder, oldest first (by the time in the name)."""
    folder = Path(fold_dir)
    return sorted((p for p in folder.glob("training_log_*.txt") if p.is_file()), key=_log_time) \
        if folder.is_dir() else []


def merge_logs(logs: Sequence[Sequence[Epoch]]) -> list[Epoch]:
    """One history from the epochs of several logs of one fold, oldest log first.

    A log whose first ``Epoch`` line is epoch s (a resumed training starts after its checkpoint) drops
    every epoch >= s of the earlier logs; its complete epochs are then added (the later file wins).
    Incomplete epochs (no pseudo Dice: the run stopped within the epoch) are left out. Returns the
    complete epochs sorted by number.
    """
    merged: dict[int, Epoch] = {}
    for epochs in logs:
        if not epochs:
            continue
        start = epochs[0].epoch
        merged = {n: e for n, e in merged.items() if n < start}
        merged.update((e.epoch, e) for e in epochs if e.complete)
    return [merged[n] for n in sorted(merged)]


def mean_foreground(pseudo_dice: Sequence[float]) -> float:
    """``nanmean`` of the per-class pseudo Dice, as nnU-Net's ``mean_fg_dice`` (NaN when all are NaN)."""
    values = [v for v in pseudo_dice if not math.isnan(v)]
    return statistics.fmean(values) if values else math.nan


def ema(values: Sequence[float], decay: float = EMA_DECAY) -> list[float]:
    """nnU-Net's moving average (:func:`nnunet_polydice.integration.conventions.ema_series`): ``ema_0 = v_0``,
    ``ema_t = decay * ema_(t-1) + (1 - decay) * v_t``. A NaN value makes every later value NaN, as in nnU-Net's
    logger (whose ``ema_fg_dice`` this recomputes; the pruner's per-label signal skips NaN instead)."""
    return ema_series(values, decay)


def epochs_to_reach(values: Sequence[float], threshold: float) -> int | None:
    """The number of epochs (index + 1) after which ``values`` first is ``>= threshold``; None if never."""
    return next((i + 1 for i, v in enumerate(values) if v >= threshold), None)


def class_names(dataset_json: dict) -> list[str] | None:
    """Names of nnU-Net's pseudo Dice entries, in its order: the foreground labels sorted by value, or the
    foreground regions in ``dataset.json`` order (nnU-Net's ``LabelManager``); None if unreadable."""
    try:
        from nnunetv2.utilities.label_handling.label_handling import LabelManager

        lm = LabelManager(dataset_json["labels"], dataset_json.get("regions_class_order"))
        keys = lm.foreground_regions if lm.has_regions else lm.foreground_labels
        names = label_names(dataset_json)
        return [names.get(label_key(k), str(k)) for k in keys]
    except (KeyError, TypeError, ValueError, AttributeError, AssertionError, RuntimeError):
        return None  # a malformed dataset.json: numbered classes instead


# ---------------------------------------------------------------------------------------- collecting

def collect(results, dataset_name: str, configuration: str, *, plans: str = "nnUNetPlans",
            trainers: Sequence[str] | None = None, folds: Sequence | None = None,
            threshold: float = DEFAULT_THRESHOLD) -> Curves:
    """Find and read the training logs of every trainer x fold (no weights are loaded).

    Args:
        results: ``$nnUNet_results``.
        trainers: default every ``<trainer>__<plans>__<configuration>`` folder of the dataset.
        folds: default the union of their ``fold_<f>`` folders.
        threshold: the EMA pseudo Dice of the table's "epochs until" column.

    Raises:
        ValueError: (one sentence, before any log is read) when the dataset has no results folder, no
            trainer folder of this configuration and plans, a requested trainer has none, no requested fold
            has a fold folder (:func:`layout.select_folds`), or no training_log_*.txt is found at all.
    """
    dataset_dir = Path(results) / dataset_name
    if not dataset_dir.is_dir():
        raise ValueError(f"{dataset_dir} does not exist: no results of {dataset_name} in nnUNet_results.")
    found = find_trainers(dataset_dir, plans, configuration)
    if not found:
        configs = find_configurations(dataset_dir, plans)
        raise ValueError(f"no trainer folders *__{plans}__{configuration} in {dataset_dir}; configurations with "
                         f"plans {plans} there: {', '.join(configs) or 'none'} (check the configuration and "
                         f"-p/--plans).")
    trainers = list(dict.fromkeys(trainers)) if trainers else found
    unknown = [t for t in trainers if t not in found]
    if unknown:
        raise ValueError(f"--trainers {unknown[0]} has no results folder {unknown[0]}__{plans}__{configuration}; "
                         f"trainers with results: {', '.join(found)}.")
    tdir = {t: trainer_folder(results, dataset_name, t, plans, configuration) for t in trainers}
    folds = select_folds(list(tdir.values()), folds)
    files = {(t, f): log_files(fold_in(tdir[t], f)) for t in trainers for f in folds}
    if not any(files.values()):
        raise ValueError(f"no training_log_*.txt in the fold folders of {', '.join(trainers)} "
                         f"(folds {', '.join(folds) or 'none'}) in {dataset_dir}: nothing trained yet?")

    names = None
    for t in trainers:
        ds_json = tdir[t] / "dataset.json"
        if names is None and ds_json.is_file():
            try:
                names = class_names(json.loads(ds_json.read_text(encoding="utf-8")))
            except ValueError:
                names = None
    runs, missing = [], []
    n_classes = 0
    for t in trainers:
        for f in folds:
            fold_dir = fold_in(tdir[t], f)
            if not files[(t, f)]:
                missing.append((t, f, "no training_log_*.txt" + ("" if fold_dir.is_dir() else " (no fold folder)")))
                continue
            logs = [parse_log(p.read_text(encoding="utf-8", errors="replace")) for p in files[(t, f)]]
            epochs = merge_logs(logs)
            run = FoldCurve(t, f, fold_status(fold_dir).state, files[(t, f)], epochs)
            if not epochs:
                missing.append((t, f, "training logs without a finished epoch"))
                continue
            gap = next((i for i, e in enumerate(epochs) if e.epoch != i), None)
            if gap == 0:
                missing.append((t, f, f"the logs start at epoch {epochs[0].epoch}, not 0 (an earlier training_log "
                                      f"deleted?): the EMA cannot be recomputed"))
                continue
            if gap is not None:
                run.notes.append(f"the logs lack epoch {gap} (a training_log deleted?): curves and EMA up to epoch "
                                 f"{gap - 1} only")
                run.epochs = epochs[:gap]
            n_classes = max(n_classes, *(len(e.pseudo_dice) for e in run.epochs))
            runs.append(run)
    if names is None or len(names) != n_classes:
        names = [f"class {i + 1}" for i in range(n_classes)]
    return Curves(dataset_name, configuration, plans, trainers, folds, names, runs, missing, threshold)


# ---------------------------------------------------------------------------------------- plotting

def _band(runs: Sequence[FoldCurve], values) -> tuple[list, list, list, list]:
    """``(epochs, mean, low, high)`` over the folds that logged each epoch (NaN values left out)."""
    by_epoch: dict[int, list] = {}
    for run in runs:
        for e, v in zip(run.epochs, values(run)):
            if not math.isnan(v):
                by_epoch.setdefault(e.epoch, []).append(v)
    xs = sorted(by_epoch)
    return (xs, [statistics.fmean(by_epoch[x]) for x in xs], [min(by_epoch[x]) for x in xs],
            [max(by_epoch[x]) for x in xs])


def _colors(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [tuple(float(c) for c in cmap(i % cmap.N)[:3]) for i in range(n)]


def _plot(path: Path, curves: Curves, values, title: str, ylabel: str, threshold: float | None = None) -> list:
    """One figure: a line (mean over folds) and a band (lowest..highest fold) per entry of
    :meth:`Curves.settings` (the seeds of a setting pooled into one). Returns the lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=FIGSIZE)
    lines = []
    styles = ["-", "--", ":", "-."]
    groups = curves.settings()
    settings = list(dict.fromkeys(setting for _, setting, _, _ in groups))
    colors = dict(zip(settings, _colors(len(settings))))  # one colour per setting, seeded or not
    for label, setting, seeded, members in groups:
        i, color = settings.index(setting), colors[setting]
        xs, mean, low, high = _band([r for t in members for r in curves.runs_of(t)], values)
        if not xs:
            continue
        if len(xs) == 1 and low[0] != high[0]:  # one epoch: the band as a bar (fill_between needs two)
            ax.vlines(xs, low, high, color=color, alpha=0.3, linewidth=8, zorder=1)
        elif any(lo != hi for lo, hi in zip(low, high)):
            ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0, zorder=1)
        (line,) = ax.plot(xs, mean, color=color, linestyle=styles[(i // 20 + seeded) % len(styles)], linewidth=2,
                          marker="o" if len(xs) <= 30 else None, markersize=4, label=label, zorder=3)
        lines.append(PlottedLine(label, color, tuple(line.get_xdata()), tuple(line.get_ydata())))
    if threshold is not None:
        ax.axhline(threshold, color="black", linestyle=":", linewidth=1, label=f"threshold {threshold:g}")
    last = max((line.x[-1] for line in lines), default=0)
    ax.set_xlim(-0.5, max(last, 1) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return lines


def _figures(curves: Curves) -> list:
    """``[(file name, values of a run, title, y label, threshold)]``."""
    band = "line: mean over folds; band: lowest..highest fold"
    figs = []
    slugs: list = []
    for i, name in enumerate(curves.classes):
        slug = file_slug(name)
        slug = slug if slug not in slugs else f"{slug}_{i + 1}"
        slugs.append(slug)
        figs.append((f"curves_pseudo_dice_{slug}.png",
                     lambda run, i=i: [e.pseudo_dice[i] if i < len(e.pseudo_dice) else math.nan for e in run.epochs],
                     f"{curves.dataset} {curves.configuration}\nvalidation pseudo Dice, {name}\n{band}",
                     f"pseudo Dice ({name})", None))
    figs.append(("curves_ema_pseudo_dice.png", lambda run: run.ema,
                 f"{curves.dataset} {curves.configuration}\nEMA of the foreground-mean pseudo Dice (nnU-Net's "
                 f"checkpoint_best criterion)\n{band}", "EMA pseudo Dice", curves.threshold))
    return figs


# ---------------------------------------------------------------------------------------- writing

def default_out_dir(results, dataset_name: str, configuration: str, plans: str = "nnUNetPlans") -> Path:
    """``<results>/<dataset>/polydice_curves_<configuration>`` (with the plans for other plans than nnUNetPlans)."""
    return outputs.default_out_dir(results, dataset_name, configuration, plans, "curves")


def write_outputs(curves: Curves, out_dir) -> tuple[list[Path], dict]:
    """Write the PNGs, ``curves.md``, ``curves.csv`` and ``curves_epochs.csv`` into ``out_dir``.

    Only files this tool wrote before (listed in ``.polydice_curves.json``) are overwritten.

    Returns:
        ``(paths written, {PNG file name: [PlottedLine, one per trainer with data]})``.

    Raises:
        FileExistsError: when a file to be written exists and was not written by this tool; nothing is
            written then.
    """
    folder = outputs.OwnedFolder(out_dir, "curves")
    figures = _figures(curves)
    targets = ["curves.md", "curves.csv", "curves_epochs.csv", *[f[0] for f in figures]]
    folder.claim(targets)
    plotted = {}
    for name, values, title, ylabel, threshold in figures:
        plotted[name] = _plot(folder.out_dir / name, curves, values, title, ylabel, threshold)
    (folder.out_dir / "curves.csv").write_text(curves.csv_text(), encoding="utf-8")
    (folder.out_dir / "curves_epochs.csv").write_text(curves.epochs_csv(), encoding="utf-8")
    (folder.out_dir / "curves.md").write_text(curves.markdown([f[0] for f in figures]), encoding="utf-8")
    folder.commit(targets)
    return [folder.out_dir / t for t in targets], plotted
