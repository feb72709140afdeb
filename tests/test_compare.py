"""``nnunet-polydice compare`` (nnunet_polydice.experiments.compare) on validation summaries written in tmp_path by
nnU-Net's own ``save_summary_json``, with Dice values chosen so that every number can be checked by hand, and the
paired statistics (bootstrap CI, Wilcoxon p) on differences whose answers are worked out in the comments."""

import csv
import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

from nnunet_polydice.cli import main
from nnunet_polydice.experiments import compare as results
from nnunet_polydice.experiments import statistics
from nnunet_polydice.experiments.instance import Instance

_SELECTION = ("plans", "trainers", "folds", "seeds")


def run_compare(results_dir, dataset_name, configuration, **options):
    """:func:`compare.compare` with the selection and the method given as one set of keyword options."""
    selection = results.Selection(results_dir, dataset_name, configuration,
                                  **{k: v for k, v in options.items() if k in _SELECTION})
    method = results.Method(**{k: v for k, v in options.items() if k not in _SELECTION})
    return results.compare(selection, method)

save_summary_json = pytest.importorskip("nnunetv2.evaluation.evaluate_predictions").save_summary_json

DS = "Dataset042_Toy"
LABELS = {"background": 0, "hippocampus": 1, "amygdala": 2}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_summary(path, dice: dict, absent: dict | None = None, finished: bool = True):
    """A summary.json as nnU-Net writes it: per-class means keyed by label (int) or region (tuple),
    the foreground mean over the classes, one case per fold here. ``absent``: {class: false-positive
    voxels} for classes the reference lacks (n_ref 0; nnU-Net's Dice is then 0, or NaN with nothing
    predicted). ``finished``: also an (empty) checkpoint_final.pth, as after a finished training."""
    absent = absent or {}
    means = {k: {"Dice": v, "IoU": v / (2 - v) if not math.isnan(v) else v, "FP": 1.0, "TP": 2.0, "FN": 3.0,
                 "TN": 4.0, "n_pred": 3.0, "n_ref": 5.0} for k, v in dice.items()}
    for k, fp in absent.items():
        means[k].update(FP=float(fp), TP=0.0, FN=0.0, n_pred=float(fp), n_ref=0.0)
    fg = {m: float(sum(means[k][m] for k in means) / len(means)) for m in means[next(iter(means))]}
    # nnU-Net writes the prediction's path, inside the fold folder: no two runs' summaries are the same bytes
    data = {"metric_per_case": [{"reference_file": "ref.nii.gz", "prediction_file": str(path.parent / "pred.nii.gz"),
                                 "metrics": {k: dict(v) for k, v in means.items()}}],
            "mean": means, "foreground_mean": fg}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_summary_json(data, str(path))
    if finished:
        (path.parent.parent / "checkpoint_final.pth").write_bytes(b"")


