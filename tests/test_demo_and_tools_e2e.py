"""End to end with nnU-Net's real commands on tiny real data: the demo, sweep + compare, the Medical
Segmentation Decathlon path and 3D training. Also the demo's Dice arithmetic and the ``datasets`` command.

Everything runs in pytest's tmp folders, with schedules of one epoch of two iterations (``_1ep2it``); the
subprocesses get ``nnUNet_n_proc_DA=0`` and ``nnUNet_def_n_proc=1`` (conftest.nnunet_env). The sweep test
goes on in the demo's work folder (the ``demo_run`` fixture), as a user would after the demo: that saves
a planning run and two trainings.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import nnunet_env, run

from nnunet_polydice.cli import main as cli_main
from nnunet_polydice.experiments import datasets
from nnunet_polydice.experiments.demo import dice_scores, format_dice_table
from nnunet_polydice.integration.naming import parse_trainer_name

COLIN = "Dataset731_Colin27HippoAmyg"
TIMEOUT = 900


def tool() -> str:
    """The installed ``nnunet-polydice`` console script."""
    found = shutil.which("nnunet-polydice") or str(Path(sys.executable).parent / "nnunet-polydice")
    assert Path(found).is_file(), "nnunet-polydice is not installed (pip install .)"
    return found


def read_array(path) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


# ------------------------------------------------------------------------------ Dice of the demo

LABELS = {"background": 0, "a": 1, "b": 2}


@pytest.mark.parametrize("preds, refs, expected", [
    # one case: P = 2 px, G = 1 px, overlap 1 -> 2*1/(2+1)
    ([[[1, 1, 0, 0]]], [[[1, 0, 0, 0]]], {"a": (2 / 3, 2 / 3, 1), "b": (None, None, 0)}),
    # perfect and empty: Dice 1 and the class in neither map (left out of the per-case mean)
    ([[[1, 2]], [[0, 0]]], [[[1, 2]], [[0, 0]]], {"a": (1.0, 1.0, 1), "b": (1.0, 1.0, 1)}),
    # case 1: P = G = 1 px (Dice 1); case 2: P empty, G = 3 px (Dice 0)
    # pooled 2*1/(1+1+0+3) = 0.4, mean per case (1 + 0)/2 = 0.5
    ([[[1, 0, 0, 0]], [[0, 0, 0, 0]]], [[[1, 0, 0, 0]], [[1, 1, 1, 0]]], {"a": (0.4, 0.5, 2), "b": (None, None, 0)}),
    # a false positive only: pooled 0, one case counted with Dice 0
    ([[[2, 0]], [[0, 0]]], [[[0, 0]], [[0, 0]]], {"a": (None, None, 0), "b": (0.0, 0.0, 1)}),
])
def test_dice_scores_by_hand(preds, refs, expected):
    got = dice_scores([np.array(p) for p in preds], [np.array(r) for r in refs], LABELS)
    assert set(got) == {"a", "b"}  # background left out
    for name, (pooled, per_case, n) in expected.items():
        assert got[name]["n_cases"] == n
        for key, want in (("pooled", pooled), ("per_case_mean", per_case)):
            assert (got[name][key] is None) if want is None else got[name][key] == pytest.approx(want)


def test_dice_scores_ill_inputs():
    with pytest.raises(ValueError, match="shape"):
        dice_scores([np.zeros((2, 2))], [np.zeros((2, 3))], LABELS)
    with pytest.raises(ValueError, match="1 predictions for 2 references"):
        dice_scores([np.zeros(2)], [np.zeros(2), np.zeros(2)], LABELS)


def test_dice_table_layout():
    scores = {"T1": {"a": {"pooled": 0.4, "per_case_mean": 0.5, "n_cases": 2},
                     "b": {"pooled": None, "per_case_mean": None, "n_cases": 0}}}
    lines = format_dice_table(scores).splitlines()
    assert lines[0] == "| trainer | a pooled | a mean per slice (n) | b pooled | b mean per slice (n) |"
    assert lines[2] == "| T1 | 0.400 | 0.500 (2) | n/a | n/a (0) |"


def test_pick_slices_by_hand():
    from nnunet_polydice.experiments.demo import pick_slices

    refs = [np.array([[[1, 1], [1, 0]]]),  # case 0: a 3 px
            np.array([[[2, 0], [0, 0]], [[1, 1], [2, 2]]]),  # case 1: slice 0 b 1 px; slice 1 a 2 + b 2 = 4 px
            np.zeros((1, 2, 2), int),  # case 2: nothing
            np.array([[[2, 2], [2, 0]]]),  # case 3: b 3 px
            np.array([[[1, 1], [0, 1]]])]  # case 4: a 3 px, a tie with case 0 (the earlier wins)
    # most a: case 0; most b: case 3; then the most foreground: case 1 slice 1 (4 px), then the 3-px case 4
    assert pick_slices(refs, LABELS) == [(0, 0), (1, 1), (3, 0), (4, 0)]
    assert pick_slices(refs, LABELS, n=3) == [(0, 0), (1, 1), (3, 0)]
    assert pick_slices(refs, LABELS, n=1) == [(0, 0)]
    assert pick_slices([np.zeros((1, 2, 2), int)] * 2, LABELS, n=4) == [(0, 0), (1, 0)]  # no foreground: in order


def test_prediction_figure_layout(tmp_path):
    """A 3D case of 3 slices, one trainer: 3 rows of image | reference | prediction."""
    from nnunet_polydice.experiments.demo import write_prediction_figure

    image = np.tile(np.linspace(0, 1, 32), (3, 32, 1))
    ref = np.zeros((3, 32, 32), int)
    ref[:, 8:16, 8:16] = 1
    pred = np.zeros_like(ref)
    pred[:, 20:28, 20:28] = 2  # only class b predicted
    path = write_prediction_figure(tmp_path / "p.png", [image], [ref], {"T": [pred]}, ["case"], LABELS, "title")
    pixels = _check_png(path)
    # 3 columns of 240 px; 40 px header + 3 rows of (40 px titles + 240 px panel) + 40 px footer
    assert pixels.shape[:2] == (920, 720)
    rgb = pixels[40:880, :, :3]
    gold, magenta = "#ffd700", "#ff00ff"  # classes 1 and 2
    assert _near(rgb[:, 240:480], gold).sum() > 20 and not _near(rgb[:, 240:480], magenta).any()
    assert _near(rgb[:, 480:], magenta).sum() > 20 and not _near(rgb[:, 480:], gold).any()


# ------------------------------------------------------------------------------ datasets command

def test_datasets_command_lists_and_writes(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    assert cli_main(["datasets"]) == 0
    listing = capsys.readouterr().out
    for name in datasets.REGISTRY:
        assert f"{name} [full]" in listing and f"{name} [tiny]" in listing

    assert cli_main(["datasets", "write", "colin27"]) == 2  # no --raw, no $nnUNet_raw
    assert "nnUNet_raw is not set" in capsys.readouterr().err

    raw = tmp_path / "raw"
    monkeypatch.setenv("nnUNet_raw", str(raw))
    assert cli_main(["datasets", "write", "dsb2018", "--variant", "tiny"]) == 0
    folder = raw / "Dataset732_DSB2018Nuclei"
    cases = datasets.load_cases("dsb2018", "tiny").case_ids
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == sorted(f"{c}.nii.gz" for c in cases)
    assert cli_main(["datasets", "write", "732", "--variant", "tiny"]) == 0  # identical: a no-op
    capsys.readouterr()
    assert cli_main(["datasets", "write", "732"]) == 2  # the full variant differs: refused
    err = capsys.readouterr().err
    assert "already exists and differs" in err and "overwrite=True" not in err

    pre = tmp_path / "pre"
    assert cli_main(["datasets", "write", "732", "--variant", "tiny", "--splits", "--preprocessed", str(pre)]) == 2
    assert "plan and preprocess first" in capsys.readouterr().err
    (pre / "Dataset732_DSB2018Nuclei").mkdir(parents=True)  # as after nnUNetv2_plan_and_preprocess
    monkeypatch.setenv("nnUNet_preprocessed", str(pre))
    assert cli_main(["datasets", "write", "732", "--variant", "tiny", "--splits"]) == 0
    splits = json.loads((pre / "Dataset732_DSB2018Nuclei" / "splits_final.json").read_text())
    assert splits == datasets.splits_for("dsb2018", "tiny")


# ------------------------------------------------------------------------------ the demo

def _table_row(output: str, trainer: str) -> list[str]:
    rows = [line for line in output.splitlines() if line.startswith(f"| {trainer} |")]
    assert rows, f"no table row for {trainer} in the output"
    return [c.strip() for c in rows[-1].strip("|").split("|")]


DEMO_TRAINERS = ["nnUNetTrainerPolyDice_1ep2it_s0", "nnUNetTrainer_1ep2it_s0"]  # seeded: the same every run


def _demo_command():
    return [tool(), "demo", "--work", "demo", "--variant", "tiny", "--schedule", "1x2", "--device", "cpu"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo's first run (tiny data, 1 epoch of 2 iterations), from a folder of its own, with the user's
    own (empty) nnU-Net folders in the environment. Shared by the demo test and the sweep test, which
    goes on in the demo's work folder as a user would after the demo."""
    root = tmp_path_factory.mktemp("demo")
    user = {v: root / "user" / v for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for folder in user.values():
        folder.mkdir(parents=True)
    env = nnunet_env(**{k: str(v) for k, v in user.items()})
    proc = run(_demo_command(), env, timeout=TIMEOUT, cwd=root)
    return {"root": root, "work": root / "demo", "env": env, "user": user, "stdout": proc.stdout}


def _near(rgb: np.ndarray, colour: str, tol: float = 0.15) -> np.ndarray:
    """Pixels (of an H x W x 3 float image) within ``tol`` of a '#rrggbb' colour in every channel."""
    want = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return np.all(np.abs(rgb - want) <= tol, axis=-1)


def _check_picture(path: Path, cases: list[str]) -> np.ndarray:
    """Decode the demo's picture and check its size and content; return its pixels."""
    from matplotlib.image import imread

    pixels = imread(path)
    # 2 held-out slices (tiny fold 3) -> 2 rows; columns: image, reference, 2 trainers. At 100 dpi, panels of
    # 240 px, a 40 px title band over each row, a 40 px header and a 40 px legend footer:
    # 4 * 240 = 960 wide, 40 + 2 * (40 + 240) + 40 = 640 high.
    assert len(cases) == 2 and pixels.shape[:2] == (640, 960)
    rgb = pixels[..., :3]
    assert rgb.std() > 0.1  # not blank
    panels = slice(40, 600)  # rows between the header and the footer
    gold, magenta = "#ffd700", "#ff00ff"  # hippocampus, amygdala (both in both slices' reference)
    image_column, reference_column = rgb[panels, 0:240], rgb[panels, 240:480]
    for colour in (gold, magenta):
        assert not _near(image_column, colour).any()  # the image column: the image alone
        assert _near(reference_column, colour).sum() > 20  # the reference column: both outlines
        assert _near(rgb[600:], colour).any()  # the legend
    return pixels


def _check_png(path: Path) -> np.ndarray:
    """Decode a PNG, check that it is a picture (not blank), return its pixels."""
    from matplotlib.image import imread

    pixels = imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) >= 100 and pixels[..., :3].std() > 0.01, path
    return pixels


