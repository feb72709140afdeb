"""Compare trained settings from nnU-Net's own validation summaries.

The library side of ``nnunet-polydice compare``; no argparse, no printing.

Input: ``$nnUNet_results/<DatasetXXX_Name>/<trainer>__<plans>__<configuration>/fold_<f>/validation/summary.json``
as nnU-Net writes it (``nnunetv2.evaluation.evaluate_predictions.compute_metrics_on_folder``)::

    {"foreground_mean": {"Dice": ..., "IoU": ..., ...},
     "mean": {"1": {"Dice": ..., ...}, "2": {...}},          # label value as a string, or
             {"(1, 2, 3)": {...}, "(3,)": {...}},              # region tuple as a string (region-based)
     "metric_per_case": [...]}

Output: a :class:`Comparison`, one :class:`Row` per trainer, with for each class (and for the
foreground mean) the mean over folds, the sample standard deviation (``ddof = 1``; none with one
fold), the number of folds, and the difference of the mean to the reference trainer's mean
(:func:`reference_for`). Class names come from the ``labels`` of the ``dataset.json`` that nnU-Net
copies into each trainer folder (falling back to the summary's key).

What is missing is never dropped silently: a requested trainer without a results folder, a fold that
was not trained, a fold without ``validation/summary.json`` and a class whose value is NaN in a fold
(nnU-Net's mean is NaN when a class is in neither reference nor prediction of any validation case)
all go to :attr:`Comparison.missing`; rows with fewer folds than compared are marked.

A class absent from the reference of every validation case of a fold (nnU-Net's mean ``n_ref`` is 0)
has no overlap score in that fold: nnU-Net writes Dice 0 when anything was predicted there (a false
positive) and NaN when nothing was. With contiguous-block folds of a structure that only part of the
volume contains, that 0 would be averaged with real Dice values of the other folds. So for the overlap
metrics (:data:`OVERLAP_METRICS`) such a fold is left out of that class's cell and reported in
:attr:`Comparison.missing` (with the false-positive voxels, if any); other metrics (FP, n_pred, ...)
keep it. The foreground-mean column is nnU-Net's own ``foreground_mean`` of each fold, unchanged.

Files (:func:`write_outputs`): ``comparison.md``, ``comparison.csv`` and, for each Poly family with at
least two (K, epsilon) settings, one K x epsilon heat map per class
(``heatmap_<family>[_a<A>_b<B>][_<E>ep<I>it]_<metric>_<class>.png``). The files written are listed in
``.polydice_compare.json`` in the output folder; a later run overwrites (and, when no longer produced,
removes) only files listed there, and refuses to overwrite any other file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from nnunet_polydice.integration.naming import (
    format_k,
    format_number,
    parse_trainer_name,
    schedule_suffix,
    split_schedule,
)

__all__ = [
    "MANIFEST",
    "Cell",
    "Row",
    "Missing",
    "Comparison",
    "find_trainers",
    "find_folds",
    "read_summary",
    "absent_from_reference",
    "label_names",
    "reference_for",
    "compare",
    "heatmap_groups",
    "write_outputs",
    "default_out_dir",
]

#: Name of the file, in the output folder, that lists the files this tool wrote.
MANIFEST = ".polydice_compare.json"
FOREGROUND = "foreground_mean"
#: Metrics that score overlap with the reference: undefined for a class the fold's reference lacks.
OVERLAP_METRICS = frozenset({"Dice", "IoU"})


@dataclass
class Cell:
    """One trainer x class: the values per fold and their summary (NaN folds are left out)."""

    values: dict = field(default_factory=dict)  # fold -> value

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values.values()) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over folds (ddof = 1); None with fewer than two folds."""
        return statistics.stdev(self.values.values()) if len(self.values) >= 2 else None


@dataclass
class Row:
    trainer: str
    folds: list = field(default_factory=list)  # folds with a summary.json
    cells: dict = field(default_factory=dict)  # class key (or FOREGROUND) -> Cell
    reference: str | None = None
    diffs: dict = field(default_factory=dict)  # class key (or FOREGROUND) -> float | None

    @property
    def n_folds(self) -> int:
        return len(self.folds)

    @property
    def spec(self):
        try:
            return parse_trainer_name(self.trainer)
        except ValueError:
            return None