def write_cases(path, cases: dict):
    """A finished fold whose summary.json has several cases, built as nnU-Net's compute_metrics_on_folder
    does: ``cases`` = {reference file name: {class: (Dice, n_ref)}}; per class the nanmean over the cases of
    each metric, the foreground mean over the classes of those means."""
    per_case = []
    for name, classes in cases.items():
        metrics = {k: {"Dice": d, "IoU": d / (2 - d), "FP": 0.0 if r else 3.0, "TP": 1.0, "FN": 1.0, "TN": 9.0,
                       "n_pred": 2.0, "n_ref": float(r)} for k, (d, r) in classes.items()}
        per_case.append({"reference_file": f"/data/gt_segmentations/{name}", "prediction_file": str(path.parent / name),
                         "metrics": metrics})
    keys = list(per_case[0]["metrics"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN, as in nnU-Net
        means = {k: {m: float(np.nanmean([c["metrics"][k][m] for c in per_case])) for m in per_case[0]["metrics"][k]}
                 for k in keys}
    fg = {m: float(np.mean([means[k][m] for k in keys])) for m in means[keys[0]]}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_summary_json({"metric_per_case": per_case, "mean": means, "foreground_mean": fg}, str(path))
    (path.parent.parent / "checkpoint_final.pth").write_bytes(b"")


def trainer_dir(res, trainer, plans="nnUNetPlans", conf="2d"):
    d = res / DS / f"{trainer}__{plans}__{conf}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "dataset.json").write_text(json.dumps({"labels": LABELS, "file_ending": ".nii.gz"}))
    return d


# (hippocampus, amygdala) Dice per fold
DATA = {
    "nnUNetTrainer": {0: (0.5, 0.2), 1: (0.6, 0.3), 2: (0.7, 0.4)},
    "nnUNetTrainerPolyDice_K1_eps0": {0: (0.7, 0.4), 1: (0.8, 0.4), 2: (0.9, 0.4)},
    "nnUNetTrainerPolyDice_K2_eps0": {0: (0.6, 0.5), 1: (0.8, 0.7)},          # fold 2 unfinished
    "nnUNetTrainerPolyDice_K1_eps1": {0: (0.2, 0.1), 1: (0.4, 0.3), 2: (0.6, 0.5)},
    "nnUNetTrainer_3ep2it": {0: (0.1, 0.1), 1: (0.1, 0.1), 2: (0.1, 0.1)},
    "nnUNetTrainerPolyDice_K1_eps0_3ep2it": {0: (0.4, 0.2), 1: (0.4, 0.2), 2: (0.4, 0.2)},
    "nnUNetTrainerPolyDice_K1_eps0_5ep2it": {0: (0.3, 0.3), 1: (0.3, 0.3), 2: (0.3, 0.3)},
}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    raw, pre, res = tmp_path / "raw", tmp_path / "pre", tmp_path / "res"
    (raw / DS).mkdir(parents=True)
    for k, v in (("nnUNet_raw", raw), ("nnUNet_preprocessed", pre), ("nnUNet_results", res)):
        monkeypatch.setenv(k, str(v))
    for trainer, folds in DATA.items():
        d = trainer_dir(res, trainer)
        for f, (h, a) in folds.items():
            write_summary(d / f"fold_{f}" / "validation" / "summary.json", {1: h, 2: a})
    unfinished = trainer_dir(res, "nnUNetTrainerPolyDice_K2_eps0") / "fold_2"
    unfinished.mkdir()
    (unfinished / "checkpoint_latest.pth").write_bytes(b"")
    # results of other plans / configurations are not part of this comparison
    write_summary(trainer_dir(res, "nnUNetTrainerDiceLoss", plans="otherPlans") / "fold_0" / "validation" /
                  "summary.json", {1: 0.99, 2: 0.99})
    write_summary(trainer_dir(res, "nnUNetTrainerDiceLoss", conf="3d_fullres") / "fold_0" / "validation" /
                  "summary.json", {1: 0.99, 2: 0.99})
    return res


def test_summary_files_are_in_nnunets_format(tree):
    text = (tree / DS / "nnUNetTrainer__nnUNetPlans__2d" / "fold_0" / "validation" / "summary.json").read_text()
    data = json.loads(text)
    assert list(data) == ["foreground_mean", "mean", "metric_per_case"]  # sort_keys=True, as nnU-Net
    assert set(data["mean"]) == {"1", "2"}


def test_means_stds_and_differences_by_hand(tree):
    c = run_compare(tree, DS, "2d")
    assert [r.trainer for r in c.rows] == sorted(DATA)
    assert c.folds == ["0", "1", "2"]
    assert c.classes == [("1", "hippocampus"), ("2", "amygdala")]

    ref = c.row("nnUNetTrainer")
    assert ref.cells["1"].mean == pytest.approx(0.6) and ref.cells["1"].std == pytest.approx(0.1)
    assert ref.cells["2"].mean == pytest.approx(0.3) and ref.cells["2"].std == pytest.approx(0.1)
    assert ref.cells["foreground_mean"].mean == pytest.approx(0.45)  # (0.35 + 0.45 + 0.55) / 3
    assert ref.reference == "nnUNetTrainer" and ref.diffs["1"] == pytest.approx(0.0)

    k1 = c.row("nnUNetTrainerPolyDice_K1_eps0")
    assert k1.cells["1"].mean == pytest.approx(0.8) and k1.cells["1"].std == pytest.approx(0.1)
    assert k1.cells["2"].mean == pytest.approx(0.4) and k1.cells["2"].std == pytest.approx(0.0)
    assert k1.diffs["1"] == pytest.approx(0.2) and k1.diffs["2"] == pytest.approx(0.1)
    assert k1.diffs["foreground_mean"] == pytest.approx(0.6 - 0.45)

    k2 = c.row("nnUNetTrainerPolyDice_K2_eps0")
    assert k2.folds == ["0", "1"] and c.incomplete(k2)
    assert k2.cells["1"].mean == pytest.approx(0.7)
    assert k2.cells["1"].std == pytest.approx(math.sqrt(0.02))  # sample std of 0.6, 0.8 (ddof = 1)
    # the difference is over the folds both have (0 and 1): (0.6 + 0.8) / 2 - (0.5 + 0.6) / 2, not 0.7 - 0.6
    assert k2.diff_folds["1"] == [Instance("0"), Instance("1")]
    assert k2.diffs["1"] == pytest.approx(0.15) and k2.diffs["2"] == pytest.approx(0.6 - 0.25)
    assert k1.diff_folds["1"] == [Instance("0"), Instance("1"), Instance("2")]


def test_reference_has_the_rows_schedule_if_that_exists(tree):
    c = run_compare(tree, DS, "2d")
    short = c.row("nnUNetTrainerPolyDice_K1_eps0_3ep2it")
    assert short.reference == "nnUNetTrainer_3ep2it"
    assert short.diffs["1"] == pytest.approx(0.3) and short.diffs["2"] == pytest.approx(0.1)
    assert c.row("nnUNetTrainer_3ep2it").reference == "nnUNetTrainer_3ep2it"
    # no nnUNetTrainer_5ep2it: falls back to the reference as given
    other = c.row("nnUNetTrainerPolyDice_K1_eps0_5ep2it")
    assert other.reference == "nnUNetTrainer" and other.diffs["1"] == pytest.approx(0.3 - 0.6)


@pytest.mark.parametrize("trainer, reference, available, expected", [
    ("nnUNetTrainerPolyDice_K2_eps0_30ep20it", "nnUNetTrainer", ["nnUNetTrainer", "nnUNetTrainer_30ep20it"],
     "nnUNetTrainer_30ep20it"),
    ("nnUNetTrainerPolyDice_K2_eps0", "nnUNetTrainer", ["nnUNetTrainer", "nnUNetTrainer_30ep20it"], "nnUNetTrainer"),
    ("nnUNetTrainerPolyDice_K2_eps0_30ep20it", "nnUNetTrainer", ["nnUNetTrainer"], "nnUNetTrainer"),
    ("nnUNetTrainerPolyDice_K2_eps0", "nnUNetTrainer_30ep20it", ["nnUNetTrainer", "nnUNetTrainer_30ep20it"],
     "nnUNetTrainer"),
    ("nnUNetTrainerPolyDice_K2_eps0", "nnUNetTrainer", [], None),
])
def test_reference_rule(trainer, reference, available, expected):
    assert results.reference_for(trainer, reference, available) == expected


def test_missing_folds_and_trainers_are_reported(tree):
    c = run_compare(tree, DS, "2d", trainers=["nnUNetTrainer", "nnUNetTrainerPolyDice_K2_eps0",
                                                  "nnUNetTrainerPolyDice_K9_eps0"], folds=["0", "1", "2", "3"])
    missing = [str(m) for m in c.missing]
    assert "nnUNetTrainerPolyDice_K2_eps0 / fold 2: training started, not finished (no checkpoint_final.pth)" \
        in missing
    assert "nnUNetTrainer / fold 3: not trained (no fold folder)" in missing
    assert "nnUNetTrainerPolyDice_K9_eps0: no results folder nnUNetTrainerPolyDice_K9_eps0__nnUNetPlans__2d" \
        in missing
    assert len(missing) == 4  # + K2_eps0 fold 3
    # the trainer without results keeps its row, with empty cells
    row = c.row("nnUNetTrainerPolyDice_K9_eps0")
    assert row.n_folds == 0 and "-" in results.text(c).split("nnUNetTrainerPolyDice_K9_eps0 *")[1].splitlines()[0]


def test_nan_values_are_left_out_and_reported(tmp_path):
    d = trainer_dir(tmp_path, "nnUNetTrainer")
    write_summary(d / "fold_0" / "validation" / "summary.json", {1: 0.5, 2: float("nan")})
    write_summary(d / "fold_1" / "validation" / "summary.json", {1: 0.7, 2: 0.3})
    c = run_compare(tmp_path, DS, "2d")
    row = c.row("nnUNetTrainer")
    assert row.cells["2"].n == 1 and row.cells["2"].mean == pytest.approx(0.3) and row.cells["2"].std is None
    assert row.cells["1"].mean == pytest.approx(0.6)
    assert "nnUNetTrainer / fold 0: class amygdala: Dice is NaN" in [str(m) for m in c.missing]
    assert "[n=1]" in results.text(c)


def test_a_class_absent_from_a_folds_reference_counts_as_nnunet_scores_it(tmp_path):
    # contiguous folds: fold 0 has no amygdala. nnU-Net scores the 7 false-positive voxels there as Dice 0,
    # and that 0 counts (painting a structure where there is none is an error); fold 3 has none and nothing
    # predicted (NaN): no Dice, left out.
    d = trainer_dir(tmp_path, "nnUNetTrainer")
    write_summary(d / "fold_0" / "validation" / "summary.json", {1: 0.5, 2: 0.0}, absent={2: 7})
    write_summary(d / "fold_1" / "validation" / "summary.json", {1: 0.7, 2: 0.3})
    write_summary(d / "fold_2" / "validation" / "summary.json", {1: 0.6, 2: 0.5})
    write_summary(d / "fold_3" / "validation" / "summary.json", {1: 0.6, 2: float("nan")}, absent={2: 0})
    c = run_compare(tmp_path, DS, "2d")
    amyg = c.row("nnUNetTrainer").cells["2"]
    assert amyg.values == {Instance("0"): 0.0, Instance("1"): 0.3, Instance("2"): 0.5}
    # mean 0.8 / 3; sample sd: squares (0.8/3)^2 + (0.3 - 0.8/3)^2 + (0.5 - 0.8/3)^2 = 0.38/3, over 2
    assert amyg.mean == pytest.approx(0.8 / 3) and amyg.std == pytest.approx(math.sqrt(0.38 / 6))
    assert c.row("nnUNetTrainer").cells["1"].mean == pytest.approx(0.6)  # (0.5 + 0.7 + 0.6 + 0.6) / 4
    assert ("nnUNetTrainer / fold 0: class amygdala: absent from the reference of every validation case; 7 "
            "false-positive voxels, so nnU-Net's Dice 0.0000 counts") in [str(m) for m in c.notes]
    assert ("nnUNetTrainer / fold 3: class amygdala: Dice is NaN (in neither the reference nor the prediction of "
            "any validation case)") in [str(m) for m in c.missing]
    assert "amygdala" in results.text(c) and "[n=3]" in results.text(c)
    # other metrics keep the fold: the false positives are real numbers there
    fp = run_compare(tmp_path, DS, "2d", metric="FP").row("nnUNetTrainer").cells["2"]
    assert fp.values == {Instance("0"): 7.0, Instance("1"): 1.0, Instance("2"): 1.0, Instance("3"): 0.0}


def test_region_keys_take_their_names_from_dataset_json(tmp_path):
    d = tmp_path / DS / "nnUNetTrainerPolyDice__nnUNetPlans__2d"
    d.mkdir(parents=True)
    (d / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "whole tumour": [1, 2], "core": 2, "ignore": 3}, "regions_class_order": [1, 2]}))
    write_summary(d / "fold_0" / "validation" / "summary.json", {(1, 2): 0.8, 2: 0.6})
    data = json.loads((d / "fold_0" / "validation" / "summary.json").read_text())
    assert set(data["mean"]) == {"(1, 2)", "2"}
    c = run_compare(tmp_path, DS, "2d")
    assert c.classes == [("(1, 2)", "whole tumour"), ("2", "core")]
    assert c.row("nnUNetTrainerPolyDice").cells["(1, 2)"].mean == pytest.approx(0.8)


