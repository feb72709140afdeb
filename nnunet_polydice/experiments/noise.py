"""Before a grid, the noise: how far apart seeds of one setting land, and what a planned grid can detect.

``nnunet-polydice noise`` trains the reference trainer on a few seeds (``<reference>_s<N>`` on each fold, through
the same jobs as ``sweep``: finished runs are reused), reads nnU-Net's validation summaries and reports, per class
and for the foreground mean:

- the values per (fold, seed) and the **seed-to-seed sd** (:func:`statistics.seed_sd`: pooled within folds, so
  differences between folds do not count), the noise floor below which no loss setting can be told apart;
- the **minimal detectable difference** of the planned comparison (:func:`statistics.planned_mdd`): the smallest
  true mean difference a paired test over ``F x S`` instances detects with 80 % power at level
  ``alpha / m`` (Bonferroni over the ``m`` settings the grid compares against the reference, the worst case of
  the Holm correction ``compare`` applies), for independent seeds (rho = 0) and for the common-random-numbers
  gain the user expects (``--correlation``; ``compare`` measures it afterwards);
- the floor of the Wilcoxon test over instances: with fewer than :data:`statistics.MIN_INSTANCES` instances no
  two-sided p can fall below 0.05, whatever the differences.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nnunet_polydice.experiments import statistics
from nnunet_polydice.experiments.instance import Instance
from nnunet_polydice.experiments.layout import (
    FOREGROUND,
    FOREGROUND_TITLE,
    OVERLAP_METRICS,
    SummaryError,
    absent_from_reference,
    summary_path,
    summary_values,
)
from nnunet_polydice.experiments.runs import fold_status


@dataclass(frozen=True)
class NoiseReport:
    """Seed noise of one trainer and what a planned grid over ``folds x seeds`` can detect."""

    trainer: str
    values: dict          # {class key: {(fold, seed): value}}, FOREGROUND included
    missing: list         # [(fold, seed, reason)] of runs without a readable result
    folds: int            # planned folds
    seeds: int            # planned seeds
    settings: int         # settings the grid compares with the reference
    correlation: float
    alpha: float = 0.05
    power: float = 0.8
    absent: dict = field(default_factory=dict)  # {class key: [(fold, seed)]}: runs whose references lack it

    def seed_sd(self, key: str) -> float | None:
        """The seed sd of a class (:func:`statistics.seed_sd`); None when no fold has two finite values, or when
        every run scored the same (no noise could be measured: a zero sd would claim any difference detectable)."""
        values = {k: v for k, v in self.values[key].items() if math.isfinite(v)}
        if len(set(values.values())) < 2:
            return None
        return statistics.seed_sd(values)

    def why_no_sd(self, key: str) -> str | None:
        """Why :meth:`seed_sd` of a class is None (None when it is not)."""
        if self.seed_sd(key) is not None:
            return None
        values = [v for v in self.values[key].values() if math.isfinite(v)]
        if len(values) >= 2 and len(set(values)) == 1:
            return f"every run scored {values[0]:.4f}: no noise could be measured"
        if self.absent.get(key) and not values:
            return "absent from the validation reference of every run: no score to measure noise on"
        return "a seed sd needs two seeds with a value on at least one fold"

    def mdd(self, key: str, correlation: float) -> float | None:
        sd = self.seed_sd(key)
        if sd is None:
            return None
        return statistics.planned_mdd(sd, self.folds, self.seeds, correlation=correlation,
                                      alpha=self.alpha / self.settings, power=self.power)

    def lines(self, names: Mapping[str, str] | None = None) -> list[str]:
        names = {FOREGROUND: FOREGROUND_TITLE, **dict(names or {})}
        instances = sorted({Instance.of(i) for v in self.values.values() for i in v})
        out = [f"Seed noise of {self.trainer}: {len(instances)} runs "
               f"({', '.join(f'fold {f} seed {s}' for f, s in instances)})."]
        for fold, seed, why in self.missing:
            out.append(f"  fold {fold} seed {seed}: no result ({why})")
        for key, runs in self.absent.items():
            out.append(f"  {names.get(key, key)}: absent from the validation reference of "
                       f"{', '.join(Instance.of(i).label for i in runs)}; left out there (no overlap score)")
        n = self.folds * self.seeds
        out.append(f"Planned grid: {self.folds} fold(s) x {self.seeds} seed(s) = {n} instances per setting, "
                   f"{self.settings} setting(s) against the reference (level {self.alpha:g}/{self.settings}, "
                   f"power {self.power:g}).")
        rhos = [0.0] + ([self.correlation] if self.correlation else [])
        header = f"{'class':22s} {'mean':>7s} {'seed sd':>8s}" + "".join(f" {f'MDD rho={r:g}':>11s}" for r in rhos)
        out += [header, "-" * len(header)]
        for key in self.values:
            vals = [v for v in self.values[key].values() if math.isfinite(v)]
            mean = sum(vals) / len(vals) if vals else math.nan
            cells = [_num(mean), _num(self.seed_sd(key))]
            label = names.get(key, key)
            out.append(f"{label[:22]:22s} {cells[0]:>7s} {cells[1]:>8s}"
                       + "".join(f" {_num(self.mdd(key, r)):>11s}" for r in rhos))
        out.append("seed sd: sd of a run's validation Dice between seeds of one fold (pooled over folds); a "
                   "difference between two settings smaller than about it is noise. MDD: the smallest true "
                   "difference the planned comparison detects (normal approximation; optimistic for few "
                   "instances); rho: correlation of two settings' results on the same (fold, seed), what common "
                   "random numbers gain (compare reports it once the grid is trained).")
        if n < statistics.MIN_INSTANCES:
            out.append(f"With {n} instances per setting no Wilcoxon p can fall below 0.05 (the smallest two-sided "
                       f"p is 2/2^{n}); compare's verdict needs at least {statistics.MIN_INSTANCES} (folds x seeds).")
        for key in self.values:
            why = self.why_no_sd(key)
            if why:
                out.append(f"{names.get(key, key)}: no seed sd ({why}).")
        return out


def _num(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def collect(fold_dirs: Mapping[tuple[str, int], object], metric: str = "Dice") -> tuple[dict, list, dict]:
    """``({class: {(fold, seed): value}}, missing, absent)`` from the fold folders of a trainer's seeded runs.

    Classes are keyed as nnU-Net's summary keys them, plus :data:`FOREGROUND`; a run that is not finished
    (the rule ``sweep`` and ``compare`` use) or whose summary is damaged is listed in ``missing`` with why. For
    an overlap metric, a class that a run's validation references lack altogether (nnU-Net's 0 is then only
    false positives, its NaN nothing predicted) has no value in that run: ``absent`` lists those runs.
    """
    values: dict = {}
    missing = []
    absent: dict = {}
    for (fold, seed), folder in fold_dirs.items():
        status = fold_status(folder)
        if not status.finished or status.summary is None:
            missing.append((fold, seed, status.state + (f": {status.reason}" if status.reason else "")))
            continue
        try:
            per_class, fg = summary_values(status.summary, metric)
        except SummaryError as err:
            missing.append((fold, seed, f"{err} ({summary_path(folder)})"))
            continue
        lacking = absent_from_reference(status.summary) if metric in OVERLAP_METRICS else {}
        inst = Instance(fold, seed)
        for key, value in {**per_class, FOREGROUND: fg}.items():
            if key in lacking:
                absent.setdefault(key, []).append(inst)
                value = math.nan
            values.setdefault(key, {})[inst] = value
    return values, missing, absent


def report(trainer: str, fold_dirs: Mapping, *, folds: int, seeds: int, settings: int = 1,
           correlation: float = 0.0, metric: str = "Dice") -> NoiseReport:
    """:class:`NoiseReport` of ``trainer`` from its seeded runs ``{(fold, seed): fold folder}``."""
    values, missing, absent = collect(fold_dirs, metric)
    return NoiseReport(trainer, values, missing, folds=folds, seeds=seeds, settings=settings,
                       correlation=correlation, absent=absent)


def planned_counts(folds: Sequence, seeds: Sequence, plan_folds: int | None, plan_seeds: int | None) -> tuple:
    """``(F, S)`` of the planned grid: the measured folds and seeds unless given."""
    return (plan_folds or len(folds)), (plan_seeds or len(seeds))
