"""``nnunet-polydice compare`` (nnunet_polydice.experiments.results) on validation summaries written in tmp_path by
nnU-Net's own ``save_summary_json``, with Dice values chosen so that every number can be checked by hand."""

import csv
import json
import math

import pytest

from nnunet_polydice.experiments import results
from nnunet_polydice.cli import main

save_summary_json = pytest.importorskip("nnunetv2.evaluation.evaluate_predictions").save_summary_json

DS = "Dataset042_Toy"
LABELS = {"background": 0, "hippocampus": 1, "amygdala": 2}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_summary(path, dice: dict, absent: dict = {}):
    """A summary.json as nnU-Net writes it: per-class means keyed by label (int) or region (tuple),
    the foreground mean over the classes, one case per fold here. ``absent``: {class: false-positive
    voxels} for classes the reference lacks (n_ref 0; nnU-Net's Dice is then 0, or NaN with nothing
    predicted)."""
    means = {k: {"Dice": v, "IoU": v / (2 - v) if not math.isnan(v) else v, "FP": 1.0, "TP": 2.0, "FN": 3.0,
                 "TN": 4.0, "n_pred": 3.0, "n_ref": 5.0} for k, v in dice.items()}
    for k, fp in absent.items():
        means[k].update(FP=float(fp), TP=0.0, FN=0.0, n_pred=float(fp), n_ref=0.0)
    fg = {m: float(sum(means[k][m] for k in means) / len(means)) for m in means[next(iter(means))]}
    data = {"metric_per_case": [{"reference_file": "ref.nii.gz", "prediction_file": "pred.nii.gz",
                                 "metrics": {k: dict(v) for k, v in means.items()}}],
            "mean": means, "foreground_mean": fg}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_summary_json(data, str(path))


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
    c = results.compare(tree, DS, "2d")
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
    assert k2.diffs["1"] == pytest.approx(0.1) and k2.diffs["2"] == pytest.approx(0.3)


def test_reference_has_the_rows_schedule_if_that_exists(tree):
    c = results.compare(tree, DS, "2d")
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
    c = results.compare(tree, DS, "2d", trainers=["nnUNetTrainer", "nnUNetTrainerPolyDice_K2_eps0",
                                                  "nnUNetTrainerPolyDice_K9_eps0"], folds=["0", "1", "2", "3"])
    missing = [str(m) for m in c.missing]
    assert "nnUNetTrainerPolyDice_K2_eps0 / fold 2: no validation/summary.json (training unfinished or " \
           "validation not run)" in missing
    assert "nnUNetTrainer / fold 3: not trained (no fold folder)" in missing
    assert "nnUNetTrainerPolyDice_K9_eps0: no results folder nnUNetTrainerPolyDice_K9_eps0__nnUNetPlans__2d" \
        in missing
    assert len(missing) == 4  # + K2_eps0 fold 3
    # the trainer without results keeps its row, with empty cells
    row = c.row("nnUNetTrainerPolyDice_K9_eps0")
    assert row.n_folds == 0 and "-" in c.text().split("nnUNetTrainerPolyDice_K9_eps0 *")[1].splitlines()[0]


def test_nan_values_are_left_out_and_reported(tmp_path):
    d = trainer_dir(tmp_path, "nnUNetTrainer")
    write_summary(d / "fold_0" / "validation" / "summary.json", {1: 0.5, 2: float("nan")})
    write_summary(d / "fold_1" / "validation" / "summary.json", {1: 0.7, 2: 0.3})
    c = results.compare(tmp_path, DS, "2d")
    row = c.row("nnUNetTrainer")
    assert row.cells["2"].n == 1 and row.cells["2"].mean == pytest.approx(0.3) and row.cells["2"].std is None
    assert row.cells["1"].mean == pytest.approx(0.6)
    assert "nnUNetTrainer / fold 0: class amygdala: Dice is NaN" in [str(m) for m in c.missing]
    assert "[n=1]" in c.text()


def test_a_class_absent_from_a_folds_reference_is_left_out_of_overlap_metrics(tmp_path):
    # contiguous folds: fold 0 has no amygdala. nnU-Net scores the 7 false-positive voxels there as Dice 0;
    # fold 3 has none and nothing predicted (NaN). Neither is a Dice of the amygdala.
    d = trainer_dir(tmp_path, "nnUNetTrainer")
    write_summary(d / "fold_0" / "validation" / "summary.json", {1: 0.5, 2: 0.0}, absent={2: 7})
    write_summary(d / "fold_1" / "validation" / "summary.json", {1: 0.7, 2: 0.3})
    write_summary(d / "fold_2" / "validation" / "summary.json", {1: 0.6, 2: 0.5})
    write_summary(d / "fold_3" / "validation" / "summary.json", {1: 0.6, 2: float("nan")}, absent={2: 0})
    c = results.compare(tmp_path, DS, "2d")
    amyg = c.row("nnUNetTrainer").cells["2"]
    assert amyg.values == {"1": 0.3, "2": 0.5}
    assert amyg.mean == pytest.approx(0.4) and amyg.std == pytest.approx(math.sqrt(0.02))
    assert c.row("nnUNetTrainer").cells["1"].mean == pytest.approx(0.6)  # (0.5 + 0.7 + 0.6 + 0.6) / 4
    missing = [str(m) for m in c.missing]
    assert ("nnUNetTrainer / fold 0: class amygdala: absent from the reference of every validation case, "
            "left out (Dice 0.0000, 7 false-positive voxels)") in missing
    assert ("nnUNetTrainer / fold 3: class amygdala: absent from the reference of every validation case, "
            "left out (nothing predicted)") in missing
    assert not any("Dice is NaN" in m and "amygdala" in m for m in missing)
    assert "amygdala" in c.text() and "[n=2]" in c.text()
    # other metrics keep the fold: the false positives are real numbers there
    fp = results.compare(tmp_path, DS, "2d", metric="FP").row("nnUNetTrainer").cells["2"]
    assert fp.values == {"0": 7.0, "1": 1.0, "2": 1.0, "3": 0.0}