@pytest.mark.e2e
def test_demo_end_to_end_and_resume(demo_run):
    out, work = demo_run["stdout"], demo_run["work"]
    for i in range(1, 7):
        assert f"=== Step {i}/6:" in out
    assert out.index("=== Step 2/6") < out.index("Epoch 0") < out.index("=== Step 3/6")  # nnU-Net's log streams
    assert "hippocampus pooled" in out and "amygdala pooled" in out
    assert re.search(r"Demo finished in [\d.]+ min", out)
    # the way on: the demo's three folders and the commands with its exact names, configuration and fold
    for folder in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        assert f"  export {folder}={work / folder}\n" in out
    assert f"-d {COLIN} -c 2d_cpu -f 3 -tr {DEMO_TRAINERS[0]} -device cpu" in out
    assert f"nnunet-polydice compare {COLIN} 2d_cpu --trainers {' '.join(DEMO_TRAINERS)}" in out

    cases = datasets.splits_for(COLIN, "tiny")[3]["val"]  # fold 3: the block with both structures
    assert sorted(p.name for p in (work / "heldout_fold3" / "imagesTs").iterdir()) == [
        f"{c}_0000.nii.gz" for c in cases]
    table_md = (work / "demo_dice.md").read_text()
    cs = datasets.load_cases(COLIN, "tiny")
    refs = {c: cs.labels[cs.case_ids.index(c)] for c in cases}
    for trainer in DEMO_TRAINERS:
        row = _table_row(out, trainer)
        assert f"| {' | '.join(row)} |" in table_md
        preds = {}
        for case in cases:
            pred = read_array(work / "predictions" / trainer / f"{case}.nii.gz")
            assert pred.shape == (1, *refs[case].shape) and set(np.unique(pred)) <= {0, 1, 2}
            preds[case] = pred[0]
        # the hippocampus cell, recomputed here from the prediction files and the embedded labels
        inter = sum(np.count_nonzero((preds[c] == 1) & (refs[c] == 1)) for c in cases)
        total = sum(np.count_nonzero(preds[c] == 1) + np.count_nonzero(refs[c] == 1) for c in cases)
        assert row[1] == f"{2 * inter / total:.3f}"
    for folder in demo_run["user"].values():
        assert not any(folder.iterdir()), f"the demo wrote into the user's {folder.name}"

    # the picture: printed after the Dice table, both slices chosen, decoded
    picture = work / "demo_predictions.png"
    assert out.index(f"Wrote {picture} ") > out.index(f"| {DEMO_TRAINERS[-1]} |")
    assert f"foreground, at most 4): {', '.join(cases)}" in out
    assert "![held-out slices](demo_predictions.png)" in table_md
    pixels = _check_picture(picture, cases)

    # what the resume must not redo: no training, no prediction (files unchanged, byte for byte and in time)
    kept = sorted(p for p in (work / "nnUNet_results").rglob("*") if p.is_file())
    kept += sorted((work / "predictions").rglob("*.nii.gz"))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in kept}
    assert any(p.name == "checkpoint_final.pth" for p in kept) and any(p.suffix == ".gz" for p in kept)
    second = run(_demo_command(), demo_run["env"], timeout=TIMEOUT, cwd=demo_run["root"])
    for trainer in DEMO_TRAINERS:
        assert f"{trainer} fold 3: skip" in second.stdout
        assert _table_row(second.stdout, trainer) == _table_row(out, trainer)
    assert ": fresh" not in second.stdout and "nnUNetv2_train" not in second.stdout
    assert "$ nnUNetv2_predict" not in second.stdout and "Epoch 0" not in second.stdout
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in kept} == before
    assert np.array_equal(_check_picture(picture, cases), pixels)  # drawn again, the same

    # the learning curves of the two runs, from nnU-Net's training logs, listed after the table
    curves = sorted((work / "curves").glob("*.png"))
    assert curves, "no learning-curve picture in <work>/curves"
    assert f"Wrote the learning curves to {work / 'curves'}:" in out
    for png in curves:
        assert f"  {png.name}\n" in out
        _check_png(png)