def test_class_falls_back_to_the_key_without_dataset_json(tmp_path):
    d = tmp_path / DS / "nnUNetTrainer__nnUNetPlans__2d"
    write_summary(d / "fold_0" / "validation" / "summary.json", {10: 0.8, 2: 0.6})
    c = run_compare(tmp_path, DS, "2d")
    assert c.classes == [("2", "2"), ("10", "10")]  # numeric order, not nnU-Net's string order


def test_other_metric_and_bad_metric(tree):
    c = run_compare(tree, DS, "2d", metric="IoU", trainers=["nnUNetTrainer"])
    assert c.row("nnUNetTrainer").cells["1"].values[Instance("0")] == pytest.approx(0.5 / 1.5)
    with pytest.raises(ValueError, match="per-class metrics .*got 'HD95'"):
        run_compare(tree, DS, "2d", metric="HD95")


def test_cli_writes_md_csv_and_heatmaps(tree, capsys):
    assert main(["compare", "42", "2d"]) == 0
    out_dir = tree / DS / "polydice_compare_2d"
    printed = capsys.readouterr().out
    assert "nnUNetTrainerPolyDice_K2_eps0 *" in printed
    assert "0.8000 ± 0.1000 (+0.2000, 3 folds)" in printed  # K1_eps0 hippocampus
    assert "Missing (1):" in printed and "nnUNetTrainerPolyDice_K2_eps0 / fold 2" in printed

    md = (out_dir / "comparison.md").read_text()
    assert "| trainer | folds | hippocampus | amygdala | foreground mean | reference |" in md
    assert "| nnUNetTrainerPolyDice_K2_eps0 * | 2/3 | 0.7000 ± 0.1414 (+0.1500, 2 folds) |" in md
    assert "## Missing" in md
    assert "- nnUNetTrainerPolyDice_K2_eps0 / fold 2: training started, not finished" in md
    assert "* fewer than the 3 folds compared" in md
    assert "nnUNetTrainerDiceLoss" not in md  # other plans / configuration

    rows = list(csv.DictReader((out_dir / "comparison.csv").open()))
    assert len(rows) == len(DATA) * 3  # 2 classes + foreground mean
    r = next(r for r in rows if r["trainer"] == "nnUNetTrainerPolyDice_K1_eps0" and r["class"] == "hippocampus")
    assert r["label_key"] == "1" and r["K"] == "1" and float(r["epsilon"]) == 0.0
    assert r["family"] == "nnUNetTrainerPolyDice" and r["n_folds"] == "3" and r["folds_compared"] == "3"
    assert float(r["mean"]) == pytest.approx(0.8) and float(r["std"]) == pytest.approx(0.1)
    assert float(r["diff_to_reference"]) == pytest.approx(0.2) and r["reference"] == "nnUNetTrainer"
    assert r["fold_values"] == "0:0.7;1:0.8;2:0.9"
    assert r["diff_n_folds"] == "3" and r["diff_folds"] == "0;1;2"
    # one case per fold: 3 paired cases, each +0.2; too few for a CI or a p
    assert r["paired_cases"] == "3" and float(r["paired_mean_diff"]) == pytest.approx(0.2)
    assert r["ci95_low"] == r["wilcoxon_p"] == ""
    assert r["paired_note"] == "CI: only 3 cases; p: only 3 non-zero differences"
    assert r["bootstrap_resamples"] == "10000" and r["bootstrap_seed"] == "0"
    k2 = next(r for r in rows if r["trainer"] == "nnUNetTrainerPolyDice_K2_eps0" and r["class"] == "amygdala")
    assert k2["diff_n_folds"] == "2" and float(k2["diff_to_reference"]) == pytest.approx(0.35)
    s = next(r for r in rows if r["trainer"] == "nnUNetTrainerPolyDice_K1_eps0_3ep2it"
             and r["class"] == "foreground mean")
    assert s["schedule"] == "3ep2it" and s["reference"] == "nnUNetTrainer_3ep2it"
    assert float(s["diff_to_reference"]) == pytest.approx(0.3 - 0.1)

    # one Poly family with >= 2 settings (K1_eps0, K2_eps0, K1_eps1); the 3ep2it / 5ep2it groups have one each
    pngs = sorted(p.name for p in out_dir.glob("*.png"))
    assert pngs == ["heatmap_nnUNetTrainerPolyDice_Dice_amygdala.png",
                    "heatmap_nnUNetTrainerPolyDice_Dice_hippocampus.png"]
    for name in pngs:
        data = (out_dir / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1000
        assert name in md


def test_heatmap_grid_marks_missing_cells(tree):
    c = run_compare(tree, DS, "2d")
    groups = results.heatmap_groups(c)
    assert list(groups) == ["nnUNetTrainerPolyDice"]
    assert sorted(groups["nnUNetTrainerPolyDice"]) == [(1, 0.0), (1, 1.0), (2, 0.0)]  # (2, 1.0) is a blank cell


def test_output_folder_never_overwrites_user_files(tree, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "comparison.md").write_text("my notes")
    assert main(["compare", DS, "2d", "--out", str(out)]) == 2
    assert (out / "comparison.md").read_text() == "my notes"
    captured = capsys.readouterr()
    assert "not written by nnunet-polydice compare" in captured.err
    assert captured.out == ""  # refused before the table was computed and printed
    assert not (out / "comparison.csv").exists()  # nothing written

    out2 = tmp_path / "ours"
    assert main(["compare", DS, "2d", "--out", str(out2)]) == 0
    first = (out2 / "comparison.csv").read_text()
    # its own files are overwritten; a stale heat map of its own is removed when no longer produced
    assert main(["compare", DS, "2d", "--out", str(out2), "--trainers", "nnUNetTrainer",
                 "nnUNetTrainerPolyDice_K1_eps0"]) == 0
    assert (out2 / "comparison.csv").read_text() != first
    assert list(out2.glob("*.png")) == []
    assert sorted(json.loads((out2 / results.MANIFEST).read_text())["files"]) == ["comparison.csv", "comparison.md"]


def test_folds_and_trainers_arguments(tree, capsys):
    assert main(["compare", DS, "2d", "--folds", "0", "1", "--trainers", "nnUNetTrainer",
                 "nnUNetTrainerPolyDice_K2_eps0", "--out", str(tree / "o")]) == 0
    printed = capsys.readouterr().out
    assert "Missing: none." in printed
    assert "nnUNetTrainerPolyDice_K2_eps0 *" not in printed
    # K2_eps0 on folds 0, 1: (0.6, 0.8) vs reference (0.5, 0.6): +0.15
    assert "0.7000 ± 0.1414 (+0.1500, 2 folds)" in printed


def test_a_trainer_folder_without_folds_is_reported(tmp_path):
    trainer_dir(tmp_path, "nnUNetTrainer")
    c = run_compare(tmp_path, DS, "2d")
    assert c.folds == [] and [str(m) for m in c.missing][0] == "nnUNetTrainer: no fold_<f> folders with results"


def test_no_results_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    assert main(["compare", DS, "2d"]) == 2
    assert "no results of Dataset042_Toy" in capsys.readouterr().err
    (tmp_path / DS).mkdir()
    assert main(["compare", DS, "2d"]) == 2
    assert "no trainer folders" in capsys.readouterr().err


# ------------------------------------------------------------------------------ paired, per fold and per case

def test_the_difference_is_over_the_folds_both_trainers_have(tmp_path, capsys, monkeypatch):
    # the reference has fold 0 only; the Poly trainer folds 0 and 2, with fold 0 identical to the reference's.
    # Over the common fold 0 the difference is 0; the unpaired means would give (0.5 + 0.9) / 2 - 0.5 = +0.2.
    write_summary(trainer_dir(tmp_path, "nnUNetTrainer") / "fold_0" / "validation" / "summary.json", {1: 0.5, 2: 0.2})
    poly = trainer_dir(tmp_path, "nnUNetTrainerPolyDice_K2_eps1")
    write_summary(poly / "fold_0" / "validation" / "summary.json", {1: 0.5, 2: 0.2})
    write_summary(poly / "fold_2" / "validation" / "summary.json", {1: 0.9, 2: 0.4})
    c = run_compare(tmp_path, DS, "2d")
    row = c.row("nnUNetTrainerPolyDice_K2_eps1")
    assert row.cells["1"].mean == pytest.approx(0.7)
    assert row.diffs["1"] == 0.0 and row.diffs["2"] == 0.0 and row.diffs["foreground_mean"] == 0.0
    assert row.diff_folds["1"] == [Instance("0")]
    assert row.paired["1"].folds == ["0"] and row.paired["1"].n == 1 and row.paired["1"].mean == 0.0
    assert "0.7000 ± 0.2828 (+0.0000, 1 fold)" in results.text(c)
    assert "| nnUNetTrainerPolyDice_K2_eps1 | 2/2 | 0.7000 ± 0.2828 (+0.0000, 1 fold) |" in results.markdown(c)
    line = next(r for r in csv.DictReader(results.csv_text(c).splitlines()) if r["trainer"] == row.trainer
                and r["class"] == "hippocampus")
    assert float(line["diff_to_reference"]) == 0.0 and line["diff_n_folds"] == "1" and line["diff_folds"] == "0"


def test_no_fold_in_common_gives_no_difference(tmp_path):
    write_summary(trainer_dir(tmp_path, "nnUNetTrainer") / "fold_0" / "validation" / "summary.json", {1: 0.5, 2: 0.2})
    write_summary(trainer_dir(tmp_path, "nnUNetTrainerPolyDice") / "fold_1" / "validation" / "summary.json",
                  {1: 0.9, 2: 0.4})
    c = run_compare(tmp_path, DS, "2d")
    row = c.row("nnUNetTrainerPolyDice")
    assert row.diffs["1"] is None and row.diff_folds["1"] == []
    assert row.paired["1"].n == 0 and row.paired["1"].notes == ["no paired case"]
    assert "0.9000 (no fold in common)" in results.text(c)


# two folds of 4 cases; the hippocampus is in every case, the amygdala only in fold 1's
REF_CASES = {
    "0": {f"c{i}.nii.gz": {1: (0.5, 40), 2: (float("nan"), 0)} for i in range(4)},
    "1": {f"c{i}.nii.gz": {1: (0.5, 40), 2: (0.4, 10)} for i in range(4, 8)},
}
# hippocampus: +0.05, +0.10, ..., +0.40 in c0..c7; amygdala in fold 1: -0.1, +0.1, 0, +0.2. In fold 0 the Poly
# trainer predicts amygdala voxels where the reference has none (Dice 0, n_ref 0), the reference trainer
# predicts none there (NaN)
POLY_CASES = {
    "0": {f"c{i}.nii.gz": {1: (0.5 + 0.05 * (i + 1), 40), 2: (0.0, 0)} for i in range(4)},
    "1": {f"c{i}.nii.gz": {1: (0.5 + 0.05 * (i + 1), 40), 2: (a, 10)}
          for i, a in zip(range(4, 8), (0.3, 0.5, 0.4, 0.6))},
}


@pytest.fixture
def cases_tree(tmp_path):
    for trainer, folds in (("nnUNetTrainer", REF_CASES), ("nnUNetTrainerPolyDice", POLY_CASES)):
        d = trainer_dir(tmp_path, trainer)
        for f, cases in folds.items():
            write_cases(d / f"fold_{f}" / "validation" / "summary.json", cases)
    return tmp_path


def test_paired_per_case_statistics_by_hand(cases_tree):
    c = run_compare(cases_tree, DS, "2d")
    hip, amy, fg = (c.row("nnUNetTrainerPolyDice").paired[k] for k in ("1", "2", "foreground_mean"))
    # hippocampus: 8 differences 0.05 .. 0.40, mean 0.225; all positive, distinct: exact p = 2 / 2^8
    assert hip.folds == ["0", "1"] and hip.n == 8 and hip.left_out == 0 and hip.nonzero == 8
    assert hip.mean == pytest.approx(0.225)
    assert hip.p == pytest.approx(2 / 256)
    assert 0.05 <= hip.ci[0] < 0.225 < hip.ci[1] <= 0.40 and hip.excludes_zero
    # amygdala: in fold 0 the reference trainer's value is NaN (it predicted none where there is none): those
    # four cases are left out; -0.1, +0.1, 0, +0.2: mean 0.05, 3 non-zero
    assert amy.n == 4 and amy.left_out == 4 and amy.mean == pytest.approx(0.05) and amy.nonzero == 3
    assert amy.ci is None and amy.p is None and amy.notes == ["CI: only 4 cases", "p: only 3 non-zero differences"]
    # per case, the foreground is the mean over the classes defined for the case (nnU-Net's rule): in fold 0
    # the Poly trainer's false-positive amygdala (0) counts, the reference's NaN does not:
    # (0.5 + 0.05 (i + 1) + 0) / 2 - 0.5 = -0.225, -0.2, -0.175, -0.15 (sum -0.75); fold 1 the mean of both:
    # (0.25 - 0.1) / 2, (0.30 + 0.1) / 2, 0.35 / 2, (0.40 + 0.2) / 2 = 0.075, 0.2, 0.175, 0.3 (sum +0.75).
    # Mean 0; signed ranks of |d| (ties averaged): + 1 + 5.5 + 3.5 + 8 = 18 = - (2 + 3.5 + 5.5 + 7): p = 1
    assert fg.n == 8 and fg.mean == pytest.approx(0.0) and fg.p == pytest.approx(1.0) and not fg.excludes_zero
    # the fold cells follow the same rule: fold 0's false positives are nnU-Net's Dice 0
    assert c.row("nnUNetTrainerPolyDice").cells["2"].values == {Instance("0"): 0.0, Instance("1"): pytest.approx(0.45)}

    md = results.markdown(c)
    assert "## Paired per-case differences to the reference" in md
    hip_line = next(line for line in md.splitlines() if line.startswith("| nnUNetTrainerPolyDice | nnUNetTrainer | "
                                                                        "hippocampus |"))
    assert hip_line.startswith("| nnUNetTrainerPolyDice | nnUNetTrainer | hippocampus | 0, 1 | 8 | 0 | +0.2250 | [")
    assert "] * | 0.00781 | 8 |" in hip_line
    amy_line = next(line for line in md.splitlines() if "| amygdala | 0, 1 |" in line)
    assert amy_line == ("| nnUNetTrainerPolyDice | nnUNetTrainer | amygdala | 0, 1 | 4 | 4 | +0.0500 | n/a | n/a | 3 | "
                        "CI: only 4 cases; p: only 3 non-zero differences |")
    assert "* marks a CI that excludes 0" in md and "zero_method='wilcox'" in md and "counts, as in nnU-Net" in md

    rows = {r["class"]: r for r in csv.DictReader(results.csv_text(c).splitlines())
            if r["trainer"] == "nnUNetTrainerPolyDice"}
    assert rows["hippocampus"]["ci_excludes_zero"] == "true"
    assert float(rows["hippocampus"]["ci95_low"]) == hip.ci[0] and float(rows["hippocampus"]["wilcoxon_p"]) == hip.p
    assert rows["amygdala"]["paired_left_out"] == "4" and rows["amygdala"]["ci_excludes_zero"] == ""


def test_cases_without_a_match_are_reported(cases_tree):
    extra = dict(POLY_CASES["1"], **{"c9.nii.gz": {1: (0.9, 40), 2: (0.9, 10)}})
    write_cases(cases_tree / DS / "nnUNetTrainerPolyDice__nnUNetPlans__2d" / "fold_1" / "validation" / "summary.json",
                extra)
    c = run_compare(cases_tree, DS, "2d")
    assert c.row("nnUNetTrainerPolyDice").paired["1"].n == 8  # c9 has no partner
    assert ("nnUNetTrainerPolyDice / fold 1: 1 validation cases without a match in nnUNetTrainer's fold 1 and 0 of "
            "its cases without one here: left out of the paired statistics (different splits?)") \
        in [str(m) for m in c.missing]


def test_bootstrap_ci_contains_or_excludes_zero():
    # all differences +0.1: every resample has mean 0.1, so the interval is [0.1, 0.1] and excludes 0
    low, high = statistics.bootstrap_ci([0.1] * 6)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)
    assert results.paired_stats([0.1] * 6).excludes_zero
    # +0.1 and -0.1 five times each: the resampled means are symmetric about 0
    low, high = statistics.bootstrap_ci([0.1] * 5 + [-0.1] * 5)
    assert -0.1 <= low < 0 < high <= 0.1
    assert not results.paired_stats([0.1] * 5 + [-0.1] * 5).excludes_zero
    # 50 zeros and 50 ones: a resample's mean is Binomial(100, 1/2) / 100, whose 2.5 % and 97.5 % quantiles are
    # 40/100 and 60/100 (P(X <= 39) = 0.018, P(X <= 40) = 0.028; symmetric above); 10000 resamples hit them
    low, high = statistics.bootstrap_ci([0.0] * 50 + [1.0] * 50)
    assert low == pytest.approx(0.40, abs=0.011) and high == pytest.approx(0.60, abs=0.011)
    # a fixed seed gives a fixed interval
    d = [0.3, -0.1, 0.25, 0.05, 0.0, 0.12, -0.02]
    assert statistics.bootstrap_ci(d, seed=7) == statistics.bootstrap_ci(d, seed=7)
    assert statistics.bootstrap_ci(d, resamples=500, seed=1) != statistics.bootstrap_ci(d, resamples=500, seed=2)
    with pytest.raises(ValueError, match="at least one difference"):
        statistics.bootstrap_ci([])


