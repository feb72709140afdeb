"""A run's value as a tune sees it: the validation Dice of a finished run's ``summary.json`` (foreground mean or a
label's), per case for the Wilcoxon pruner and the race, and the finished runs of some settings through a runner.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from nnunet_polydice.experiments.layout import per_case_values, summary_values
from nnunet_polydice.experiments.tune.setup import TuneSetup
from nnunet_polydice.experiments.tune.space import Setting

__all__ = ["fold_value", "case_values", "finished_values"]


def fold_value(summary: dict, label_key: str | None = None) -> float:
    """nnU-Net's validation Dice of a fold: ``foreground_mean['Dice']``, or ``mean[label_key]['Dice']``.

    nnU-Net's foreground mean is the plain mean over the classes, so it is NaN as soon as one class is in neither
    the reference nor the prediction of any validation case: a fold whose slices lack a structure, on which a
    run is *right* not to paint it. Then the value is the mean over the classes whose Dice is defined (the rule
    :func:`case_values` applies to each case); where every class is defined, it is nnU-Net's value as it is.

    Raises:
        ValueError: when it is missing, or NaN for the label (or for every class).
    """
    try:
        per_class, foreground = summary_values(summary, "Dice")
    except (KeyError, TypeError, ValueError) as err:  # SummaryError included: a damaged value enters no number
        raise ValueError(f"validation/summary.json has no usable Dice: {err}") from None
    if label_key is not None and label_key not in per_class:
        raise ValueError(f"validation/summary.json has no Dice for {label_key}.")
    value = foreground if label_key is None else per_class[label_key]
    if math.isnan(value) and label_key is None:
        defined = [v for v in per_class.values() if not math.isnan(v)]
        value = statistics.fmean(defined) if defined else math.nan
    if math.isnan(value):
        raise ValueError(f"validation Dice of {label_key or 'every foreground class'} is NaN (in neither the "
                         f"reference nor the prediction of any validation case).")
    return value


def case_values(summary: dict | None, label_key: str | None = None) -> dict:
    """``{case: Dice}`` of one run's validation/summary.json: the ``--label``'s Dice, or the mean over the
    foreground classes that are defined for the case (NaN classes, absent from reference and prediction,
    left out); cases without any value left out; ``{}`` when the summary has no readable per-case part."""
    try:
        per = per_case_values(summary or {})
    except (KeyError, TypeError, ValueError):
        return {}
    out = {}
    for case, classes in per.items():
        if label_key is not None:
            value = classes.get(label_key, (math.nan, None))[0]
        else:
            defined = [v for v, _ in classes.values() if not math.isnan(v)]
            value = statistics.fmean(defined) if defined else math.nan
        if not math.isnan(value):
            out[case] = value
    return out


def finished_values(setup: TuneSetup, runner, settings: Sequence[Setting], instances: Sequence | None = None
                    ) -> tuple[dict, dict]:
    """``({trainer: {instance: Dice}}, {trainer: {instance: {case: Dice}}})`` of the finished runs that ``runner``
    (:mod:`~nnunet_polydice.experiments.tune.runner`) holds (live: nnU-Net's results folders, whoever trained them,
    a trial or ``sweep --seeds``; a replay: the runs it has replayed so far), read at no cost."""
    values, cases = {}, {}
    for s in settings:
        values[s.trainer], cases[s.trainer] = {}, {}
        for inst in setup.instances if instances is None else instances:
            summary = runner.finished_summary(setup.run_name(s, inst), inst.fold)
            if summary is None:
                continue
            try:
                values[s.trainer][inst] = fold_value(summary, setup.label_key)
            except ValueError:
                continue
            cases[s.trainer][inst] = case_values(summary, setup.label_key)
    return values, cases