# ------------------------------------------------------------------------------ sweep + compare

@pytest.mark.e2e
def test_sweep_and_compare_after_the_demo(demo_run):
    """In the demo's work folder: a sweep of one more Poly Dice setting and the baseline over folds 3 and 4
    (the demo's fold-3 runs count as finished), then compare."""
    work = demo_run["work"]
    env = nnunet_env(work)
    sweep = [tool(), "sweep", "731", "2d_cpu", "--folds", "3", "4", "--K", "inf", "--epsilon", "0",
             "--families", "nnUNetTrainerPolyDice", "--baselines", "nnUNetTrainer", "nnUNetTrainerPolyDice",
             "--schedule", "1x2", "--seeds", "0", "--device", "cpu"]
    # the grid's Kinf_eps0 and the family default (K=2, eps=1: the demo's trainer) make a 2-cell heat map
    trainers = ["nnUNetTrainerPolyDice_Kinf_eps0_1ep2it_s0", "nnUNetTrainer_1ep2it_s0",
                "nnUNetTrainerPolyDice_1ep2it_s0"]
    out = run(sweep, env, timeout=TIMEOUT).stdout
    assert "Sweep done: 4 of 4 runs succeeded, 2 were already finished." in out
    for trainer in DEMO_TRAINERS:
        assert f"{trainer} fold 3: skip" in out

    compare = run([tool(), "compare", "731", "2d_cpu"], env, timeout=TIMEOUT).stdout
    # seeded runs: one row per setting (parameters spelled out), labelled with its seeds
    settings = [parse_trainer_name(t).setting for t in trainers]
    for setting in settings:
        assert re.search(rf"^{setting} \[seeds 0\]\s+2/2, 2 runs\s", compare, re.M), compare

    results = work / "nnUNet_results" / COLIN
    out_dir = results / "polydice_compare_2d_cpu"
    rows = list(csv.DictReader((out_dir / "comparison.csv").open()))
    assert sorted((r["trainer"], r["class"]) for r in rows) == sorted(
        (t, c) for t in settings for c in ("hippocampus", "amygdala", "foreground mean"))
    for png in ("heatmap_nnUNetTrainerPolyDice_1ep2it_seeded_Dice_hippocampus.png",
                "heatmap_nnUNetTrainerPolyDice_1ep2it_seeded_Dice_amygdala.png"):
        assert (out_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # one fact against nnU-Net's own files: the mean over folds of summary.json's amygdala Dice
    # (amygdala is in the reference of both folds, so nnU-Net's value is never NaN)
    def summary_mean(trainer):
        return statistics.fmean(
            json.loads((results / f"{trainer}__nnUNetPlans__2d_cpu" / f"fold_{f}" / "validation" / "summary.json")
                       .read_text())["mean"]["2"]["Dice"] for f in (3, 4))

    row = next(r for r in rows if r["trainer"] == settings[0] and r["class"] == "amygdala")
    assert row["n_folds"] == "2" and row["runs"] == "seeds 0"
    assert float(row["mean"]) == pytest.approx(summary_mean(trainers[0]), abs=1e-12)
    assert row["reference"] == "nnUNetTrainer_1ep2it"
    assert float(row["diff_to_reference"]) == pytest.approx(
        summary_mean(trainers[0]) - summary_mean("nnUNetTrainer_1ep2it_s0"), abs=1e-12)

    again = run(sweep, env, timeout=TIMEOUT).stdout
    assert again.count(": skip") == 6 and "nnUNetv2_train" not in again
    assert "0 of 0 runs succeeded, 6 were already finished" in again


# ------------------------------------------------------------------------------ MSD task, 3D training

@pytest.mark.e2e
def test_msd_task_to_3d_training_and_prediction(tmp_path):
    """write_msd_task -> nnUNetv2_convert_MSD_dataset -> plan 3d_fullres -> leave-one-out splits ->
    nnUNetv2_train a compound Poly Dice trainer in 3D -> nnUNetv2_predict the held-out cube."""
    env = nnunet_env(tmp_path)
    task = datasets.write_msd_task(tmp_path / "msd")
    run(["nnUNetv2_convert_MSD_dataset", "-i", str(task), "-overwrite_id", "934", "-np", "1"], env, timeout=TIMEOUT)
    name = "Dataset934_Colin27HippoAmyg"
    raw = tmp_path / "nnUNet_raw" / name
    dataset_json = json.loads((raw / "dataset.json").read_text())
    assert dataset_json["labels"] == {"background": 0, "hippocampus": 1, "amygdala": 2}
    cubes = datasets.load_cases("Dataset733_Colin27HippoAmyg3D")
    assert sorted(p.name for p in (raw / "imagesTr").iterdir()) == sorted(f"{c}_0000.nii.gz" for c in cubes.case_ids)

    # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA): it needs at least 1
    run(["nnUNetv2_plan_and_preprocess", "-d", "934", "-c", "3d_fullres", "-np", "1", "-npfp", "1"],
        {**env, "nnUNet_n_proc_DA": "1"}, timeout=TIMEOUT)
    # 4 cases: nnU-Net cannot make its 5 random folds; leave one cube out, as for Dataset733
    splits = datasets.splits_for("Dataset733_Colin27HippoAmyg3D")
    assert [len(s["val"]) for s in splits] == [1, 1, 1, 1]
    (tmp_path / "nnUNet_preprocessed" / name / "splits_final.json").write_text(json.dumps(splits))

    trainer = "nnUNetTrainerPolyDiceCE_K3_eps0p5_1ep2it"
    run(["nnUNetv2_train", "934", "3d_fullres", "0", "-tr", trainer, "-device", "cpu"], env, timeout=TIMEOUT)
    fold = tmp_path / "nnUNet_results" / name / f"{trainer}__nnUNetPlans__3d_fullres" / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file()
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2"}
    # what nnU-Net recorded of the trainer it ran: our loss with the name's K and epsilon, CE kept
    debug = json.loads((fold / "debug.json").read_text())
    assert "PolyDiceLoss(K=3, epsilon=0.5," in debug["loss"] and "CrossEntropyLoss" in debug["loss"]
    assert "compound=True" in debug["polyloss_spec"]
    log = next(fold.glob("training_log_*.txt")).read_text()
    losses = [float(v) for v in re.findall(r"train_loss (-?[\d.]+)", log)]
    assert losses and all(v >= 0 for v in losses)  # CE + Poly Dice >= 0; nnU-Net's CE - Dice can be negative

    held_out = splits[0]["val"][0]
    images = tmp_path / "imagesTs"
    images.mkdir()
    shutil.copy2(raw / "imagesTr" / f"{held_out}_0000.nii.gz", images)
    pred_dir = tmp_path / "pred"
    run(["nnUNetv2_predict", "-i", str(images), "-o", str(pred_dir), "-d", "934", "-c", "3d_fullres", "-f", "0",
         "-tr", trainer, "-device", "cpu", "-npp", "1", "-nps", "1"], env, timeout=TIMEOUT)
    import SimpleITK as sitk

    pred = sitk.ReadImage(str(pred_dir / f"{held_out}.nii.gz"))
    ref = sitk.ReadImage(str(raw / "labelsTr" / f"{held_out}.nii.gz"))
    assert pred.GetSize() == ref.GetSize() == (32, 32, 32)
    assert np.allclose(pred.GetSpacing(), ref.GetSpacing()) and np.allclose(pred.GetOrigin(), ref.GetOrigin())
    assert np.allclose(pred.GetDirection(), ref.GetDirection())
    assert set(np.unique(sitk.GetArrayViewFromImage(pred))) <= {0, 1, 2}


# ------------------------------------------------------------------------------ learning curves

@pytest.mark.e2e
def test_curves_from_the_demos_real_training_logs(demo_run, tmp_path):
    """``curves`` on the real nnU-Net runs of the demo's work folder (and the sweep's, when that test ran first):
    the logs give back what nnU-Net kept in its checkpoint, and every PNG has one line per trainer."""
    import matplotlib
    import torch
    from matplotlib.image import imread

    from nnunet_polydice.experiments import curves as curves_lib

    work = demo_run["work"]
    results = work / "nnUNet_results"
    out_dir = tmp_path / "curves"
    printed = run([tool(), "curves", "731", "2d_cpu", "--out", str(out_dir)], nnunet_env(work), timeout=TIMEOUT).stdout
    found = curves_lib.collect(results, COLIN, "2d_cpu")
    assert set(DEMO_TRAINERS) <= set(found.trainers) and found.classes == ["hippocampus", "amygdala"]
    assert found.runs and not found.missing
    for r in found.runs:
        assert re.search(rf"^{r.trainer}\s+{r.fold}\s+finished\s+{len(r.epochs)}\s", printed, re.M), printed
        # nnU-Net's own per-epoch record (MetaLogger's lists, saved in the checkpoint), against the log text; the
        # log rounds to 4 decimals, so the recomputed EMA may differ by at most 5e-5 (float32 noise aside)
        fold = results / COLIN / f"{r.trainer}__nnUNetPlans__2d_cpu" / f"fold_{r.fold}"
        logged = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["logging"]
        assert [e.epoch for e in r.epochs] == list(range(len(logged["ema_fg_dice"])))
        assert r.ema == pytest.approx([float(v) for v in logged["ema_fg_dice"]], abs=6e-5, nan_ok=True)
        assert r.mean_fg == pytest.approx([float(v) for v in logged["mean_fg_dice"]], abs=6e-5, nan_ok=True)
        for e, dice in zip(r.epochs, logged["dice_per_class_or_region"]):
            assert e.pseudo_dice == pytest.approx([float(v) for v in dice], abs=6e-5, nan_ok=True)
        assert [e.train_loss for e in r.epochs] == pytest.approx([float(v) for v in logged["train_losses"]],
                                                                  abs=6e-5)

    written, plotted = curves_lib.write_outputs(found, tmp_path / "again")
    pngs = sorted(p.name for p in out_dir.glob("*.png"))
    assert pngs == sorted(["curves_pseudo_dice_hippocampus.png", "curves_pseudo_dice_amygdala.png",
                           "curves_ema_pseudo_dice.png"]) == sorted(plotted)
    # tab10 without its grey: the anti-aliased edge of the black threshold line is (127, 127, 127) too
    palette = [rgb for rgb in (tuple(int(255 * c + 0.5) for c in colour) for colour in
                               matplotlib.colormaps["tab10"].colors) if len(set(rgb)) > 1]
    assert len(found.trainers) <= 7  # the first 7 colours of tab10 are not grey
    groups = found.settings()  # the seeded runs of one setting are one line: here one seed per setting
    assert len(groups) == len(found.trainers) and all(seeded for _, _, seeded, _ in groups)
    for name in pngs:
        lines = plotted[name]
        assert [line.trainer for line in lines] == [label for label, *_ in groups]  # one line per setting
        pixels = (imread(out_dir / name)[..., :3] * 255 + 0.5).astype(int)
        assert pixels.shape == (500, 800, 3)  # 8 x 5 inches at 100 dpi
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50 and (pixels < 250).any(axis=-1).mean() > 0.02
        # the line colours in the picture: exactly the first len(trainers) colours of tab10
        present = [c for c in palette if (np.abs(pixels - np.array(c)).max(axis=-1) <= 2).sum() >= 10]
        assert present == palette[: len(found.trainers)], name
        assert [tuple(int(255 * c + 0.5) for c in line.color) for line in lines] == present
    # the EMA line of a trainer: the mean over its folds of each fold's EMA
    for line, (_, _, _, members) in zip(plotted["curves_ema_pseudo_dice.png"], groups):
        runs = [r for t in members for r in found.runs_of(t)]
        assert line.y == pytest.approx([statistics.fmean(r.ema[i] for r in runs if i < len(r.ema))
                                        for i in range(len(line.y))])