@dataclass(frozen=True)
class Missing:
    trainer: str
    fold: str | None  # None: the whole trainer
    reason: str

    def __str__(self) -> str:
        where = self.trainer if self.fold is None else f"{self.trainer} / fold {self.fold}"
        return f"{where}: {self.reason}"


@dataclass
class Comparison:
    dataset: str
    configuration: str
    plans: str
    metric: str
    reference: str
    folds: list
    classes: list  # [(key, name)]
    rows: list
    missing: list

    # ------------------------------------------------------------------------------ lookups
    def row(self, trainer: str) -> Row:
        for r in self.rows:
            if r.trainer == trainer:
                return r
        raise KeyError(trainer)

    def columns(self) -> list:
        """``[(key, title)]``: the classes, then the foreground mean."""
        return [*self.classes, (FOREGROUND, "foreground mean")]

    def incomplete(self, row: Row) -> bool:
        return row.n_folds < len(self.folds)

    # ------------------------------------------------------------------------------ rendering
    def _cell_text(self, row: Row, key) -> str:
        cell = row.cells.get(key)
        if cell is None or cell.n == 0:
            return "-"
        text = f"{cell.mean:.4f}"
        if cell.std is not None:
            text += f" ± {cell.std:.4f}"
        if cell.n < row.n_folds:
            text += f" [n={cell.n}]"
        diff = row.diffs.get(key)
        if diff is not None and row.reference != row.trainer:
            text += f" ({round(diff, 4) + 0.0:+.4f})"  # + 0.0: no '-0.0000' from rounding noise
        return text

    def _table(self) -> tuple[list, list]:
        header = ["trainer", "folds", *[t for _, t in self.columns()], "reference"]
        body = []
        for row in self.rows:
            name = row.trainer + (" *" if self.incomplete(row) else "")
            body.append([name, f"{row.n_folds}/{len(self.folds)}", *[self._cell_text(row, k) for k, _ in self.columns()],
                         row.reference or "-"])
        return header, body

    def _legend(self) -> list:
        lines = [f"Cells: mean ± sample standard deviation over folds of the validation {self.metric} "
                 f"(nnU-Net's validation/summary.json), (difference of the mean to the reference's mean)."]
        if any(self.incomplete(r) for r in self.rows):
            lines.append(f"* fewer than the {len(self.folds)} folds compared ({', '.join(self.folds)}); "
                         f"see Missing.")
        lines.append("foreground mean: nnU-Net's foreground_mean of each fold (over all classes, as nnU-Net's "
                     "model selection uses it), then averaged over folds.")
        if any(c.n < r.n_folds for r in self.rows for c in r.cells.values()):
            lines.append("[n=...] folds in which this class's value was NaN, or the class was absent from every "
                         "validation reference, are left out of that cell (see Missing).")
        return lines

    def title(self) -> str:
        return (f"{self.dataset}, {self.configuration}, plans {self.plans}: validation {self.metric}, "
                f"folds {', '.join(self.folds) or '-'}, reference {self.reference}")

    def text(self) -> str:
        """A plain-text table, the legend and the Missing list."""
        header, body = self._table()
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
        lines = [self.title(), ""]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
        lines += ["", *self._legend(), ""]
        if self.missing:
            lines.append(f"Missing ({len(self.missing)}):")
            lines += [f"  {m}" for m in self.missing]
        else:
            lines.append("Missing: none.")
        return "\n".join(lines) + "\n"

    def markdown(self, images: Sequence[str] = ()) -> str:
        header, body = self._table()
        esc = lambda s: s.replace("|", "\\|")  # noqa: E731
        lines = [f"# Comparison: {esc(self.title())}", ""]
        lines.append("| " + " | ".join(esc(h) for h in header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        lines += ["| " + " | ".join(esc(v) for v in b) + " |" for b in body]
        lines += ["", *self._legend(), "", "## Missing", ""]
        if self.missing:
            lines += [f"- {esc(str(m))}" for m in self.missing]
        else:
            lines.append("None.")
        if images:
            lines += ["", "## Heat maps", ""]
            lines += [f"![{Path(p).stem}]({Path(p).name})" for p in images]
        return "\n".join(lines) + "\n"

    def csv_text(self) -> str:
        """Long format: one line per trainer x class (and foreground mean)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["trainer", "family", "K", "epsilon", "alpha", "beta", "schedule", "class", "label_key", "metric",
                    "n_folds", "folds_compared", "mean", "std", "reference", "diff_to_reference", "fold_values"])
        num = lambda v: "" if v is None else repr(float(v))  # noqa: E731
        for row in self.rows:
            spec = row.spec
            sched = schedule_suffix(*split_schedule(row.trainer)[1:])
            fam = spec.family_name if spec is not None else None
            for key, name in self.columns():
                cell = row.cells.get(key, Cell())
                w.writerow([
                    row.trainer, fam or "",
                    "" if spec is None or spec.K is None else format_k(spec.K),
                    "" if spec is None or spec.epsilon is None else num(spec.epsilon),
                    "" if spec is None or spec.alpha is None else num(spec.alpha),
                    "" if spec is None or spec.beta is None else num(spec.beta),
                    sched[1:],
                    name, key, self.metric, cell.n, len(self.folds), num(cell.mean), num(cell.std),
                    row.reference or "", num(row.diffs.get(key)),
                    ";".join(f"{f}:{v!r}" for f, v in cell.values.items()),
                ])
        return buf.getvalue()


# ---------------------------------------------------------------------------------------- reading

def _fold_sort_key(fold: str):
    return (0, int(fold), "") if fold.isdigit() else (1, 0, fold)


def find_trainers(dataset_dir: Path, plans: str, configuration: str) -> list[str]:
    """Trainer names of the ``<trainer>__<plans>__<configuration>`` folders in ``dataset_dir``, sorted."""
    suffix = f"__{plans}__{configuration}"
    if not Path(dataset_dir).is_dir():
        return []
    return sorted(p.name[: -len(suffix)] for p in Path(dataset_dir).iterdir()
                  if p.is_dir() and p.name.endswith(suffix) and p.name[: -len(suffix)])


def find_folds(trainer_dirs: Sequence[Path]) -> list[str]:
    """The union of the ``fold_<f>`` folders in these trainer folders, numeric folds first."""
    folds = set()
    for d in trainer_dirs:
        if Path(d).is_dir():
            folds.update(p.name[5:] for p in Path(d).iterdir() if p.is_dir() and p.name.startswith("fold_"))
    return sorted(folds, key=_fold_sort_key)


def read_summary(path: Path, metric: str = "Dice") -> tuple[dict, float]:
    """``({class key: value}, foreground mean)`` of ``metric`` from one nnU-Net summary.json.

    Keys are kept as nnU-Net writes them (``'1'``, ``'(1, 2)'``). Values may be NaN.

    Raises:
        ValueError: when the file is not an nnU-Net summary or lacks the metric.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        mean = data["mean"]
        fg = data["foreground_mean"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not an nnU-Net validation summary ({type(err).__name__}: {err}).") from None
    values = {}
    for key, metrics in mean.items():
        if metric not in metrics:
            raise ValueError(f"{path} has no metric {metric!r} for class {key}; it has {sorted(metrics)}.")
        values[str(key)] = _as_float(metrics[metric])
    if metric not in fg:
        raise ValueError(f"{path} has no foreground mean of {metric!r}; it has {sorted(fg)}.")
    return values, _as_float(fg[metric])


def absent_from_reference(path: Path) -> dict:
    """``{class key: false-positive voxels}`` for the classes of one summary.json that no validation case's
    reference contains (nnU-Net's mean ``n_ref`` is 0). Summaries without ``n_ref`` give ``{}``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    absent = {}
    for key, metrics in data.get("mean", {}).items():
        n_ref = metrics.get("n_ref") if isinstance(metrics, dict) else None
        if n_ref is not None and float(n_ref) == 0.0:
            cases = len(data.get("metric_per_case") or []) or 1
            absent[str(key)] = float(metrics.get("FP") or 0.0) * cases  # the mean FP times the cases
    return absent


def _as_float(value) -> float:
    return math.nan if value is None else float(value)


def label_names(dataset_json: dict) -> dict:
    """``{summary key: name}`` from dataset.json ``labels`` (label values and region lists alike)."""
    names = {}
    for name, value in (dataset_json.get("labels") or {}).items():
        if name == "ignore":
            continue
        key = str(tuple(int(v) for v in value)) if isinstance(value, (list, tuple)) else str(int(value))
        names[key] = name
    return names


def _natural_key(key: str):
    try:
        return (0, (int(key),))
    except ValueError:
        return (1, tuple(int(v) for v in re.findall(r"-?\d+", key)))


def reference_for(trainer: str, reference: str, available: Sequence[str]) -> str | None:
    """The reference of a row: the reference with the row's schedule suffix if that has results,
    else ``reference`` itself if it has results, else None.

    ``nnUNetTrainer_30ep20it`` is the reference of ``nnUNetTrainerPolyDice_K2_eps0_30ep20it`` (with
    ``reference='nnUNetTrainer'``), and plain ``nnUNetTrainer`` that of ``nnUNetTrainerPolyDice_K2_eps0``.
    """
    base = split_schedule(reference)[0]
    candidates = [base + schedule_suffix(*split_schedule(trainer)[1:]), reference]
    for c in candidates:
        if c in available:
            return c
    return None


def compare(results: Path, dataset_name: str, configuration: str, *, plans: str = "nnUNetPlans",
            trainers: Sequence[str] | None = None, folds: Sequence | None = None,
            reference: str = "nnUNetTrainer", metric: str = "Dice") -> Comparison:
    """Read every ``fold_<f>/validation/summary.json`` and build the :class:`Comparison`.

    Args:
        results: ``$nnUNet_results``.
        dataset_name: ``DatasetXXX_Name``.
        trainers: default every ``<trainer>__<plans>__<configuration>`` folder of the dataset.
        folds: default the union of the ``fold_<f>`` folders of these trainers.
        reference: the trainer differences are taken to (see :func:`reference_for`).
        metric: a key of nnU-Net's per-class metrics (Dice, IoU, FP, TP, FN, TN, n_pred, n_ref).

    Raises:
        FileNotFoundError: when the dataset has no results folder.
        ValueError: when no trainer is found, or a summary is malformed or lacks the metric.
    """
    dataset_dir = Path(results) / dataset_name
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"{dataset_dir} does not exist: no results of {dataset_name} in nnUNet_results.")
    found = find_trainers(dataset_dir, plans, configuration)
    trainers = list(dict.fromkeys(trainers)) if trainers else found
    if not trainers:
        raise ValueError(f"no trainer folders *__{plans}__{configuration} in {dataset_dir}; check the "
                         f"configuration and -p/--plans.")
    tdir = {t: dataset_dir / f"{t}__{plans}__{configuration}" for t in trainers}
    folds = [str(f) for f in folds] if folds else find_folds(list(tdir.values()))

    missing: list[Missing] = []
    rows: list[Row] = []
    keys: list[str] = []
    names: dict = {}
    for t in trainers:
        row = Row(t)
        rows.append(row)
        if not tdir[t].is_dir():
            missing.append(Missing(t, None, f"no results folder {tdir[t].name}"))
            continue
        ds_json = tdir[t] / "dataset.json"
        if ds_json.is_file() and not names:
            try:
                names = label_names(json.loads(ds_json.read_text(encoding="utf-8")))
            except (ValueError, TypeError, AttributeError):
                names = {}
        for f in folds:
            fold_dir = tdir[t] / f"fold_{f}"
            summary = fold_dir / "validation" / "summary.json"
            if not fold_dir.is_dir():
                missing.append(Missing(t, f, "not trained (no fold folder)"))
                continue
            if not summary.is_file():
                missing.append(Missing(t, f, "no validation/summary.json (training unfinished or validation not run)"))
                continue
            values, fg = read_summary(summary, metric)
            absent = absent_from_reference(summary) if metric in OVERLAP_METRICS else {}
            row.folds.append(f)
            for key, v in [*values.items(), (FOREGROUND, fg)]:
                if key != FOREGROUND and key not in keys:
                    keys.append(key)
                cell = row.cells.setdefault(key, Cell())
                if key in absent:
                    fp = absent[key]
                    what = ("nothing predicted" if math.isnan(v) or not fp
                            else f"{metric} {v:.4f}, {fp:.0f} false-positive voxels")
                    missing.append(Missing(t, f, f"class {names.get(key, key)}: absent from the reference of "
                                                 f"every validation case, left out ({what})"))
                elif math.isnan(v):
                    what = "foreground mean" if key == FOREGROUND else f"class {names.get(key, key)}"
                    missing.append(Missing(t, f, f"{what}: {metric} is NaN"))
                else:
                    cell.values[f] = v

    reported = {m.trainer for m in missing}
    for row in rows:
        if row.n_folds == 0 and row.trainer not in reported:
            missing.append(Missing(row.trainer, None, "no fold_<f> folders with results"))

    order = {k: i for i, k in enumerate(names)}
    keys.sort(key=lambda k: (order.get(k, len(order)), _natural_key(k)))
    classes = [(k, names.get(k, k)) for k in keys]

    available = [r.trainer for r in rows if r.n_folds > 0]
    for row in rows:
        row.reference = reference_for(row.trainer, reference, available)
        if row.reference is None:
            continue
        ref = next(r for r in rows if r.trainer == row.reference)
        for key in [*keys, FOREGROUND]:
            a, b = row.cells.get(key, Cell()).mean, ref.cells.get(key, Cell()).mean
            row.diffs[key] = None if a is None or b is None else a - b
    orphans = [r.trainer for r in rows if r.reference is None and r.n_folds > 0]
    if orphans:
        missing.append(Missing(reference, None, f"reference trainer (or its variant with the same schedule) has "
                                                f"no results; no differences for {', '.join(orphans)}"))
    return Comparison(dataset_name, configuration, plans, metric, reference, folds, classes, rows, missing)


# -------------------------------------------------------------------------------------- heat maps

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_") or "class"


def heatmap_groups(comparison: Comparison) -> dict:
    """``{group label: {(K, epsilon): Row}}`` for each Poly family (per alpha/beta and schedule) with at
    least two (K, epsilon) settings among the rows. The label is used in the file names."""
    groups: dict = {}
    for row in comparison.rows:
        spec = row.spec
        if spec is None or spec.family is None or not spec.family.loss.is_poly:
            continue
        label = spec.family.name
        if "a" in spec.family.params:
            label += f"_a{format_number(spec.alpha)}_b{format_number(spec.beta)}"
        label += schedule_suffix(spec.epochs, spec.iterations)
        cells = groups.setdefault(label, {})
        setting = (spec.K, spec.epsilon)
        if setting not in cells or spec.explicit:  # an explicit name wins over the family's default name
            cells[setting] = row
    return {label: cells for label, cells in groups.items() if len(cells) >= 2}


def _heatmap_files(comparison: Comparison) -> list:
    """``[(file name, group label, cells, class key, class name)]``."""
    out = []
    slugs = {}
    for key, name in comparison.classes:
        s = _slug(name)
        slugs[key] = s if s not in slugs.values() else f"{s}_{_slug(key)}"
    for label, cells in heatmap_groups(comparison).items():
        for key, name in comparison.classes:
            out.append((f"heatmap_{label}_{_slug(comparison.metric)}_{slugs[key]}.png", label, cells, key, name))
    return out


def _plot_heatmap(path: Path, comparison: Comparison, label: str, cells: dict, key: str, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    Ks = sorted({k for k, _ in cells})
    eps = sorted({e for _, e in cells})
    grid = np.full((len(Ks), len(eps)), np.nan)
    notes = [["missing"] * len(eps) for _ in Ks]
    for (K, e), row in cells.items():
        i, j = Ks.index(K), eps.index(e)
        cell = row.cells.get(key)
        if cell is not None and cell.n:
            grid[i, j] = cell.mean
            notes[i][j] = f"{cell.mean:.3f}" + (f"\nn={cell.n}/{len(comparison.folds)}"
                                                 if cell.n < len(comparison.folds) else "")
    fig, ax = plt.subplots(figsize=(1.3 * len(eps) + 2.5, 0.9 * len(Ks) + 1.8))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    finite = grid[np.isfinite(grid)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 0.01, vmax + 0.01
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for i in range(len(Ks)):
        for j in range(len(eps)):
            v = grid[i, j]
            dark = np.isfinite(v) and (v - vmin) / (vmax - vmin) < 0.5
            ax.text(j, i, notes[i][j], ha="center", va="center", fontsize=9,
                    color="white" if dark else ("black" if np.isfinite(v) else "grey"))
    ax.set_xticks(range(len(eps)), [f"{e:g}" for e in eps])
    ax.set_yticks(range(len(Ks)), [format_k(k) for k in Ks])
    ax.set_xlabel("epsilon")
    ax.set_ylabel("K")
    ax.set_title(f"{label}\n{name}: mean validation {comparison.metric} over folds", fontsize=9)
    fig.colorbar(image, ax=ax, label=f"mean {comparison.metric}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------- writing

def default_out_dir(results: Path, dataset_name: str, configuration: str, plans: str = "nnUNetPlans") -> Path:
    """``<results>/<dataset>/polydice_compare_<configuration>`` (``polydice_compare_<plans>_<configuration>``
    for plans other than nnUNetPlans, so that two plans do not share one folder)."""
    tag = configuration if plans == "nnUNetPlans" else f"{plans}_{configuration}"
    return Path(results) / dataset_name / f"polydice_compare_{tag}"


def _owned(out_dir: Path) -> set:
    manifest = out_dir / MANIFEST
    if not manifest.is_file():
        return set()
    try:
        return set(json.loads(manifest.read_text(encoding="utf-8")).get("files", []))
    except (ValueError, AttributeError):
        return set()


def write_outputs(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Write ``comparison.md``, ``comparison.csv`` and the heat maps to ``out_dir`` (created if needed).

    Only files this tool wrote before (listed in ``.polydice_compare.json``) are overwritten; such
    files that this run does not produce any more (e.g. heat maps of a family no longer compared) are
    removed. Returns the paths written.

    Raises:
        FileExistsError: when a file to be written exists and was not written by this tool; nothing
            is written then.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    owned = _owned(out_dir)
    heatmaps = _heatmap_files(comparison)
    targets = ["comparison.md", "comparison.csv", *[h[0] for h in heatmaps]]
    clash = [t for t in targets if (out_dir / t).exists() and t not in owned]
    if clash:
        raise FileExistsError(f"{out_dir / clash[0]} exists and was not written by nnunet-polydice compare; "
                              f"refusing to overwrite it (move it away or choose another output folder).")
    written = []
    for fname, label, cells, key, name in heatmaps:
        _plot_heatmap(out_dir / fname, comparison, label, cells, key, name)
        written.append(out_dir / fname)
    (out_dir / "comparison.csv").write_text(comparison.csv_text(), encoding="utf-8")
    (out_dir / "comparison.md").write_text(comparison.markdown([h[0] for h in heatmaps]), encoding="utf-8")
    written = [out_dir / "comparison.md", out_dir / "comparison.csv", *written]
    for stale in owned - set(targets):
        p = out_dir / stale
        if p.is_file() and os.path.basename(stale) == stale:
            p.unlink()
    (out_dir / MANIFEST).write_text(json.dumps({"tool": "nnunet-polydice compare", "files": targets}, indent=1),
                                    encoding="utf-8")
    return written