@pytest.mark.parametrize("diffs, expected", [
    # 6 positive differences of distinct sizes: W- = 0, one of the 2^6 equally likely sign patterns on each
    # side is as extreme: p = 2 / 64
    ([0.01, 0.02, 0.03, 0.04, 0.05, 0.06], 2 / 64),
    # ranks 1..5 positive, 6 negative: W- = 6; sign patterns with W- <= 6 are the subsets of {1..6} with sum
    # <= 6: {}, the 6 singletons, {1,2} {1,3} {1,4} {1,5} {2,3} {2,4}, {1,2,3}: 14; p = 2 * 14 / 64
    ([1, 2, 3, 4, 5, -6], 2 * 14 / 64),
    # zero differences are dropped (zero_method 'wilcox'): as the 6 positive ones alone
    ([0.0, 0.0, 1, 2, 3, 4, 5, 6], 2 / 64),
    # 0.1 + 0.2 - 0.3 is float noise (5.6e-17), counted as a zero
    ([0.1 + 0.2 - 0.3, 1, 2, 3, 4, 5, 6], 2 / 64),
])
def test_wilcoxon_p_by_hand(diffs, expected):
    p, why = statistics.wilcoxon_p(diffs)
    assert why is None and p == pytest.approx(expected)


def test_wilcoxon_p_not_available():
    assert statistics.wilcoxon_p([0.0] * 8) == (None, "all differences are zero")
    assert statistics.wilcoxon_p([0.0, 1, 2, 3, 4, 5]) == (None, "only 5 non-zero differences")
    assert statistics.wilcoxon_p([]) == (None, "only 0 non-zero differences")


