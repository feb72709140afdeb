"""The one reader of nnU-Net's results: which folders are folds, and which summary values can enter a number."""

import math

import pytest

from nnunet_polydice.experiments.layout import SummaryError, fold_of, metric_value


@pytest.mark.parametrize("name, fold", [("fold_0", "0"), ("fold_12", "12"), ("fold_all", None), ("fold_01", None),
                                        ("fold_x", None), ("fold_\u0663", None), ("fold_0_old", None)])
def test_only_canonical_fold_int_folders_are_folds(name, fold):
    assert fold_of(name) == fold


@pytest.mark.parametrize("value, metric, expected", [(0.5, "Dice", 0.5), (1, "IoU", 1.0), (0, "Dice", 0.0),
                                                     (7, "FP", 7.0), (123456.0, "n_ref", 123456.0)])
def test_values_that_are_nnunets(value, metric, expected):
    assert metric_value(value, metric, "x") == expected


@pytest.mark.parametrize("value", [None, math.nan])
def test_null_and_nan_are_nnunets_nan(value):
    assert math.isnan(metric_value(value, "Dice", "x"))


@pytest.mark.parametrize("value, metric, message", [
    (True, "Dice", "mean/1/Dice = true is not a number"),
    ("0.5", "Dice", 'mean/1/Dice = "0.5" is not a number'),
    ([0.5], "Dice", "mean/1/Dice = [0.5] is not a number"),
    (math.inf, "Dice", "mean/1/Dice = inf is not a finite number"),
    (1.0000001, "Dice", "outside [0, 1]"),
    (-0.1, "IoU", "outside [0, 1]"),
    (-3, "FP", "is negative"),
])
def test_damaged_values_are_refused_naming_where_and_what(value, metric, message):
    with pytest.raises(SummaryError) as err:
        metric_value(value, metric, f"mean/1/{metric}")
    assert str(err.value).startswith("validation/summary.json: ") and message.replace("Dice", metric) in str(err.value)