def test_region_keys_take_their_names_from_dataset_json(tmp_path):
    d = tmp_path / DS / "nnUNetTrainerPolyDice__nnUNetPlans__2d"
    d.mkdir(parents=True)
    (d / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "whole tumour": [1, 2], "core": 2, "ignore": 3}, "regions_class_order": [1, 2]}))
    write_summary(d / "fold_0" / "validation" / "summary.json", {(1, 2): 0.8, 2: 0.6})
    data = json.loads((d / "fold_0" / "validation" / "summary.json").read_text())
    assert set(data["mean"]) == {"(1, 2)", "2"}
    c = results.compare(tmp_path, DS, "2d")
    assert c.classes == [("(1, 2)", "whole tumour"), ("2", "core")]
    assert c.row("nnUNetTrainerPolyDice").cells["(1, 2)"].mean == pytest.approx(0.8)


def test_class_falls_back_to_the_key_without_dataset_json(tmp_path):
    d = tmp_path / DS / "nnUNetTrainer__nnUNetPlans__2d"
    write_summary(d / "fold_0" / "validation" / "summary.json", {10: 0.8, 2: 0.6})
    c = results.compare(tmp_path, DS, "2d")
    assert c.classes == [("2", "2"), ("10", "10")]  # numeric order, not nnU-Net's string order


def test_other_metric_and_bad_metric(tree):
    c = results.compare(tree, DS, "2d", metric="IoU", trainers=["nnUNetTrainer"])
    assert c.row("nnUNetTrainer").cells["1"].values["0"] == pytest.approx(0.5 / 1.5)
    with pytest.raises(ValueError, match="no metric 'HD95'"):
        results.compare(tree, DS, "2d", metric="HD95")


def test_cli_writes_md_csv_and_heatmaps(tree, capsys):
    assert main(["compare", "42", "2d"]) == 0
    out_dir = tree / DS / "polydice_compare_2d"
    printed = capsys.readouterr().out
    assert "nnUNetTrainerPolyDice_K2_eps0 *" in printed
    assert "0.8000 ± 0.1000 (+0.2000)" in printed  # K1_eps0 hippocampus
    assert "Missing (1):" in printed and "nnUNetTrainerPolyDice_K2_eps0 / fold 2" in printed

    md = (out_dir / "comparison.md").read_text()
    assert "| trainer | folds | hippocampus | amygdala | foreground mean | reference |" in md
    assert "| nnUNetTrainerPolyDice_K2_eps0 * | 2/3 | 0.7000 ± 0.1414 (+0.1000) |" in md
    assert "## Missing" in md
    assert "- nnUNetTrainerPolyDice_K2_eps0 / fold 2: no validation/summary.json" in md
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
    c = results.compare(tree, DS, "2d")
    groups = results.heatmap_groups(c)
    assert list(groups) == ["nnUNetTrainerPolyDice"]
    assert sorted(groups["nnUNetTrainerPolyDice"]) == [(1, 0.0), (1, 1.0), (2, 0.0)]  # (2, 1.0) is a blank cell


def test_output_folder_never_overwrites_user_files(tree, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "comparison.md").write_text("my notes")
    assert main(["compare", DS, "2d", "--out", str(out)]) == 2
    assert (out / "comparison.md").read_text() == "my notes"
    assert "not written by nnunet-polydice compare" in capsys.readouterr().err
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
    assert "0.7000 ± 0.1414 (+0.1500)" in printed


def test_a_trainer_folder_without_folds_is_reported(tmp_path):
    trainer_dir(tmp_path, "nnUNetTrainer")
    c = results.compare(tmp_path, DS, "2d")
    assert c.folds == [] and [str(m) for m in c.missing][0] == "nnUNetTrainer: no fold_<f> folders with results"


def test_no_results_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    assert main(["compare", DS, "2d"]) == 2
    assert "no results of Dataset042_Toy" in capsys.readouterr().err
    (tmp_path / DS).mkdir()
    assert main(["compare", DS, "2d"]) == 2
    assert "no trainer folders" in capsys.readouterr().err