def test_paired_differences_pairs_by_case_and_leaves_out_absent_classes():
    a = {"x": (0.8, 5.0), "y": (0.0, 0.0), "z": (0.7, 5.0), "only_a": (0.1, 5.0)}
    b = {"x": (0.6, 5.0), "y": (float("nan"), 0.0), "z": (0.7, 5.0), "only_b": (0.1, 5.0)}
    found = results.paired_differences(a, b)
    assert found.cases == ["x", "z"] and found.diffs == pytest.approx([0.2, 0.0])
    assert found.left_out == ["y"] and found.unpaired == ["only_a", "only_b"]
    # FP and other counts are defined without the class in the reference: only NaN is left out then
    fp = results.paired_differences({"y": (3.0, 0.0)}, {"y": (1.0, 0.0)}, skip_absent=False)
    assert fp.diffs == [2.0] and fp.left_out == []


# ------------------------------------------------------------------------------ folds that cannot be compared

def test_an_unusable_summary_is_listed_and_the_rest_compared(tree, capsys):
    k1 = tree / DS / "nnUNetTrainerPolyDice_K1_eps0__nnUNetPlans__2d"
    truncated = k1 / "fold_1" / "validation" / "summary.json"
    truncated.write_text(truncated.read_text()[:60])  # as after a crash or a full disk
    empty = tree / DS / "nnUNetTrainerPolyDice_K1_eps1__nnUNetPlans__2d" / "fold_0" / "validation" / "summary.json"
    empty.write_text("")
    wrong = tree / DS / "nnUNetTrainer_3ep2it__nnUNetPlans__2d" / "fold_2" / "validation" / "summary.json"
    wrong.write_text("[1, 2, 3]")
    bad_cases = tree / DS / "nnUNetTrainerPolyDice_K1_eps0_5ep2it__nnUNetPlans__2d" / "fold_0" / "validation" / \
        "summary.json"
    data = json.loads(bad_cases.read_text())
    data["metric_per_case"] = {"not": "a list"}
    bad_cases.write_text(json.dumps(data))

    assert main(["compare", DS, "2d", "--out", str(tree / "out")]) == 0
    printed = capsys.readouterr().out
    assert "Missing (5):" in printed  # the four, and K2_eps0's unfinished fold 2
    missing = printed.split("Missing (5):")[1]
    line = next(m for m in missing.splitlines() if "nnUNetTrainerPolyDice_K1_eps0 / fold 1" in m).strip()
    assert line.startswith("nnUNetTrainerPolyDice_K1_eps0 / fold 1: validation/summary.json is not valid JSON "
                           "(truncated?): ") and line.endswith(f" at line 3 ({truncated})")
    assert f"nnUNetTrainerPolyDice_K1_eps1 / fold 0: validation/summary.json is empty ({empty})" in missing
    assert (f"nnUNetTrainer_3ep2it / fold 2: validation/summary.json holds a list, not nnU-Net's summary object "
            f"({wrong})") in missing
    assert (f"nnUNetTrainerPolyDice_K1_eps0_5ep2it / fold 0: validation/summary.json: metric_per_case is not a "
            f"list of cases ({bad_cases})") in missing
    c = run_compare(tree, DS, "2d")
    k1_row = c.row("nnUNetTrainerPolyDice_K1_eps0")
    assert k1_row.folds == ["0", "2"] and k1_row.cells["1"].mean == pytest.approx(0.8)  # (0.7 + 0.9) / 2
    assert k1_row.diffs["1"] == pytest.approx(0.8 - 0.6)  # ref (0.5, 0.7)
    assert k1_row.diff_folds["1"] == [Instance("0"), Instance("2")]
    assert c.row("nnUNetTrainer").folds == ["0", "1", "2"]


