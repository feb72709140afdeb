"""What a comparison holds, without rendering: cells, rows, paired statistics, missing entries, the whole table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_polydice.experiments.layout import FOREGROUND, FOREGROUND_TITLE, OVERLAP_METRICS
from nnunet_polydice.experiments.statistics import DEFAULT_BOOTSTRAP, DEFAULT_SEED, InstanceComparison
from nnunet_polydice.integration.naming import parse_trainer_name

__all__ = ["OVERLAP_METRICS", "Selection", "Method", "Cell", "Paired", "PairedDifferences", "Row", "Seeded", "Missing",
           "Comparison"]



@dataclass(frozen=True)
class Selection:
    """Which runs :func:`compare` reads: ``<results>/<dataset_name>/<trainer>__<plans>__<configuration>/fold_<f>``.

    ``trainers``: default every trainer folder of the dataset with these plans and configuration; ``folds``:
    default the union of their folds; ``seeds``: only the seeded runs (``_s<N>`` names) of these seeds
    (unseeded runs are not affected)."""

    results: Path
    dataset_name: str
    configuration: str
    plans: str = "nnUNetPlans"
    trainers: Sequence[str] | None = None
    folds: Sequence | None = None
    seeds: Sequence[int] | None = None


@dataclass(frozen=True)
class Method:
    """How :func:`compare` compares: the reference trainer (:func:`reference_for`; ``reference_required``: it must
    have results, as when a user names it), the metric (one of nnU-Net's per-class metrics) and the bootstrap
    (``bootstrap`` resamples of the confidence intervals, numpy ``default_rng(seed)``)."""

    reference: str = "nnUNetTrainer"
    metric: str = "Dice"
    bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = DEFAULT_SEED
    reference_required: bool = False

    @property
    def overlap(self) -> bool:
        """The metric scores overlap (:data:`OVERLAP_METRICS`): nnU-Net's 0 for a false positive, NaN for none."""
        return self.metric in OVERLAP_METRICS


@dataclass
class Cell:
    """One trainer x class: the values per run (:class:`Instance`) and their summary (NaN runs are left out)."""

    values: dict = field(default_factory=dict)  # Instance -> value

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values.values()) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over runs (ddof = 1); None with fewer than two runs."""
        return statistics.stdev(self.values.values()) if len(self.values) >= 2 else None

    def pairs(self) -> dict:
        """``{(fold, seed): value}``: the values keyed as :mod:`nnunet_polydice.experiments.statistics` takes them."""
        return {inst.pair: v for inst, v in self.values.items()}


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

    Runs are :class:`Instance` s in :attr:`cells`, :attr:`cases` and :attr:`diff_folds`: ``Instance(fold)`` in
    an unseeded row, ``Instance(fold, seed)`` in a seeded one (:attr:`seeds` not None)."""

    trainer: str  # the name trained, or the setting's name when several names were merged (and for seeded rows)
    folds: list = field(default_factory=list)  # folds with a usable summary.json
    cells: dict = field(default_factory=dict)  # class key (or FOREGROUND) -> Cell
    reference: str | None = None
    diffs: dict = field(default_factory=dict)  # class key (or FOREGROUND) -> float | None, over diff_folds
    diff_folds: dict = field(default_factory=dict)  # class key (or FOREGROUND) -> instances both have
    cases: dict = field(default_factory=dict)  # Instance -> {case: {class key: (value, n_ref)}}
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

    @property
    def against_reference(self) -> bool:
        """It has a reference other than itself."""
        return self.reference is not None and self.reference != self.trainer


@dataclass
class Seeded:
    """A seeded row x class against the reference's seeded runs (:func:`compare`): the instances both have,
    the per-case differences on them and :func:`nnunet_polydice.experiments.statistics.compare_instances`."""

    instances: list = field(default_factory=list)  # Instances both rows have
    left_out: int = 0  # paired cases left out: the reference lacks the class (n_ref 0), or a value is NaN
    seed_sd: float | None = None  # the row's own seed-to-seed sd of the metric (its noise floor)
    result: InstanceComparison | None = None  # None: no paired case (see notes), or the reference row itself
    notes: list = field(default_factory=list)
    diffs: dict = field(default_factory=dict, repr=False)  # {Instance: {case: row - reference}}


@dataclass(frozen=True)
class Missing:
    """One entry of :attr:`Comparison.missing` (or of :attr:`Comparison.notes`)."""

    trainer: str
    fold: str | None  # None: the whole trainer
    reason: str

    def __str__(self) -> str:
        where = self.trainer if self.fold is None else f"{self.trainer} / fold {self.fold}"
        return f"{where}: {self.reason}"


@dataclass
class Comparison:
    """The table of :func:`compare`; :mod:`._render` writes it as text, markdown and CSV."""

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
        return [*self.classes, (FOREGROUND, FOREGROUND_TITLE)]

    def incomplete(self, row: Row) -> bool:
        """Fewer folds than compared; for a seeded row also fewer (fold, seed) runs than folds x its seeds."""
        return row.n_folds < len(self.folds) or (row.seeds is not None
                                                 and row.n_instances < len(self.folds) * len(row.seeds))

    @property
    def any_seeded(self) -> bool:
        return any(r.seeds is not None for r in self.rows)
