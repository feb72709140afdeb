"""Paired per-case statistics of a row against its reference: unseeded rows case by case, seeded rows with Holm."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from nnunet_polydice.experiments.compare._model import Method, Missing, Paired, PairedDifferences, Row
from nnunet_polydice.experiments.instance import Instance, fold_sort_key
from nnunet_polydice.experiments.layout import FOREGROUND
from nnunet_polydice.experiments.statistics import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_SEED,
    MIN_CASES,
    MIN_INSTANCES,
    bootstrap_ci,
    compare_instances,
    wilcoxon_p,
)
from nnunet_polydice.integration.naming import seed_suffix

__all__ = ["paired_differences", "paired_stats", "case_value", "pair_unseeded", "pair_seeded", "holm_seeded"]


def paired_differences(a: Mapping, b: Mapping, skip_absent: bool = False) -> PairedDifferences:
    """The per-case differences ``d_i = a_i - b_i`` of two trainers over the cases both have.

    Args:
        a, b: ``{case key: (value, n_ref)}`` of the trainer and of its reference (any hashable, sortable
            case key, e.g. ``(fold, file name)``).
        skip_absent: also leave out a case whose reference lacks the class (``n_ref == 0`` in either). By
            default such a case counts, as in nnU-Net (Dice 0 for a false positive). A case with a NaN value
            (nnU-Net's value when reference and prediction are both empty) is always left out.

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


def case_value(metrics: Mapping, key: str) -> tuple[float, float | None]:
    """``(value, n_ref)`` of one case for a class key, or for :data:`FOREGROUND` the mean over the classes
    whose value is defined for the case (not NaN: nnU-Net's rule, so a false positive's 0 counts) with the
    number of those classes as its ``n_ref``."""
    if key != FOREGROUND:
        return metrics.get(key, (math.nan, None))
    defined = [v for k, (v, _) in metrics.items() if k != "0" and not math.isnan(v)]
    return (statistics.fmean(defined), float(len(defined))) if defined else (math.nan, 0.0)


def _unmatched(here: Mapping, there: Mapping) -> tuple[int, int]:
    """How many cases of ``here`` lack a match in ``there``, and how many of ``there`` lack one here."""
    return len(set(here) - set(there)), len(set(there) - set(here))


def pair_unseeded(row: Row, ref: Row, keys: Sequence[str], method: Method, missing: list) -> None:
    """Fill ``row.paired``: the cases of the folds both rows have, pooled; unmatched cases go to ``missing``."""
    common = [Instance(f) for f in row.folds if f in ref.folds]
    for inst in common:
        only_here, only_ref = _unmatched(row.cases[inst], ref.cases[inst])
        if only_here or only_ref:
            missing.append(Missing(row.trainer, inst.fold, f"{only_here} validation cases without a match in "
                                                           f"{ref.trainer}'s fold {inst.fold} and {only_ref} of its "
                                                           f"cases without one here: left out of the paired "
                                                           f"statistics (different splits?)"))
    folds = [inst.fold for inst in common]
    for key in keys:
        a, b = ({(fold_sort_key(inst.fold), case): case_value(m, key)
                 for inst in common for case, m in r.cases[inst].items()} for r in (row, ref))
        found = paired_differences(a, b)
        row.paired[key] = paired_stats(found.diffs, folds, len(found.left_out), method.bootstrap, method.seed)


def pair_seeded(row: Row, ref: Row, keys: Sequence[str], method: Method, missing: list) -> None:
    """Fill ``row.seeded[key]``: the per-case differences over the (fold, seed) pairs both rows have, for
    :func:`holm_seeded`; unmatched cases and instances without a reference run go to ``missing``."""
    common = [inst for inst in row.cases if inst in ref.cases]
    lacking = [inst for inst in row.cases if inst not in ref.cases]
    if lacking:
        missing.append(Missing(f"{row.trainer} [{row.label}]", None,
                               f"no run of {ref.trainer} with the same (fold, seed) for "
                               f"{', '.join(inst.label for inst in lacking)}: left out of the differences"))
    for inst in common:
        only_here, only_ref = _unmatched(row.cases[inst], ref.cases[inst])
        if only_here or only_ref:
            suffix = seed_suffix(inst.seed)
            missing.append(Missing(row.trainer + suffix, inst.fold,
                                   f"{only_here} validation cases without a match in {ref.trainer}{suffix}'s "
                                   f"fold {inst.fold} and {only_ref} of its cases without one here: left out of "
                                   f"the paired statistics (different splits?)"))
    for key in keys:
        entry = row.seeded[key]
        diffs = {}
        for inst in common:
            a, b = ({case: case_value(m, key) for case, m in r.cases[inst].items()}
                    for r in (row, ref))
            found = paired_differences(a, b)
            entry.left_out += len(found.left_out)
            if found.diffs:
                diffs[inst] = dict(zip(found.cases, found.diffs))
        entry.instances, entry.diffs = list(diffs), diffs
        if not diffs:
            entry.notes.append("no (fold, seed) in common with the reference" if not common else "no paired case")


def holm_seeded(rows: Sequence[Row], keys: Sequence[str], method: Method) -> None:
    """Per reference and class, :func:`compare_instances` over the seeded rows compared with it: Holm's
    adjustment across those rows."""
    for reference in dict.fromkeys(r.reference for r in rows if r.seeds is not None and r.reference):
        group = [r for r in rows if r.seeds is not None and r.reference == reference and r.trainer != reference]
        for key in keys:
            paired = [r for r in group if r.seeded[key].diffs]
            found = compare_instances({r.trainer: {i.pair: d for i, d in r.seeded[key].diffs.items()} for r in paired},
                                      {r.trainer: r.cells[key].pairs() for r in paired}, method.bootstrap,
                                      method.seed)
            for r in group:
                entry = r.seeded[key]
                entry.result = found.get(r.trainer)
                if entry.result is not None and entry.result.p is None:
                    entry.notes.append(f"p: fewer than {MIN_INSTANCES} non-zero (fold, seed) differences")