def test_fold_states_follow_the_sweep_rule(tree):
    d = tree / DS / "nnUNetTrainerPolyDice_K1_eps1__nnUNetPlans__2d"
    (d / "fold_0" / "checkpoint_final.pth").unlink()
    (d / "fold_0" / "checkpoint_latest.pth").write_bytes(b"")  # retrained with --c: its old summary is stale
    (d / "fold_1" / "checkpoint_final.pth").unlink()
    (d / "fold_1" / "checkpoint_latest.pth").write_bytes(b"")
    (d / "fold_1" / "polydice_pruned.json").write_text("{}")  # stopped by the tuner's pruner
    (d / "fold_2" / "checkpoint_final.pth").unlink()  # a summary copied in without checkpoints: 'foreign'
    c = run_compare(tree, DS, "2d", trainers=["nnUNetTrainer", "nnUNetTrainerPolyDice_K1_eps1"])
    missing = [str(m) for m in c.missing]
    assert missing == [
        "nnUNetTrainerPolyDice_K1_eps1 / fold 0: training started, not finished (no checkpoint_final.pth)",
        "nnUNetTrainerPolyDice_K1_eps1 / fold 1: pruned: stopped early by the tuner's pruner (checkpoint kept)"]
    assert c.row("nnUNetTrainerPolyDice_K1_eps1").folds == ["2"]
    assert [str(m) for m in c.notes] == [
        "nnUNetTrainerPolyDice_K1_eps1 / fold 2: compared from a validation/summary.json without any checkpoint "
        "(copied in; sweep never trains over it)"]
    assert "Notes (1):" in results.text(c) and "## Notes" in results.markdown(c)
    (tree / DS / "nnUNetTrainer__nnUNetPlans__2d" / "fold_0" / "validation" / "summary.json").unlink()
    c = run_compare(tree, DS, "2d", trainers=["nnUNetTrainer"])
    assert [str(m) for m in c.missing] == [
        "nnUNetTrainer / fold 0: checkpoint_final.pth but no validation/summary.json (validation not run)"]


