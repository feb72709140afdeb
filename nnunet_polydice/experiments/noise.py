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
from dataclasses import dataclass

from nnunet_polydice.experiments import statistics
from nnunet_polydice.experiments.results import summary_values
from nnunet_polydice.experiments.runs import fold_status

FOREGROUND = "foreground mean"


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

    def seed_sd(self, key: str) -> float | None:
        values = {k: v for k, v in self.values[key].items() if math.isfinite(v)}
        return statistics.seed_sd(values) if values else None

    def mdd(self, key: str, correlation: float) -> float | None:
        sd = self.seed_sd(key)
        if sd is None:
            return None
        return statistics.planned_mdd(sd, self.folds, self.seeds, correlation=correlation,
                                      alpha=self.alpha / self.settings, power=self.power)

    def lines(self, names: Mapping[str, str] | None = None) -> list[str]:
        names = dict(names or {})
        instances = sorted({i for v in self.values.values() for i in v}, key=lambda i: (i[0], i[1]))
        out = [f"Seed noise of {self.trainer}: {len(instances)} runs "
               f"({', '.join(f'fold {f} seed {s}' for f, s in instances)})."]
        for fold, seed, why in self.missing:
            out.append(f"  fold {fold} seed {seed}: no result ({why})")
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
        if any(self.seed_sd(k) is None for k in self.values):
            out.append("A seed sd needs two seeds on at least one fold.")
        return out


def _num(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def collect(fold_dirs: Mapping[tuple[str, int], object], metric: str = "Dice") -> tuple[dict, list]:
    """``({class: {(fold, seed): value}}, missing)`` from the fold folders of a trainer's seeded runs.

    Classes are keyed as nnU-Net's summary keys them, plus :data:`FOREGROUND`; a run that is not finished
    (the rule ``sweep`` and ``compare`` use) is listed in ``missing`` with its state.
    """
    values: dict = {}
    missing = []
    for (fold, seed), folder in fold_dirs.items():
        status = fold_status(folder)
        if not status.finished or status.summary is None:
            missing.append((fold, seed, status.state + (f": {status.reason}" if status.reason else "")))
            continue
        per_class, fg = summary_values(status.summary, metric)
        for key, value in {**per_class, FOREGROUND: fg}.items():
            values.setdefault(key, {})[(str(fold), int(seed))] = value
    return values, missing


def report(trainer: str, fold_dirs: Mapping, *, folds: int, seeds: int, settings: int = 1,
           correlation: float = 0.0, metric: str = "Dice") -> NoiseReport:
    """:class:`NoiseReport` of ``trainer`` from its seeded runs ``{(fold, seed): fold folder}``."""
    values, missing = collect(fold_dirs, metric)
    return NoiseReport(trainer, values, missing, folds=folds, seeds=seeds, settings=settings,
                       correlation=correlation)


def planned_counts(folds: Sequence, seeds: Sequence, plan_folds: int | None, plan_seeds: int | None) -> tuple:
    """``(F, S)`` of the planned grid: the measured folds and seeds unless given."""
    return (plan_folds or len(folds)), (plan_seeds or len(seeds))
