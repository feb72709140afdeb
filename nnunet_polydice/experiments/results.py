"""Compare trained settings from nnU-Net's own validation summaries.

The library side of ``nnunet-polydice compare``; no argparse, no printing.

Input: ``$nnUNet_results/<DatasetXXX_Name>/<trainer>__<plans>__<configuration>/fold_<f>/validation/summary.json``
as nnU-Net writes it (``nnunetv2.evaluation.evaluate_predictions.compute_metrics_on_folder``)::

    {"foreground_mean": {"Dice": ..., "IoU": ..., ...},
     "mean": {"1": {"Dice": ..., ...}, "2": {...}},          # label value as a string, or
             {"(1, 2, 3)": {...}, "(3,)": {...}},              # region tuple as a string (region-based)
     "metric_per_case": [{"reference_file": ".../case_001.nii.gz", "prediction_file": ...,
                          "metrics": {"1": {"Dice": ..., "n_ref": ..., ...}, ...}}, ...]}

Which folds count: the rule of :mod:`nnunet_polydice.experiments.runs`, the one ``sweep`` uses. A fold
is compared when it is finished (``checkpoint_final.pth`` and a readable summary.json). A fold that
sweep leaves alone as *foreign* (a readable summary.json copied in without any checkpoint) is compared
too and listed under Notes. Every other fold goes to :attr:`Comparison.missing` with its reason: not
trained, training not finished, *pruned* by the tuner, or a summary.json that cannot be used (missing,
empty, truncated, not nnU-Net's object; with its path). One bad fold never stops the rest.

Output: a :class:`Comparison`, one :class:`Row` per trainer, with for each class (and for the
foreground mean) the mean over folds, the sample standard deviation (``ddof = 1``; none with one
fold), the number of folds, and

* the difference to the reference trainer (:func:`reference_for`) **over the folds both have a value
  for**: ``mean_{f in F} x_f - mean_{f in F} r_f`` with ``F`` the common folds (their number is shown);
* paired per-case statistics (:class:`Paired`): the validation cases of the common folds, matched by
  their reference file name within each fold and pooled, give differences ``d_i = x_i - r_i``; their
  mean, a percentile bootstrap 95 % confidence interval (:func:`bootstrap_ci`) and the two-sided
  Wilcoxon signed-rank p (:func:`wilcoxon_p`).

Rows are settings (:func:`setting_and_seed`): the names of one setting (a family name and its explicit
default name) are one row. Seeded runs (``<setting>_s<N>``, one results folder per seed) of a setting are
one row whose instances are (fold, seed) pairs, apart from its unseeded runs; they are compared with the
reference's seeded runs of the same (fold, seed), case by case (:class:`Seeded`, with
:func:`nnunet_polydice.experiments.statistics.compare_instances`: seed sd, hierarchical bootstrap CI,
Wilcoxon over runs, Holm across the rows of one reference, verdict, the 'seeds disagree' flag).

Class names come from the ``labels`` of the ``dataset.json`` that nnU-Net copies into each trainer
folder (falling back to the summary's key).

What is missing is never dropped silently: a requested trainer without a results folder, a fold that
is not finished, and a class whose value is NaN in a fold (nnU-Net's mean is NaN when a class is in
neither reference nor prediction of any validation case) all go to :attr:`Comparison.missing`; rows with
fewer folds than compared are marked.

A class absent from the reference of every validation case of a fold (nnU-Net's mean ``n_ref`` is 0)
has no overlap score in that fold: nnU-Net writes Dice 0 when anything was predicted there (a false
positive) and NaN when nothing was. With contiguous-block folds of a structure that only part of the
volume contains, that 0 would be averaged with real Dice values of the other folds. So for the overlap
metrics (:data:`OVERLAP_METRICS`) such a fold is left out of that class's cell and reported in
:attr:`Comparison.missing` (with the false-positive voxels, if any); other metrics (FP, n_pred, ...)
keep it. Per case the same holds: a case whose reference lacks the class (its ``n_ref`` is 0) is left
out of that class's paired overlap statistics and counted. The foreground-mean column is nnU-Net's own
``foreground_mean`` of each fold, unchanged; per case, the foreground value is the mean over the
classes that the case's reference contains.

Files (:func:`write_outputs`): ``comparison.md``, ``comparison.csv`` and, for each Poly family with at
least two (K, epsilon) settings, one K x epsilon heat map per class
(``heatmap_<family>[_a<A>_b<B>][_<E>ep<I>it]_<metric>_<class>.png``). The files written are listed in
``.polydice_compare.json`` in the output folder; a later run overwrites (and, when no longer produced,
removes) only files listed there, and refuses to overwrite any other file
(:class:`nnunet_polydice.experiments.outputs.OwnedFolder`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from nnunet_polydice.experiments import outputs
from nnunet_polydice.experiments.runs import SummaryError, fold_status, read_summary_json
from nnunet_polydice.experiments.statistics import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_SEED,
    MIN_CASES,
    MIN_INSTANCES,
    MIN_RESAMPLES,
    ZERO_METHOD,
    InstanceComparison,
    bootstrap_ci,
    compare_instances,
    seed_sd,
    wilcoxon_p,
)
from nnunet_polydice.integration.naming import (
    format_k,
    format_number,
    parse_trainer_name,
    schedule_suffix,
    setting_and_seed,
    split_schedule,
    split_seed,
)

__all__ = [
    "MANIFEST",
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_SEED",
    "MIN_CASES",
    "ZERO_METHOD",
    "Cell",
    "Paired",
    "PairedDifferences",
    "Row",
    "Seeded",
    "Missing",
    "Comparison",
    "find_trainers",
    "find_folds",
    "select_folds",
    "read_summary",
    "summary_values",
    "per_case_values",
    "absent_from_reference",
    "label_names",
    "reference_for",
    "paired_differences",
    "bootstrap_ci",
    "wilcoxon_p",
    "paired_stats",
    "check_resamples",
    "compare",
    "heatmap_groups",
    "write_outputs",
    "default_out_dir",
]

#: Name of the file, in the output folder, that lists the files this tool wrote.
MANIFEST = outputs.manifest_name("compare")
FOREGROUND = "foreground_mean"
#: Metrics that score overlap with the reference: undefined for a class the fold's reference lacks.
SEEDED_TITLE = "Seeded settings against the reference, over folds x seeds"
OVERLAP_METRICS = frozenset({"Dice", "IoU"})
#: The per-class metrics nnU-Net's compute_metrics writes into validation/summary.json.
NNUNET_METRICS = ("Dice", "IoU", "FP", "TP", "FN", "TN", "n_pred", "n_ref")


def check_metric(metric: str, option: str = "--metric") -> str:
    """``metric`` when it is one of :data:`NNUNET_METRICS` (checked before any summary is read).

    Raises:
        ValueError: otherwise, naming the option and the metrics allowed.
    """
    if metric not in NNUNET_METRICS:
        raise ValueError(f"{option} must be one of nnU-Net's per-class metrics {', '.join(NNUNET_METRICS)} "
                         f"(got {metric!r}).")
    return metric


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
class Paired:
    """Per-case paired statistics of one trainer x class against its reference (:func:`paired_stats`)."""

    folds: list  # the folds both have, whose cases are pooled
    n: int = 0  # paired cases used
    left_out: int = 0  # paired cases left out: the reference lacks the class (n_ref 0), or the value is NaN
    mean: float | None = None  # mean of d_i = trainer_i - reference_i
    ci: tuple | None = None  # (low, high): percentile bootstrap 95 % confidence interval of the mean
    p: float | None = None  # two-sided Wilcoxon signed-rank p
    nonzero: int = 0  # differences that are not zero (the ones the Wilcoxon test ranks)
    notes: list = field(default_factory=list)  # why the CI or p is not available

    @property
    def excludes_zero(self) -> bool:
        """True when the confidence interval lies wholly above or below 0."""
        return self.ci is not None and (self.ci[0] > 0 or self.ci[1] < 0)


@dataclass(frozen=True)
class PairedDifferences:
    """What :func:`paired_differences` found: the cases used with their differences, and the cases not used."""

    cases: list  # case keys used, sorted
    diffs: list  # a - b for each of them
    left_out: list  # in both, but the reference lacks the class (n_ref 0) or a value is NaN
    unpaired: list  # in only one of the two


@dataclass
class Row:
    """One setting (one kind of run: seeded or unseeded): the trainer folders of its names, merged.

    Unseeded rows are keyed by fold (``"0"``); seeded rows (:attr:`seeds` not None) by instance, a
    ``(fold, seed)`` pair, in :attr:`cells`, :attr:`cases` and :attr:`diff_folds`."""

    trainer: str  # the name trained, or the setting's name when several names were merged (and for seeded rows)
    folds: list = field(default_factory=list)  # folds with a usable summary.json
    cells: dict = field(default_factory=dict)  # class key (or FOREGROUND) -> Cell
    reference: str | None = None
    diffs: dict = field(default_factory=dict)  # class key (or FOREGROUND) -> float | None, over diff_folds
    diff_folds: dict = field(default_factory=dict)  # class key (or FOREGROUND) -> folds (instances) both have
    cases: dict = field(default_factory=dict)  # fold (instance) -> {case: {class key: (value, n_ref)}}
    paired: dict = field(default_factory=dict)  # class key (or FOREGROUND) -> Paired
    seeds: list | None = None  # the seeds of a seeded row (_s<N> names); None: unseeded runs
    members: list = field(default_factory=list)  # the trainer names (results folders) merged into this row
    setting: str | None = None  # parse_trainer_name(...).setting, or the name itself for a name not ours
    seeded: dict = field(default_factory=dict)  # class key (or FOREGROUND) -> Seeded (seeded rows)
    reference_note: str | None = None  # why a row has no reference (the reference has only the other kind)

    @property
    def n_folds(self) -> int:
        return len(self.folds)

    @property
    def n_instances(self) -> int:
        """Folds of an unseeded row, (fold, seed) pairs of a seeded one."""
        return len(self.cases)

    @property
    def label(self) -> str:
        """``seeds 0,1,2`` or ``unseeded``."""
        return "unseeded" if self.seeds is None else "seeds " + ",".join(str(s) for s in self.seeds)

    @property
    def spec(self):
        try:
            return parse_trainer_name(self.trainer)
        except ValueError:
            return None


@dataclass
class Seeded:
    """A seeded row x class against the reference's seeded runs (:func:`compare`): the instances both have,
    the per-case differences on them and :func:`nnunet_polydice.experiments.statistics.compare_instances`."""

    instances: list = field(default_factory=list)  # (fold, seed) pairs both rows have
    left_out: int = 0  # paired cases left out: the reference lacks the class (n_ref 0), or a value is NaN
    seed_sd: float | None = None  # the row's own seed-to-seed sd of the metric (its noise floor)
    result: InstanceComparison | None = None  # None: no paired case (see notes), or the reference row itself
    notes: list = field(default_factory=list)
    diffs: dict = field(default_factory=dict, repr=False)  # {(fold, seed): {case: row - reference}}


@dataclass(frozen=True)
class Missing:
    """One entry of :attr:`Comparison.missing` (or of :attr:`Comparison.notes`)."""

    trainer: str
    fold: str | None  # None: the whole trainer
    reason: str

    def __str__(self) -> str:
        where = self.trainer if self.fold is None else f"{self.trainer} / fold {self.fold}"
        return f"{where}: {self.reason}"


def _key_text(key) -> str:
    """A fold (``0``) or a (fold, seed) run (``0/s2``)."""
    return key if isinstance(key, str) else f"{key[0]}/s{key[1]}"


def _signed(value: float) -> str:
    return f"{round(value, 4) + 0.0:+.4f}"  # + 0.0: no '-0.0000' from rounding noise


def _n_folds(n: int) -> str:
    return "1 fold" if n == 1 else f"{n} folds"


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
    notes: list = field(default_factory=list)  # folds compared with a remark (a copied-in summary)
    bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = DEFAULT_SEED

    # ------------------------------------------------------------------------------ lookups
    def row(self, trainer: str, seeded: bool | None = None) -> Row:
        """The row of a trainer name, of a name merged into it or of its setting (the seeded or unseeded one
        when ``seeded`` is given, else the first)."""
        for r in self.rows:
            if (trainer == r.trainer or trainer in r.members or trainer == r.setting) and \
                    seeded in (None, r.seeds is not None):
                return r
        raise KeyError(trainer)

    def columns(self) -> list:
        """``[(key, title)]``: the classes, then the foreground mean."""
        return [*self.classes, (FOREGROUND, "foreground mean")]

    def incomplete(self, row: Row) -> bool:
        """Fewer folds than compared; for a seeded row also fewer (fold, seed) runs than folds x its seeds."""
        return row.n_folds < len(self.folds) or (row.seeds is not None
                                                 and row.n_instances < len(self.folds) * len(row.seeds))

    def _seeded_rows(self) -> bool:
        return any(r.seeds is not None for r in self.rows)

    def _name(self, row: Row) -> str:
        """The trainer column: the name, with ``[seeds 0,1,2]`` or ``[unseeded]`` once any row is seeded."""
        return row.trainer + (f" [{row.label}]" if self._seeded_rows() else "")

    def _against_reference(self, row: Row) -> bool:
        return row.reference is not None and row.reference != row.trainer

    # ------------------------------------------------------------------------------ rendering
    def _cell_text(self, row: Row, key) -> str:
        cell = row.cells.get(key)
        if cell is None or cell.n == 0:
            return "-"
        text = f"{cell.mean:.4f}"
        if cell.std is not None:
            text += f" ± {cell.std:.4f}"
        if cell.n < row.n_instances:
            text += f" [n={cell.n}]"
        if self._against_reference(row):
            diff, n = row.diffs.get(key), len(row.diff_folds.get(key, []))
            if row.seeds is None:
                text += " (no fold in common)" if diff is None else f" ({_signed(diff)}, {_n_folds(n)})"
            else:
                text += " (no run in common)" if diff is None else f" ({_signed(diff)}, {n} runs)"
        return text

    def _table(self) -> tuple[list, list]:
        header = ["trainer", "folds", *[t for _, t in self.columns()], "reference"]
        body = []
        for row in self.rows:
            name = self._name(row) + (" *" if self.incomplete(row) else "")
            cells = [self._cell_text(row, k) for k, _ in self.columns()]
            folds = f"{row.n_folds}/{len(self.folds)}" + ("" if row.seeds is None else f", {row.n_instances} runs")
            body.append([name, folds, *cells, row.reference or "-"])
        return header, body

    def _legend(self) -> list:
        lines = [f"Cells: mean ± sample standard deviation over folds of the validation {self.metric} "
                 f"(nnU-Net's validation/summary.json), (difference to the reference, over the folds both have a "
                 f"value for: the trainer's mean over those folds minus the reference's mean over the same folds; "
                 f"their number)."]
        if any(self.incomplete(r) for r in self.rows):
            folds = "the fold" if len(self.folds) == 1 else f"the {len(self.folds)} folds"
            lines.append(f"* fewer than {folds} compared ({', '.join(self.folds)}); see Missing.")
        lines.append("foreground mean: nnU-Net's foreground_mean of each fold (over all classes, as nnU-Net's "
                     "model selection uses it), then averaged over folds.")
        if any(c.n < r.n_instances for r in self.rows for c in r.cells.values()):
            lines.append("[n=...] folds in which this class's value was NaN, or the class was absent from every "
                         "validation reference, are left out of that cell (see Missing).")
        if self._seeded_rows():
            lines.append("[seeds 0,1,2]: the seeded runs of one setting (<setting>_s<N>, one results folder per "
                         "seed), one row; its cells are the mean ± sample sd over its runs, one per (fold, seed), "
                         "and the difference is over the runs both it and the reference have. [unseeded]: runs "
                         "without a seed suffix, compared as before. Seeded and unseeded runs of one setting are "
                         "two rows and never pooled: a seeded row is compared only with the reference's seeded runs "
                         "of the same (fold, seed), an unseeded row only with unseeded runs.")
        if any(len(r.members) > 1 for r in self.rows):
            lines.append("Names of one setting (a family name and its explicit default name) are one row, named by "
                         "the setting; a fold (or fold and seed) trained under both names is taken from the name "
                         "that spells the setting out and the other run is listed under Notes, not pooled.")
        return lines

    def _seeded_table(self) -> tuple[list, list]:
        header = ["trainer", "runs", "reference", "class", "runs paired", "cases", "left out", "seed sd",
                  "mean diff", "95% CI", "Wilcoxon p", "Holm p", "verdict", "flag", "note"]
        body = []
        for row in self.rows:
            if row.seeds is None or not row.seeded:
                continue
            for key, title in self.columns():
                entry = row.seeded.get(key)
                if entry is None:
                    continue
                res = entry.result
                sd = "-" if entry.seed_sd is None else f"{entry.seed_sd:.4f}"
                if res is None:
                    what = "the reference itself" if row.reference == row.trainer else "; ".join(entry.notes)
                    body.append([row.trainer, row.label, row.reference or "-", title, str(len(entry.instances)), "-",
                                 str(entry.left_out), sd, "-", "n/a", "n/a", "n/a", "-", "", what])
                    continue
                body.append([row.trainer, row.label, row.reference, title, str(res.n_instances), str(res.n_cases),
                             str(entry.left_out + res.cases_left_out), sd, _signed(res.mean_difference),
                             f"[{_signed(res.ci[0])}, {_signed(res.ci[1])}]",
                             "n/a" if res.p is None else f"{res.p:.3g}",
                             "n/a" if res.p_holm is None else f"{res.p_holm:.3g}", res.verdict,
                             "seeds disagree" if res.seeds_disagree else "", "; ".join(entry.notes)])
        return header, body

    def _seeded_legend(self) -> list:
        return [
            f"Seeded rows against the reference's runs of the same (fold, seed): d = the row's {self.metric} minus "
            f"the reference's per (fold, seed, case), on the cases common to all seeds of a fold (left out: cases "
            f"whose reference lacks the class, NaN values, and cases not every seed of the fold has); mean diff = "
            f"mean over folds of the mean over seeds and cases.",
            f"seed sd (noise floor): the standard deviation of the row's own per-run {self.metric} between seeds of "
            f"one fold, pooled over folds (fold-to-fold differences do not count): how far two runs of this setting "
            f"differ by chance alone.",
            f"95% CI: hierarchical percentile bootstrap of the mean diff ({self.bootstrap} resamples, numpy "
            f"default_rng(seed={self.seed})): folds kept, within each fold the seeds drawn with replacement and one "
            f"draw of the fold's cases shared by all drawn seeds; the 2.5th and 97.5th percentiles.",
            f"Wilcoxon p: two-sided signed-rank test over the per-(fold, seed) mean differences (needs "
            f"{MIN_INSTANCES} non-zero ones). Holm p: that p adjusted by Holm's method across the rows compared with "
            f"the same reference (per class), so that the chance of any false 'better' or 'worse' among them stays "
            f"at 5 %.",
            "verdict: better (worse) when the CI lies wholly above (below) 0 and Holm p < 0.05; within noise "
            "otherwise; undetermined when there are too few runs for a p. Act on better or worse; within noise "
            "means these runs cannot tell the setting from the reference.",
            "flag 'seeds disagree': the seed sd is larger than |mean diff|: this setting's seeds differ from each "
            "other by more than the setting differs from the reference, so a single run could have pointed either "
            "way; more seeds, not another single run, would settle it."]

    def _paired_table(self) -> tuple[list, list]:
        header = ["trainer", "reference", "class", "folds", "cases", "left out", "mean diff", "95% CI", "Wilcoxon p",
                  "non-zero", "note"]
        body = []
        for row in self.rows:
            if not self._against_reference(row):
                continue
            for key, title in self.columns():
                pr = row.paired.get(key)
                if pr is None:
                    continue
                ci = "n/a" if pr.ci is None else \
                    f"[{_signed(pr.ci[0])}, {_signed(pr.ci[1])}]" + (" *" if pr.excludes_zero else "")
                body.append([row.trainer, row.reference, title, ", ".join(pr.folds) or "-", str(pr.n),
                             str(pr.left_out), "-" if pr.mean is None else _signed(pr.mean), ci,
                             "n/a" if pr.p is None else f"{pr.p:.3g}", str(pr.nonzero), "; ".join(pr.notes)])
        return header, body

    def _paired_legend(self) -> list:
        overlap = self.metric in OVERLAP_METRICS
        lines = [f"Paired: the validation cases of the folds both the trainer and its reference have, matched by "
                 f"the file name of their reference within each fold and pooled over those folds; d = trainer's "
                 f"{self.metric} minus the reference's, per case; mean diff = the mean of d.",
                 f"95% CI: percentile bootstrap of the mean of d ({self.bootstrap} resamples of the cases with "
                 f"replacement, numpy default_rng(seed={self.seed}); the 2.5th and 97.5th percentiles of the "
                 f"resampled means). * marks a CI that excludes 0.",
                 f"Wilcoxon p: two-sided signed-rank test of d (scipy.stats.wilcoxon, zero_method='{ZERO_METHOD}': "
                 f"zero differences are dropped; non-zero counts the rest). Not available when all differences "
                 f"are zero or fewer than {MIN_CASES} are non-zero (the smallest possible p would be 2/2^5 = 0.0625 "
                 f"or more); the CI needs {MIN_CASES} paired cases. Neither is corrected for multiple comparisons."]
        if overlap:
            lines.append(f"left out: cases whose reference lacks the class (n_ref = 0; nnU-Net's {self.metric} is 0 "
                         f"there for any false positive, NaN for none) are not part of that class's paired "
                         f"{self.metric}.")
            lines.append(f"foreground mean, per case: the mean of the case's {self.metric} over the classes its "
                         f"reference contains (cases with none left out).")
        else:
            lines.append(f"foreground mean, per case: the mean of the case's {self.metric} over the classes.")
        return lines

    def title(self) -> str:
        return (f"{self.dataset}, {self.configuration}, plans {self.plans}: validation {self.metric}, "
                f"folds {', '.join(self.folds) or '-'}, reference {self.reference}")

    @staticmethod
    def _plain(header: list, body: list) -> list:
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
        return lines + ["  ".join(v.ljust(w) for v, w in zip(b, widths)).rstrip() for b in body]

    def text(self) -> str:
        """A plain-text table, the legend, the paired statistics, the Missing list and the notes."""
        lines = [self.title(), "", *self._plain(*self._table()), "", *self._legend(), ""]
        header, body = self._paired_table()
        if body:
            lines += ["Paired per-case differences to the reference:", *self._plain(header, body), "",
                      *self._paired_legend(), ""]
        header, body = self._seeded_table()
        if body:
            lines += [f"{SEEDED_TITLE}:", *self._plain(header, body), "", *self._seeded_legend(), ""]
        if self.missing:
            lines.append(f"Missing ({len(self.missing)}):")
            lines += [f"  {m}" for m in self.missing]
        else:
            lines.append("Missing: none.")
        if self.notes:
            lines += ["", f"Notes ({len(self.notes)}):", *[f"  {m}" for m in self.notes]]
        return "\n".join(lines) + "\n"

    def markdown(self, images: Sequence[str] = ()) -> str:
        esc = lambda s: s.replace("|", "\\|")  # noqa: E731

        def table(header, body):
            return ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|",
                    *["| " + " | ".join(esc(v) for v in b) + " |" for b in body]]

        lines = [f"# Comparison: {esc(self.title())}", "", *table(*self._table()), "", *self._legend()]
        header, body = self._paired_table()
        if body:
            lines += ["", "## Paired per-case differences to the reference", "", *table(header, body), "",
                      *self._paired_legend()]
        header, body = self._seeded_table()
        if body:
            lines += ["", f"## {SEEDED_TITLE}", "", *table(header, body), "", *self._seeded_legend()]
        lines += ["", "## Missing", ""]
        lines += [f"- {esc(str(m))}" for m in self.missing] if self.missing else ["None."]
        if self.notes:
            lines += ["", "## Notes", "", *[f"- {esc(str(m))}" for m in self.notes]]
        if images:
            lines += ["", "## Heat maps", ""]
            lines += [f"![{Path(p).stem}]({Path(p).name})" for p in images]
        return "\n".join(lines) + "\n"

    def csv_text(self) -> str:
        """Long format: one line per trainer x class (and foreground mean)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["trainer", "family", "K", "epsilon", "alpha", "beta", "schedule", "class", "label_key", "metric",
                    "n_folds", "folds_compared", "mean", "std", "reference", "diff_to_reference", "diff_n_folds",
                    "diff_folds", "fold_values", "paired_folds", "paired_cases", "paired_left_out",
                    "paired_mean_diff", "ci95_low", "ci95_high", "ci_excludes_zero", "wilcoxon_p",
                    "wilcoxon_nonzero", "paired_note", "bootstrap_resamples", "bootstrap_seed", "runs", "n_runs",
                    "seed_sd", "runs_paired", "seeded_cases", "seeded_left_out", "seeded_mean_diff",
                    "seeded_ci95_low", "seeded_ci95_high", "runs_wilcoxon_p", "holm_p", "verdict", "seeds_disagree",
                    "seeded_note"])
        num = lambda v: "" if v is None else repr(float(v))  # noqa: E731
        for row in self.rows:
            spec = row.spec
            sched = schedule_suffix(*split_schedule(row.trainer)[1:])
            fam = spec.family_name if spec is not None else None
            for key, name in self.columns():
                cell = row.cells.get(key, Cell())
                against = self._against_reference(row) or row.reference == row.trainer
                common = row.diff_folds.get(key, []) if against else []
                pr = row.paired.get(key) if self._against_reference(row) else None
                entry = row.seeded.get(key)
                res = None if entry is None else entry.result
                w.writerow([
                    row.trainer, fam or "",
                    "" if spec is None or spec.K is None else format_k(spec.K),
                    "" if spec is None or spec.epsilon is None else num(spec.epsilon),
                    "" if spec is None or spec.alpha is None else num(spec.alpha),
                    "" if spec is None or spec.beta is None else num(spec.beta),
                    sched[1:],
                    name, key, self.metric, cell.n, len(self.folds), num(cell.mean), num(cell.std),
                    row.reference or "", num(row.diffs.get(key)), len(common) if against else "",
                    ";".join(_key_text(k) for k in common),
                    ";".join(f"{_key_text(k)}:{v!r}" for k, v in cell.values.items()),
                    *([""] * 10 if pr is None else [
                        ";".join(pr.folds), pr.n, pr.left_out, num(pr.mean),
                        "" if pr.ci is None else num(pr.ci[0]), "" if pr.ci is None else num(pr.ci[1]),
                        "" if pr.ci is None else str(pr.excludes_zero).lower(), num(pr.p), pr.nonzero,
                        "; ".join(pr.notes)]),
                    *(["", ""] if pr is None and res is None else [self.bootstrap, self.seed]),
                    row.label, row.n_instances, "" if entry is None else num(entry.seed_sd),
                    *([""] * 10 if res is None else [
                        res.n_instances, res.n_cases, entry.left_out + res.cases_left_out, num(res.mean_difference),
                        num(res.ci[0]), num(res.ci[1]), num(res.p), num(res.p_holm), res.verdict,
                        str(res.seeds_disagree).lower()]),
                    "" if entry is None else "; ".join(entry.notes),
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


def select_folds(trainer_dirs: Sequence[Path], folds: Sequence | None) -> list[str]:
    """The folds asked for (as strings), or :func:`find_folds` of the trainer folders when none are.

    Raises:
        ValueError: when folds are asked for and none of the trainer folders has a ``fold_<f>`` folder of any of
            them (``--folds 9``): the command refuses before it replaces its last outputs with empty ones; the
            sentence lists the folds there are.
    """
    if not folds:
        return find_folds(trainer_dirs)
    folds = [str(f) for f in folds]
    if not any((Path(d) / f"fold_{f}").is_dir() for d in trainer_dirs for f in folds):
        raise ValueError(f"--folds {' '.join(folds)}: none of these trainers has a fold folder of them; folds there: "
                         f"{', '.join(find_folds(trainer_dirs)) or 'none'}.")
    return folds


def summary_values(data: Mapping, metric: str = "Dice") -> tuple[dict, float]:
    """``({class key: value}, foreground mean)`` of ``metric`` from nnU-Net's summary (as
    :func:`nnunet_polydice.experiments.runs.read_summary_json` returns it).

    Keys are kept as nnU-Net writes them (``'1'``, ``'(1, 2)'``). Values may be NaN.

    Raises:
        SummaryError: when ``mean`` or ``foreground_mean`` is not an object of metrics.
        ValueError: when the summary lacks the metric (a wrong ``metric``, not a broken file).
    """
    mean, fg = data["mean"], data["foreground_mean"]
    if not isinstance(mean, Mapping) or not all(isinstance(m, Mapping) for m in mean.values()) \
            or not isinstance(fg, Mapping):
        raise SummaryError("validation/summary.json: mean or foreground_mean is not nnU-Net's object of metrics")
    values = {}
    for key, metrics in mean.items():
        if metric not in metrics:
            raise ValueError(f"a validation/summary.json has no metric {metric!r} for class {key}; it has "
                             f"{sorted(metrics)}.")
        values[str(key)] = _as_float(metrics[metric])
    if metric not in fg:
        raise ValueError(f"a validation/summary.json has no foreground mean of {metric!r}; it has {sorted(fg)}.")
    return values, _as_float(fg[metric])


def read_summary(path: Path, metric: str = "Dice") -> tuple[dict, float]:
    """:func:`summary_values` of one summary.json file.

    Raises:
        ValueError: when the file is not an nnU-Net summary (a :class:`SummaryError`, with the path) or lacks
            the metric.
    """
    try:
        return summary_values(read_summary_json(path), metric)
    except SummaryError as err:
        raise SummaryError(f"{path}: {err}") from None


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
            values = {str(k): (_as_float(m[metric]), None if m.get("n_ref") is None else float(m["n_ref"]))
                      for k, m in entry["metrics"].items()}
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


def _fold_summary(fold_dir: Path) -> tuple[dict | None, str | None, bool]:
    """``(summary, None, foreign)`` for a fold that is compared, ``(None, reason, False)`` for one that is not,
    by the rule of :func:`nnunet_polydice.experiments.runs.fold_status`."""
    status = fold_status(fold_dir)
    path = fold_dir / "validation" / "summary.json"
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


# ------------------------------------------------------------------------------------ paired statistics

def paired_differences(a: Mapping, b: Mapping, skip_absent: bool = True) -> PairedDifferences:
    """The per-case differences ``d_i = a_i - b_i`` of two trainers over the cases both have.

    Args:
        a, b: ``{case key: (value, n_ref)}`` of the trainer and of its reference (any hashable, sortable
            case key, e.g. ``(fold, file name)``).
        skip_absent: leave out a case whose reference lacks the class (``n_ref == 0`` in either; an overlap
            score is not defined there). A case with a NaN value is always left out.

    Returns:
        :class:`PairedDifferences`: the cases used (sorted) with their ``d_i``, the cases left out, and
        the cases found in only one of ``a`` and ``b``.
    """
    used, diffs, left_out = [], [], []
    for case in sorted(set(a) & set(b)):
        (va, ra), (vb, rb) = a[case], b[case]
        if (skip_absent and (ra == 0 or rb == 0)) or math.isnan(va) or math.isnan(vb):
            left_out.append(case)
            continue
        used.append(case)
        diffs.append(va - vb)
    return PairedDifferences(used, diffs, left_out, sorted(set(a) ^ set(b)))


def paired_stats(diffs: Sequence[float], folds: Sequence[str] = (), left_out: int = 0,
                 resamples: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED) -> Paired:
    """:class:`Paired` of differences: their mean, :func:`bootstrap_ci` (with at least :data:`MIN_CASES`
    differences) and :func:`wilcoxon_p`, with the reason when one is not available."""
    pr = Paired(list(folds), n=len(diffs), left_out=left_out)
    if not diffs:
        pr.notes.append("no paired case")
        return pr
    pr.mean = statistics.fmean(diffs)
    pr.nonzero = sum(round(float(v), 12) != 0 for v in diffs)
    if len(diffs) >= MIN_CASES:
        pr.ci = bootstrap_ci(diffs, resamples, seed)
    else:
        pr.notes.append(f"CI: only {len(diffs)} cases")
    pr.p, why = wilcoxon_p(diffs)
    if why:
        pr.notes.append(f"p: {why}")
    return pr


def _case_value(metrics: Mapping, key: str, overlap: bool) -> tuple[float, float | None]:
    """``(value, n_ref)`` of one case for a class key, or for :data:`FOREGROUND` the mean over the classes
    the case's reference contains (over all classes for a metric that is not an overlap score) with the
    number of those classes as its ``n_ref``."""
    if key != FOREGROUND:
        return metrics.get(key, (math.nan, None))
    present = [v for k, (v, r) in metrics.items()
               if k != "0" and not math.isnan(v) and (not overlap or r is None or r > 0)]
    return (statistics.fmean(present), float(len(present))) if present else (math.nan, 0.0)


def check_resamples(value, option: str = "the number of bootstrap resamples") -> int:
    """``value`` as an int of at least :data:`MIN_RESAMPLES`.

    Raises:
        ValueError: otherwise; the message names ``option``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < MIN_RESAMPLES:
        raise ValueError(f"{option} must be an integer of at least {MIN_RESAMPLES} (got {value!r}); the default is "
                         f"{DEFAULT_BOOTSTRAP}.")
    return int(value)


def compare(results: Path, dataset_name: str, configuration: str, *, plans: str = "nnUNetPlans",
            trainers: Sequence[str] | None = None, folds: Sequence | None = None,
            reference: str = "nnUNetTrainer", metric: str = "Dice", bootstrap: int = DEFAULT_BOOTSTRAP,
            seed: int = DEFAULT_SEED, seeds: Sequence[int] | None = None,
            reference_required: bool = False) -> Comparison:
    """Read every ``fold_<f>/validation/summary.json`` and build the :class:`Comparison`.

    Args:
        results: ``$nnUNet_results``.
        dataset_name: ``DatasetXXX_Name``.
        trainers: default every ``<trainer>__<plans>__<configuration>`` folder of the dataset.
        folds: default the union of the ``fold_<f>`` folders of these trainers.
        reference: the trainer differences are taken to (see :func:`reference_for`).
        metric: a key of nnU-Net's per-class metrics (Dice, IoU, FP, TP, FN, TN, n_pred, n_ref).
        bootstrap: resamples of the paired confidence intervals (:func:`bootstrap_ci`).
        seed: seed of those resamples.
        seeds: only the seeded runs (``_s<N>`` names) of these seeds; unseeded runs are not affected.

    Rows: one per setting and kind of run (:func:`_merge_rows`). The names of one setting (the family name
    and its explicit default name) are one row; seeded runs of a setting are one row of (fold, seed)
    instances, apart from its unseeded runs. A seeded row is compared with the reference's seeded runs of
    the same (fold, seed) (:func:`_pair_seeded`), an unseeded row with unseeded runs, never across.

    Raises:
        FileNotFoundError: when the dataset has no results folder.
        ValueError: when no trainer is found, a summary lacks the metric, or ``bootstrap`` is too small.
            An unusable summary.json is not an error: its fold is listed in :attr:`Comparison.missing`.
    """
    bootstrap = check_resamples(bootstrap)
    dataset_dir = Path(results) / dataset_name
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"{dataset_dir} does not exist: no results of {dataset_name} in nnUNet_results.")
    found = find_trainers(dataset_dir, plans, configuration)
    trainers = list(dict.fromkeys(trainers)) if trainers else found
    if seeds is not None:
        trainers = [t for t in trainers if setting_and_seed(t)[1] in (None, *seeds)]
    if not trainers:
        raise ValueError(f"no trainer folders *__{plans}__{configuration} in {dataset_dir}; check the "
                         f"configuration and -p/--plans.")
    tdir = {t: dataset_dir / f"{t}__{plans}__{configuration}" for t in trainers}
    if not any(d.is_dir() for d in tdir.values()):  # an empty table would replace the last one: refuse instead
        raise ValueError(f"--trainers {' '.join(trainers)}: none has a results folder <trainer>__{plans}__"
                         f"{configuration}; trainers with results: {', '.join(found) or 'none'}.")
    check_metric(metric)
    if reference_required:  # a reference the user named must exist; the default may be absent (no differences)
        check_reference(reference, found)
    folds = select_folds(list(tdir.values()), folds)
    overlap = metric in OVERLAP_METRICS

    missing: list[Missing] = []
    notes: list[Missing] = []
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
            if not fold_dir.is_dir():
                missing.append(Missing(t, f, "not trained (no fold folder)"))
                continue
            data, reason, foreign = _fold_summary(fold_dir)
            if data is not None:
                try:
                    values, fg = summary_values(data, metric)
                    cases = per_case_values(data, metric)
                except SummaryError as err:
                    data, reason = None, f"{err} ({fold_dir / 'validation' / 'summary.json'})"
            if data is None:
                missing.append(Missing(t, f, reason))
                continue
            if foreign:
                notes.append(Missing(t, f, "compared from a validation/summary.json without any checkpoint (copied "
                                           "in; sweep never trains over it)"))
            absent = absent_from_reference(data) if overlap else {}
            row.folds.append(f)
            row.cases[f] = cases
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

    rows = _merge_rows(rows, folds, notes)
    _link_references(rows, reference, [*keys, FOREGROUND], overlap, bootstrap, seed, missing)
    return Comparison(dataset_name, configuration, plans, metric, reference, folds, classes, rows, missing, notes,
                      bootstrap, seed)


def _pair(row: Row, ref: Row, keys: Sequence[str], overlap: bool, resamples: int, seed: int,
          missing: list) -> None:
    """Fill ``row.paired``: the cases of the folds both rows have, pooled; unmatched cases go to ``missing``."""
    common = [f for f in row.folds if f in ref.folds]
    for f in common:
        only_here, only_ref = set(row.cases[f]) - set(ref.cases[f]), set(ref.cases[f]) - set(row.cases[f])
        if only_here or only_ref:
            missing.append(Missing(row.trainer, f, f"{len(only_here)} validation cases without a match in "
                                                   f"{ref.trainer}'s fold {f} and {len(only_ref)} of its cases "
                                                   f"without one here: left out of the paired statistics "
                                                   f"(different splits?)"))
    for key in keys:
        a, b = ({(_fold_sort_key(f), case): _case_value(m, key, overlap)
                 for f in common for case, m in r.cases[f].items()} for r in (row, ref))
        found = paired_differences(a, b, skip_absent=overlap)
        row.paired[key] = paired_stats(found.diffs, common, len(found.left_out), resamples, seed)


def _merge_rows(runs: Sequence[Row], folds: Sequence[str], notes: list) -> list[Row]:
    """One row per setting and kind of run, in the order of the runs.

    A run (one results folder) is keyed by its setting and whether it is seeded. Unseeded: a setting trained
    under one name keeps that run's row unchanged; under several names (``nnUNetTrainerPolyDice`` and
    ``nnUNetTrainerPolyDice_K2_eps1``) one row named by the setting takes each fold from the name that
    spells the setting out, else from the first name that has it; a fold that another name has as well is
    listed in ``notes`` (not compared, not pooled: one value per fold, as for one name). Seeded: one row named
    by the setting whose instances are the (fold, seed) pairs of its runs, by the same rule per instance.
    """
    groups: dict = {}
    for run in runs:
        setting, s = setting_and_seed(run.trainer)
        groups.setdefault((setting, s is not None), []).append((s, run))
    rows = []
    for (setting, seeded), members in groups.items():
        if not seeded and len(members) == 1:
            row = members[0][1]
            row.setting, row.members = setting, [row.trainer]
            rows.append(row)
            continue
        row = Row(setting, setting=setting, members=[run.trainer for _, run in members],
                  seeds=sorted({s for s, _ in members}) if seeded else None)
        # the name that spells the setting out first, the others in their order
        ordered = sorted(members, key=lambda m: m[1].trainer != setting + ("" if m[0] is None else f"_s{m[0]}"))
        taken: dict = {}
        for s, run in ordered:
            for f in run.folds:
                key = f if s is None else (f, s)
                if key in taken:
                    where = f"fold {f}" if s is None else f"fold {f}, seed {s}"
                    notes.append(Missing(run.trainer, f, f"the same setting as {taken[key]}, which has {where} too: "
                                                         f"that one is compared in the row {setting}, this one not"))
                    continue
                taken[key] = run.trainer
                row.cases[key] = run.cases[f]
                for k, cell in run.cells.items():
                    if f in cell.values:
                        row.cells.setdefault(k, Cell()).values[key] = cell.values[f]
                    else:
                        row.cells.setdefault(k, Cell())
        row.cases = {k: row.cases[k] for k in sorted(row.cases, key=_instance_key)}
        for cell in row.cells.values():
            cell.values = {k: cell.values[k] for k in sorted(cell.values, key=_instance_key)}
        present = {k[0] if seeded else k for k in row.cases}
        row.folds = [f for f in folds if f in present]
        if len(members) > 1:
            notes.append(Missing(setting, None, f"{', '.join(row.members)}: one setting, one row {setting}"
                                                + (f" ({row.label})" if seeded else "")))
        rows.append(row)
    return rows


def _instance_key(key):
    """Sort key of a fold or a (fold, seed) instance."""
    return (_fold_sort_key(key), -1) if isinstance(key, str) else (_fold_sort_key(key[0]), key[1])


def _link_references(rows: Sequence[Row], reference: str, keys: Sequence[str], overlap: bool, resamples: int,
                     seed: int, missing: list) -> None:
    """Set each row's reference and its differences to it: the reference's row of the same kind (seeded or
    not) with the row's schedule suffix if that has results, else the reference as given (:func:`reference_for`
    on settings); with only the other kind there, :attr:`Row.reference_note` says so."""
    base = split_schedule(_unseeded(reference))[0]
    by_kind = {(r.setting, r.seeds is not None): r for r in reversed(rows) if r.n_instances > 0}
    orphans = []
    for row in rows:
        if row.n_instances == 0:
            continue
        kind = row.seeds is not None
        candidates = [setting_and_seed(base + schedule_suffix(*split_schedule(row.setting)[1:]))[0],
                      setting_and_seed(_unseeded(reference))[0]]
        ref = next((by_kind[(c, kind)] for c in candidates if (c, kind) in by_kind), None)
        if ref is None:
            other = next((by_kind[(c, not kind)] for c in candidates if (c, not kind) in by_kind), None)
            if other is None:
                orphans.append(row.trainer)
                continue
            row.reference_note = (f"the reference {other.trainer} has only {'unseeded' if kind else 'seeded'} runs: "
                                  f"a {'seeded' if kind else 'unseeded'} row is compared only with "
                                  f"{'seeded runs of the same seeds' if kind else 'unseeded runs'}, so no difference")
            missing.append(Missing(row.trainer + (f" [{row.label}]" if kind else ""), None, row.reference_note))
            continue
        row.reference = ref.trainer
        for key in keys:
            a, b = row.cells.get(key, Cell()).values, ref.cells.get(key, Cell()).values
            common = [k for k in a if k in b]
            row.diff_folds[key] = common
            row.diffs[key] = (statistics.fmean(a[k] for k in common) - statistics.fmean(b[k] for k in common)
                              if common else None)
        if kind:
            for key in keys:
                row.seeded[key] = Seeded(seed_sd=seed_sd(row.cells.get(key, Cell()).values))
        if row is not ref:
            (_pair_seeded if kind else _pair)(row, ref, keys, overlap, resamples, seed, missing)
    if orphans:
        missing.append(Missing(reference, None, f"reference trainer (or its variant with the same schedule) has "
                                                f"no results; no differences for {', '.join(orphans)}"))
    _holm_seeded(rows, keys, resamples, seed)


def _unseeded(name: str) -> str:
    try:
        return split_seed(name)[0]
    except ValueError:
        return name


def _pair_seeded(row: Row, ref: Row, keys: Sequence[str], overlap: bool, resamples: int, seed: int,
                 missing: list) -> None:
    """Fill ``row.seeded[key]``: the per-case differences over the (fold, seed) pairs both rows have, for
    :func:`_holm_seeded`; unmatched cases and instances without a reference run go to ``missing``."""
    common = [k for k in row.cases if k in ref.cases]
    lacking = [k for k in row.cases if k not in ref.cases]
    if lacking:
        missing.append(Missing(f"{row.trainer} [{row.label}]", None,
                               f"no run of {ref.trainer} with the same (fold, seed) for "
                               f"{', '.join(f'fold {f} seed {s}' for f, s in lacking)}: left out of the differences"))
    for f, s in common:
        only_here, only_ref = set(row.cases[(f, s)]) - set(ref.cases[(f, s)]), set(ref.cases[(f, s)]) - set(
            row.cases[(f, s)])
        if only_here or only_ref:
            missing.append(Missing(f"{row.trainer}_s{s}", f, f"{len(only_here)} validation cases without a match in "
                                                            f"{ref.trainer}_s{s}'s fold {f} and {len(only_ref)} of "
                                                            f"its cases without one here: left out of the paired "
                                                            f"statistics (different splits?)"))
    for key in keys:
        entry = row.seeded[key]
        diffs = {}
        for inst in common:
            a, b = ({case: _case_value(m, key, overlap) for case, m in r.cases[inst].items()} for r in (row, ref))
            found = paired_differences(a, b, skip_absent=overlap)
            entry.left_out += len(found.left_out)
            if found.diffs:
                diffs[inst] = dict(zip(found.cases, found.diffs))
        entry.instances, entry.diffs = list(diffs), diffs
        if not diffs:
            entry.notes.append("no (fold, seed) in common with the reference" if not common else "no paired case")


def _holm_seeded(rows: Sequence[Row], keys: Sequence[str], resamples: int, seed: int) -> None:
    """Per reference and class, :func:`compare_instances` over the seeded rows compared with it: Holm's
    adjustment across those rows."""
    for reference in dict.fromkeys(r.reference for r in rows if r.seeds is not None and r.reference):
        group = [r for r in rows if r.seeds is not None and r.reference == reference and r.trainer != reference]
        for key in keys:
            paired = [r for r in group if r.seeded[key].diffs]
            found = compare_instances({r.trainer: r.seeded[key].diffs for r in paired},
                                      {r.trainer: r.cells[key].values for r in paired}, resamples, seed)
            for r in group:
                entry = r.seeded[key]
                entry.result = found.get(r.trainer)
                if entry.result is not None and entry.result.p is None:
                    entry.notes.append(f"p: fewer than {MIN_INSTANCES} non-zero (fold, seed) differences")


# -------------------------------------------------------------------------------------- heat maps

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_") or "class"


def heatmap_groups(comparison: Comparison) -> dict:
    """``{group label: {(K, epsilon): Row}}`` for each Poly family (per alpha/beta and schedule) with at
    least two (K, epsilon) settings among the rows. The label is used in the file names; seeded rows make
    groups of their own (label ending ``_seeded``, each cell the mean over its (fold, seed) runs)."""
    groups: dict = {}
    for row in comparison.rows:
        spec = row.spec
        if spec is None or spec.family is None or not spec.family.loss.is_poly:
            continue
        label = spec.family.name
        if "a" in spec.family.params:
            label += f"_a{format_number(spec.alpha)}_b{format_number(spec.beta)}"
        label += schedule_suffix(spec.epochs, spec.iterations) + ("" if row.seeds is None else "_seeded")
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
            full = len(comparison.folds) * (1 if row.seeds is None else len(row.seeds))
            notes[i][j] = f"{cell.mean:.3f}" + (f"\nn={cell.n}/{full}" if cell.n < full else "")
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
    over = "folds x seeds" if label.endswith("_seeded") else "folds"
    ax.set_title(f"{label}\n{name}: mean validation {comparison.metric} over {over}", fontsize=9)
    fig.colorbar(image, ax=ax, label=f"mean {comparison.metric}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------- writing

def default_out_dir(results: Path, dataset_name: str, configuration: str, plans: str = "nnUNetPlans") -> Path:
    """``<results>/<dataset>/polydice_compare_<configuration>`` (``polydice_compare_<plans>_<configuration>``
    for plans other than nnUNetPlans, so that two plans do not share one folder)."""
    return outputs.default_out_dir(results, dataset_name, configuration, plans, "compare")


def write_outputs(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Write ``comparison.md``, ``comparison.csv`` and the heat maps to ``out_dir`` (created if needed).

    Only files this tool wrote before (listed in ``.polydice_compare.json``) are overwritten; such
    files that this run does not produce any more (e.g. heat maps of a family no longer compared) are
    removed. Returns the paths written.

    Raises:
        FileExistsError: when a file to be written exists and was not written by this tool; nothing
            is written then.
    """
    folder = outputs.OwnedFolder(out_dir, "compare")
    heatmaps = _heatmap_files(comparison)
    targets = ["comparison.md", "comparison.csv", *[h[0] for h in heatmaps]]
    folder.claim(targets)
    out_dir = folder.out_dir
    written = []
    for fname, label, cells, key, name in heatmaps:
        _plot_heatmap(out_dir / fname, comparison, label, cells, key, name)
        written.append(out_dir / fname)
    (out_dir / "comparison.csv").write_text(comparison.csv_text(), encoding="utf-8")
    (out_dir / "comparison.md").write_text(comparison.markdown([h[0] for h in heatmaps]), encoding="utf-8")
    folder.commit(targets)
    return [out_dir / "comparison.md", out_dir / "comparison.csv", *written]