def test_cli_bootstrap_and_seed(cases_tree, monkeypatch, capsys):
    monkeypatch.setenv("nnUNet_results", str(cases_tree))
    monkeypatch.setenv("nnUNet_raw", str(cases_tree))
    out = cases_tree / "out"
    assert main(["compare", DS, "2d", "--out", str(out), "--bootstrap", "500", "--seed", "3"]) == 0
    assert "500 resamples of the cases with replacement, numpy default_rng(seed=3)" in capsys.readouterr().out
    row = next(r for r in csv.DictReader((out / "comparison.csv").open())
               if r["trainer"] == "nnUNetTrainerPolyDice" and r["class"] == "hippocampus")
    assert row["bootstrap_resamples"] == "500" and row["bootstrap_seed"] == "3"
    assert (float(row["ci95_low"]), float(row["ci95_high"])) == pytest.approx(statistics.bootstrap_ci(
        [0.05 * (i + 1) for i in range(8)], 500, 3), abs=1e-12)
    for bad in ("50", "0", "1000001", "1000000000"):   # 10**9 resamples: 7.5 GB a row, refused at once
        assert main(["compare", DS, "2d", "--out", str(out), "--bootstrap", bad]) == 2
        err = capsys.readouterr().err
        assert f"--bootstrap must be an integer from 100 to 1000000 (got {bad})" in err
    for bad in ("-1", "4294967296"):
        assert main(["compare", DS, "2d", "--out", str(out), "--seed", bad]) == 2
        assert f"--seed must be an integer from 0 to 4294967295 (got {bad})" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--folds", "9"], "--folds 9: none of these trainers has a fold folder of them; folds there: 0, 1"),
    (["--folds", "7", "8"], "--folds 7 8: none of these trainers has a fold folder"),
    (["--trainers", "nnUNetTrainerBogus"], "--trainers nnUNetTrainerBogus: none has a results folder"),
    (["--trainers", "nnUNetTrainerBogus", "nnUNetTrainerGhost"], "--trainers nnUNetTrainerBogus nnUNetTrainerGhost"),
])
def test_compare_of_nothing_keeps_the_last_table_and_heat_maps(tree, tmp_path, capsys, extra, message):
    out = tmp_path / "ours"
    assert main(["compare", DS, "2d", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert any(name.endswith(".png") for name in before)
    capsys.readouterr()
    assert main(["compare", DS, "2d", "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# ------------------------------------------------------------------------------ seeds (_s<N> names) and settings

UP = "nnUNetTrainerPolyDice_K1_eps0_3ep2it"  # instance differences .01 .. .06 to the reference
FLAT = "nnUNetTrainerPolyDice_K2_eps0_3ep2it"  # instance differences +-.01, mean 0
SEEDED_REF = "nnUNetTrainer_3ep2it"
RUNS = [("0", 0), ("0", 1), ("0", 2), ("1", 0), ("1", 1), ("1", 2)]
FOLD_CASES = {"0": ("c0.nii.gz", "c1.nii.gz"), "1": ("c2.nii.gz", "c3.nii.gz")}


def write_run(res, trainer, fold, hippocampus):
    """One finished fold of ``trainer``: its two validation cases both with this hippocampus Dice, amygdala .5."""
    write_cases(trainer_dir(res, trainer) / f"fold_{fold}" / "validation" / "summary.json",
                {c: {1: (hippocampus, 10), 2: (0.5, 10)} for c in FOLD_CASES[fold]})


@pytest.fixture
def seeds_tree(tmp_path, monkeypatch):
    """The reference .5 everywhere; UP .5 + .01 .. .06 over the runs (fold 0: .51 .52 .53, fold 1: .54 .55 .56);
    FLAT .51 .49 .51 on fold 0 and .49 .51 .49 on fold 1. 2 folds x 3 seeds each, two cases per run."""
    for k, v in (("nnUNet_raw", tmp_path), ("nnUNet_preprocessed", tmp_path), ("nnUNet_results", tmp_path)):
        monkeypatch.setenv(k, str(v))
    (tmp_path / DS).mkdir(exist_ok=True)
    for i, (f, s) in enumerate(RUNS):
        write_run(tmp_path, f"{SEEDED_REF}_s{s}", f, 0.5)
        write_run(tmp_path, f"{UP}_s{s}", f, 0.5 + 0.01 * (i + 1))
        write_run(tmp_path, f"{FLAT}_s{s}", f, 0.5 + 0.01 * (-1) ** i)
    return tmp_path


def test_seeds_without_runs_are_named_and_never_blamed_on_the_configuration(seeds_tree, capsys):
    """--seeds 5 (no folder of seed 5): the seeds are what found nothing, not the configuration or -p/--plans;
    --seeds 0 5: seed 5 is one named line under Missing."""
    with pytest.raises(ValueError) as err:
        run_compare(seeds_tree, DS, "2d", reference=SEEDED_REF, seeds=[5])
    assert str(err.value).startswith("--seeds 5: no trainer folder *__nnUNetPlans__2d in ")
    assert str(err.value).endswith("is of these seeds; the seeds with folders: 0, 1, 2.")
    assert "-p/--plans" not in str(err.value)
    c = run_compare(seeds_tree, DS, "2d", reference=SEEDED_REF, seeds=[0, 5])
    assert ("seed 5: no trainer folder of this seed (--seeds); the seeds with folders: 0, 1, 2"
            in [str(m) for m in c.missing])
    assert {r.label for r in c.rows} == {"seeds 0"}


def test_seeded_settings_by_hand(seeds_tree):
    c = run_compare(seeds_tree, DS, "2d", reference=SEEDED_REF, bootstrap=2000)
    assert [(r.trainer, r.label) for r in c.rows] == [(UP, "seeds 0,1,2"), (FLAT, "seeds 0,1,2"),
                                                      (SEEDED_REF, "seeds 0,1,2")]  # folder names sorted
    up, flat = c.row(UP), c.row(FLAT)
    assert up.reference == flat.reference == SEEDED_REF and up.n_instances == 6 and up.folds == ["0", "1"]
    hip = up.cells["1"]
    # mean of .51 .. .56 = .535; squares 2 (.025^2 + .015^2 + .005^2) = .00175 over 5: sd sqrt(.00035)
    assert hip.mean == pytest.approx(0.535) and hip.std == pytest.approx(math.sqrt(0.00035))
    assert up.diffs["1"] == pytest.approx(0.035) and len(up.diff_folds["1"]) == 6
    u, fl = up.seeded["1"].result, flat.seeded["1"].result
    # seed sd: fold means .52 and .55, squares .0001 + 0 + .0001 per fold, over 2 + 2 dof: sqrt(.0004 / 4) = .01
    assert up.seeded["1"].seed_sd == pytest.approx(0.01)
    # FLAT: fold 0 .51 .49 .51 (mean .50333), squares 2 (.00667)^2 + (.01333)^2 = 2.6667e-4 = .02^2 2/3 per fold;
    # the same for fold 1, over 4 dof: sqrt(.02^2 2/3 / 2) = .011547
    assert flat.seeded["1"].seed_sd == pytest.approx(math.sqrt(0.02 ** 2 * 2 / 3 / 2))
    # mean difference: (.02 + .05) / 2; the CI (seeds drawn within folds) lies within [.025, .045] around it
    assert u.mean_difference == pytest.approx(0.035) and 0.025 <= u.ci[0] < 0.035 < u.ci[1] <= 0.045
    assert (u.n_instances, u.n_cases, fl.mean_difference) == (6, 12, pytest.approx(0.0))
    # Wilcoxon over 6 runs: all positive 2/64; +-.01 with W+ at its mean: 1. Holm over the two: 2 x 2/64, then 1
    assert (u.p, fl.p) == pytest.approx((2 / 64, 1.0))
    assert (u.p_holm, fl.p_holm) == pytest.approx((0.0625, 1.0))
    assert u.verdict == fl.verdict == "within noise"  # UP's CI excludes 0, but .0625 is not below .05
    assert (u.seeds_disagree, fl.seeds_disagree) == (False, True)  # .01 < .035; .0115 > 0
    # the amygdala is .5 everywhere: no non-zero difference, no p
    assert up.seeded["2"].result.p is None and up.seeded["2"].result.verdict.startswith("undetermined")

    text = results.text(c)
    assert results.SEEDED_TITLE in text and "seeds disagree" in text and "Holm" in text and "noise floor" in text
    line = next(x for x in text.splitlines() if x.startswith(f"{UP}  seeds 0,1,2  {SEEDED_REF}  hippocampus"))
    assert " 6 " in line and "0.0100" in line and "+0.0350" in line and "0.0312" in line and "0.0625" in line \
        and "within noise" in line
    assert f"{UP} [seeds 0,1,2]" in text and "0.5350 ± 0.0187 (+0.0350, 6 runs)" in text
    md = results.markdown(c)
    assert f"## {results.SEEDED_TITLE}" in md
    rows = {(r["trainer"], r["class"]): r for r in csv.DictReader(results.csv_text(c).splitlines())}
    r = rows[(FLAT, "hippocampus")]
    assert r["runs"] == "seeds 0,1,2" and r["n_runs"] == "6"
    assert float(r["seed_sd"]) == pytest.approx(0.011547, abs=1e-6)
    assert r["verdict"] == "within noise" and r["seeds_disagree"] == "true" and float(r["holm_p"]) == 1.0
    assert r["fold_values"].startswith("0/s0:0.51;0/s1:0.49;")
    assert rows[(UP, "hippocampus")]["runs_paired"] == "6" and rows[(UP, "hippocampus")]["seeded_cases"] == "12"

    # UP alone against the reference: Holm over one row keeps 2/64 < .05, and the CI excludes 0: better
    alone = run_compare(seeds_tree, DS, "2d", reference=SEEDED_REF, bootstrap=500,
                            trainers=[f"{n}_s{s}" for n in (SEEDED_REF, UP) for s in (0, 1, 2)])
    assert alone.row(UP).seeded["1"].result.verdict == "better"


def test_seeded_and_unseeded_runs_of_one_setting_are_two_rows(seeds_tree):
    for f in ("0", "1"):
        write_run(seeds_tree, UP, f, 0.6)
        write_run(seeds_tree, SEEDED_REF, f, 0.5)
    c = run_compare(seeds_tree, DS, "2d", reference=SEEDED_REF, bootstrap=500)
    seeded, unseeded = c.row(UP, seeded=True), c.row(UP, seeded=False)
    assert seeded is not unseeded and unseeded.label == "unseeded" and unseeded.seeds is None
    # each against its own kind: the unseeded row against the unseeded reference, +.1 on both folds
    assert unseeded.reference == SEEDED_REF and unseeded.diffs["1"] == pytest.approx(0.1)
    assert unseeded.paired["1"].mean == pytest.approx(0.1) and not unseeded.seeded
    assert seeded.seeded["1"].result.mean_difference == pytest.approx(0.035)
    text = results.text(c)
    assert f"{UP} [unseeded]" in text and f"{UP} [seeds 0,1,2]" in text and "never pooled" in text


def test_a_family_name_and_its_explicit_default_name_are_one_row(tmp_path):
    default = "nnUNetTrainerPolyDice_K2_eps1"  # the defaults of nnUNetTrainerPolyDice
    write_run(tmp_path, "nnUNetTrainer", "0", 0.5)
    write_run(tmp_path, "nnUNetTrainer", "1", 0.5)
    write_run(tmp_path, "nnUNetTrainerPolyDice", "0", 0.9)  # fold 0 under both names: the explicit one is compared
    write_run(tmp_path, default, "0", 0.7)
    write_run(tmp_path, default, "1", 0.8)
    c = run_compare(tmp_path, DS, "2d")
    assert [r.trainer for r in c.rows] == ["nnUNetTrainer", default]
    row = c.row("nnUNetTrainerPolyDice")
    assert row is c.row(default) and row.members == ["nnUNetTrainerPolyDice", default]
    assert row.cells["1"].values == {Instance("0"): pytest.approx(0.7), Instance("1"): pytest.approx(0.8)}
    assert row.diffs["1"] == pytest.approx(0.25)
    notes = [str(m) for m in c.notes]
    assert (f"nnUNetTrainerPolyDice / fold 0: the same setting as {default}, which has fold 0 too: that one is "
            f"compared in the row {default}, this one not") in notes
    assert "a family name and its explicit default name" in results.text(c)


def test_a_seeded_row_whose_reference_has_only_unseeded_runs_says_so(tmp_path):
    for f in ("0", "1"):
        write_run(tmp_path, "nnUNetTrainer", f, 0.5)
        write_run(tmp_path, "nnUNetTrainerPolyDice_K1_eps0_s0", f, 0.6)
    c = run_compare(tmp_path, DS, "2d")
    row = c.row("nnUNetTrainerPolyDice_K1_eps0")
    assert row.seeds == [0] and row.reference is None and row.diffs == {}
    assert row.reference_note == ("the reference nnUNetTrainer has only unseeded runs: a seeded row is compared only "
                                  "with seeded runs of the same seeds, so no difference")
    assert f"nnUNetTrainerPolyDice_K1_eps0 [seeds 0]: {row.reference_note}" in [str(m) for m in c.missing]


def test_cli_seeds_filters_the_seeded_runs(seeds_tree, capsys):
    out = seeds_tree / "out"
    assert main(["compare", DS, "2d", "--reference", SEEDED_REF, "--seeds", "0", "2", "--bootstrap", "200",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{UP} [seeds 0,2]" in printed and f"{UP} [seeds 0,1,2]" not in printed
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert {r["runs"] for r in rows} == {"seeds 0,2"} and {r["n_runs"] for r in rows} == {"4"}


@pytest.mark.parametrize("seeds, message", [
    (["1", "1"], "--seeds gives the seed 1 more than once"),
    (["-1"], "--seeds"),
])
def test_cli_bad_seeds_are_refused_before_anything_is_written(seeds_tree, capsys, seeds, message):
    out = seeds_tree / "out"
    assert main(["compare", DS, "2d", "--seeds", *seeds, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_compare_help_says_how_seeded_runs_are_grouped_and_filtered(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("Seeded runs (trainer names ending in _s<N>) are grouped per setting: one row of all its (fold, seed) "
            "runs, compared with the reference's runs of the same fold and seed, and --seeds keeps only the runs of "
            "the seeds given.") in text


@pytest.mark.parametrize("extra, message", [
    (["--metric", "Bogus"], "--metric must be one of nnU-Net's per-class metrics"),
    (["--metric", "dice"], "(got 'dice')"),
    (["--reference", "nnUNetTrainerBogus"], "--reference nnUNetTrainerBogus: no results folder"),
    (["--reference", "nnUNetTrainerPolyDice_K3_eps0"], "no results folder of it"),
])
def test_a_metric_or_reference_that_cannot_give_a_table_is_refused_before_writing(tree, capsys, extra, message):
    out = tree / "out"
    assert main(["compare", "42", "2d", "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_reference_given_by_its_schedule_or_seed_variant_or_other_name_is_accepted(tree, capsys):
    # nnUNetTrainer has results; its schedule variant names the same setting, and K1_eps0's family is spelled out
    assert results.check_reference("nnUNetTrainer_3ep2it_s4", ["nnUNetTrainer"]) == "nnUNetTrainer_3ep2it_s4"
    assert results.check_reference("nnUNetTrainerPolyDice", ["nnUNetTrainerPolyDice_K2_eps1_s0"])
    with pytest.raises(ValueError, match="trainers with results: nnUNetTrainerPolyDice_K1_eps0"):
        results.check_reference("nnUNetTrainerPolyDice", ["nnUNetTrainerPolyDice_K1_eps0"])


# ------------------------------------------------------------------------ damaged and duplicated results

def _edit_summary(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, why", [
    (lambda d: d["mean"]["1"].update(Dice=5.0), "mean/1/Dice = 5 is outside [0, 1]"),
    (lambda d: d["foreground_mean"].update(Dice=-1.0), "foreground_mean/Dice = -1 is outside [0, 1]"),
    (lambda d: d["metric_per_case"][0]["metrics"]["1"].update(Dice=7), "metric_per_case/0/metrics/1/Dice = 7 is"),
    (lambda d: d["mean"]["1"].update(Dice=True), "mean/1/Dice = true is not a number"),
    (lambda d: d["mean"]["1"].update(Dice=[0.5]), "mean/1/Dice = [0.5] is not a number"),
    (lambda d: d["mean"]["1"].update(Dice={}), "mean/1/Dice = {} is not a number"),
    (lambda d: d["mean"]["1"].update(Dice="abc"), 'mean/1/Dice = "abc" is not a number'),
])
def test_a_damaged_value_is_one_named_missing_line_and_enters_no_number(tree, edit, why):
    path = tree / DS / "nnUNetTrainerPolyDice_K1_eps1__nnUNetPlans__2d" / "fold_1" / "validation" / "summary.json"
    _edit_summary(path, edit)
    c = run_compare(tree, DS, "2d")
    row = c.row("nnUNetTrainerPolyDice_K1_eps1")
    assert "1" not in row.folds and all(Instance("1") not in cell.values for cell in row.cells.values())
    line = next(str(m) for m in c.missing if m.trainer == "nnUNetTrainerPolyDice_K1_eps1" and m.fold == "1")
    assert why in line and str(path) in line


def test_an_infinite_value_is_refused_by_the_one_reader(tmp_path):
    path = trainer_dir(tmp_path, "nnUNetTrainer") / "fold_0" / "validation" / "summary.json"
    write_summary(path, {1: 0.5, 2: 0.5})
    path.write_text(path.read_text().replace('"Dice": 0.5', '"Dice": 1e400', 1))
    c = run_compare(tmp_path, DS, "2d")
    assert any("Dice = inf is not a finite number" in str(m) for m in c.missing) and not c.row("nnUNetTrainer").folds


def test_a_linked_seed_folder_or_copied_summary_is_counted_once(seeds_tree):
    (seeds_tree / DS / f"{UP}_s3__nnUNetPlans__2d").symlink_to(seeds_tree / DS / f"{UP}_s0__nnUNetPlans__2d")
    copy = trainer_dir(seeds_tree, f"{FLAT}_s4") / "fold_1" / "validation"
    copy.mkdir(parents=True)
    src = seeds_tree / DS / f"{FLAT}_s2__nnUNetPlans__2d" / "fold_1"
    (copy / "summary.json").write_bytes((src / "validation" / "summary.json").read_bytes())
    (copy.parent / "checkpoint_final.pth").write_bytes(b"")
    c = run_compare(seeds_tree, DS, "2d", reference=SEEDED_REF, bootstrap=200)
    assert c.row(UP).seeds == [0, 1, 2] and c.row(UP).n_instances == 6
    assert c.row(FLAT).n_instances == 6
    missing = [str(m) for m in c.missing]
    assert f"{UP}_s3 / fold 0: the same run as {UP}_s0 fold 0 (a linked folder or a copied " \
           "validation/summary.json): counted once, there" in missing
    assert any(m.startswith(f"{FLAT}_s4 / fold 1: the same run as {FLAT}_s2 fold 1") for m in missing)


def test_only_fold_int_folders_are_folds(tree):
    d = tree / DS / "nnUNetTrainer__nnUNetPlans__2d"
    for name in ("fold_all", "fold_x", "fold_01"):
        write_summary(d / name / "validation" / "summary.json", {1: 0.99, 2: 0.99})
    c = run_compare(tree, DS, "2d")
    assert c.folds == ["0", "1", "2"]


def test_a_folder_with_a_non_canonical_seed_or_a_look_alike_name_is_left_out_and_said(seeds_tree):
    for odd in (f"{SEEDED_REF}_s01", "nnUNetTrainer\u0391_3ep2it"):  # _s01; a Greek capital alpha
        write_run(seeds_tree, odd, "0", 0.9)
    c = run_compare(seeds_tree, DS, "2d", reference=SEEDED_REF, bootstrap=200)
    assert [r.trainer for r in c.rows] == [UP, FLAT, SEEDED_REF]
    missing = [str(m) for m in c.missing]
    assert any(m.startswith(f"{SEEDED_REF}_s01: results folder left out: ") and "non-canonical" in m
               for m in missing)
    assert any("look-alike" in m for m in missing)
    assert not any("no results" in m for m in missing)


# ------------------------------------------------------------- a full disk, and names checked first (issue 22 D)

def _compare_with_file_size_limit(out, limit: int | None) -> subprocess.CompletedProcess:
    """``nnunet-polydice compare DS 2d --out OUT`` in a child process whose files cannot grow past ``limit``
    bytes (RLIMIT_FSIZE: writing past it fails with EFBIG, the stand-in for a full disk; SIGXFSZ ignored)."""
    code = ("import resource, signal, sys\n"
            "from nnunet_polydice.cli import main\n"
            f"limit = {limit!r}\n"
            "if limit is not None:\n"
            "    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
            f"sys.exit(main(['compare', {DS!r}, '2d', '--out', {str(out)!r}]))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_a_full_disk_leaves_no_partial_file_says_which_and_the_rerun_overwrites_its_own(tree, tmp_path):
    out = tmp_path / "out"
    full = _compare_with_file_size_limit(out, 2000)  # the manifest fits, a heat map does not
    assert full.returncode == 2, full.stderr
    err = full.stderr.strip()
    assert err.startswith("nnunet-polydice compare: error: could not write ") and "File too large" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == [results.MANIFEST]  # nothing half-written left
    claimed = json.loads((out / results.MANIFEST).read_text())
    assert "comparison.md" in claimed["files"] and claimed["writing"]

    again = _compare_with_file_size_limit(out, None)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [results.MANIFEST, "comparison.csv", "comparison.md", "heatmap_nnUNetTrainerPolyDice_Dice_amygdala.png",
         "heatmap_nnUNetTrainerPolyDice_Dice_hippocampus.png"])
    assert "writing" not in json.loads((out / results.MANIFEST).read_text())


def test_a_heat_map_name_of_the_users_is_refused_before_anything_is_computed_or_printed(tree, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "heatmap_nnUNetTrainerPolyDice_Dice_amygdala.png").write_bytes(b"my picture")
    assert main(["compare", DS, "2d", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "heatmap_nnUNetTrainerPolyDice_Dice_amygdala.png" in captured.err
    assert "not written by nnunet-polydice compare" in captured.err
    assert captured.out == ""  # refused before the table was computed and printed
    assert sorted(p.name for p in out.iterdir()) == ["heatmap_nnUNetTrainerPolyDice_Dice_amygdala.png"]
