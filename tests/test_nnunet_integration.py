"""The trainers against the real nnU-Net: its own lookup, its own commands, on a tiny real data set.

Every nnU-Net call runs in a subprocess whose environment has no nnUNet_extTrainer: the installed
package's start-up hook is what lets nnU-Net find the trainers (as after a user's `pip install`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import nnunet_env, run

from nnunet_polydice.experiments import datasets
from nnunet_polydice.experiments.workspace import prepare_embedded

DATASET = "Dataset731_Colin27HippoAmyg"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny Colin27/AAL cut, planned and preprocessed (2d) by nnU-Net, with its block splits."""
    work = tmp_path_factory.mktemp("tiny731")
    prepare_embedded(DATASET, work, variant="tiny", configuration=None, environ=nnunet_env(),
                     echo=lambda *_: None)
    return work


LOOKUP = r"""
import json, sys, torch
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
from batchgenerators.utilities.file_and_folder_operations import load_json
pre = sys.argv[1]
plans = load_json(pre + "/nnUNetPlans.json")
out = {}
for name in sys.argv[2:]:
    dj = load_json(pre + "/dataset.json")
    plans["continue_training"] = False  # run_training sets this (and the trainer pops it) for each trainer
    variant = name.split(":")[0]
    name = name.split(":")[1]
    if variant == "regions":
        dj["labels"] = {"background": 0, "whole": [1, 2], "amygdala": 2}
        dj["regions_class_order"] = [1, 2]
    elif variant == "ignore":
        dj["labels"] = {"background": 0, "hippocampus": 1, "amygdala": 2, "ignore": 3}
    cls = recursive_find_trainer_class_by_name(name)
    t = cls(plans=plans, configuration="2d", fold=0, dataset_json=dj, device=torch.device("cpu"))
    loss = t._build_loss()
    compound = loss.loss
    dc = compound.dc
    out[variant + ":" + name] = {
        "module": cls.__module__, "wrapper": type(loss).__name__, "compound": type(compound).__name__,
        "dice": type(dc).__name__, "weight_ce": compound.weight_ce,
        "ds_weights": [float(w) for w in loss.weight_factors],
        "K": str(getattr(dc, "K", None)), "epsilon": getattr(dc, "epsilon", None),
        "alpha": getattr(dc, "alpha", None), "beta": getattr(dc, "beta", None), "gamma": getattr(dc, "gamma", None),
        "do_bg": dc.do_bg, "batch_dice": dc.batch_dice, "smooth": dc.smooth,
        "nonlin": getattr(dc.apply_nonlin, "__name__", str(dc.apply_nonlin)),
        "ignore_label": getattr(compound, "ignore_label", None),
        "use_ignore_label": getattr(compound, "use_ignore_label", None),
    }
print("RESULT" + json.dumps(out))
"""


def _lookup(tiny, names):
    pre = tiny / "nnUNet_preprocessed" / DATASET
    proc = run([sys.executable, "-c", LOOKUP, str(pre), *names], nnunet_env(tiny))
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


@pytest.mark.e2e
def test_nnunet_lookup_builds_the_loss_the_name_says(tiny):
    names = ["labels:nnUNetTrainerPolyDice_K3_eps0p5", "labels:nnUNetTrainerPolyDiceCE_Kinf_epsm0p5",
             "labels:nnUNetTrainerPolyTversky_K2_eps1_a0p3_b0p7", "labels:nnUNetTrainerFocalTverskyCE",
             "labels:nnUNetTrainerTversky_a0p7_b0p3", "regions:nnUNetTrainerPolyDice_K2_eps0",
             "ignore:nnUNetTrainerPolyDiceCE_K1_eps1", "labels:nnUNetTrainer"]
    got = _lookup(tiny, names)
    base = got["labels:nnUNetTrainer"]
    assert base["dice"] == "MemoryEfficientSoftDiceLoss" and base["weight_ce"] == 1
    for key, info in got.items():
        if key != "labels:nnUNetTrainer":
            assert info["module"] == "nnunet_polydice_trainers"
            # deep supervision exactly as the base trainer sets it
            assert info["wrapper"] == "DeepSupervisionWrapper" and info["ds_weights"] == base["ds_weights"]
            assert info["batch_dice"] == base["batch_dice"] and info["smooth"] == 1e-5
    a = got["labels:nnUNetTrainerPolyDice_K3_eps0p5"]
    assert (a["dice"], a["K"], a["epsilon"], a["weight_ce"]) == ("PolyDiceLoss", "3", 0.5, 0)
    assert a["compound"] == "DC_and_CE_loss" and a["do_bg"] is False and a["nonlin"] == "softmax_helper_dim1"
    b = got["labels:nnUNetTrainerPolyDiceCE_Kinf_epsm0p5"]
    assert (b["dice"], b["K"], b["epsilon"], b["weight_ce"]) == ("PolyDiceLoss", "inf", -0.5, 1)
    c = got["labels:nnUNetTrainerPolyTversky_K2_eps1_a0p3_b0p7"]
    assert (c["dice"], c["K"], c["epsilon"], c["alpha"], c["beta"], c["weight_ce"]) == \
        ("PolyTverskyLoss", "2", 1.0, 0.3, 0.7, 0)
    d = got["labels:nnUNetTrainerFocalTverskyCE"]
    assert (d["dice"], d["alpha"], d["beta"], d["gamma"], d["weight_ce"]) == ("FocalTverskyLoss", 0.3, 0.7, 0.75, 1)
    e = got["labels:nnUNetTrainerTversky_a0p7_b0p3"]
    assert (e["dice"], e["alpha"], e["beta"], e["weight_ce"]) == ("TverskyLoss", 0.7, 0.3, 0)
    r = got["regions:nnUNetTrainerPolyDice_K2_eps0"]
    assert (r["compound"], r["nonlin"], r["do_bg"], r["weight_ce"], r["K"]) == \
        ("DiceOnly_BCE_loss", "sigmoid", True, 0, "2")   # nnU-Net's DC_and_BCE_loss without the BCE pass
    i = got["ignore:nnUNetTrainerPolyDiceCE_K1_eps1"]
    assert (i["compound"], i["ignore_label"], i["weight_ce"], i["K"], i["epsilon"]) == \
        ("DC_and_CE_loss", 3, 1, "1", 1.0)


@pytest.mark.parametrize("name, message", [
    ("nnUNetTrainerPolyDice_K0_eps1", "K must be a positive integer or inf (got 0)"),
    ("nnUNetTrainerPolyDice_K2_epsm2", "epsilon must be >= -1"),
    ("nnUNetTrainerPolyDiceCE_K2_eps1p0", "canonical name of this setting is 'nnUNetTrainerPolyDiceCE_K2_eps1'"),
])
@pytest.mark.e2e
def test_bad_names_fail_in_nnunet_train_with_our_sentence(tiny, name, message):
    proc = run(["nnUNetv2_train", DATASET, "2d", "0", "-tr", name, "-device", "cpu"], nnunet_env(tiny),
               check=False, timeout=300)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Could not find requested nnunet trainer" not in proc.stderr
    assert not (tiny / "nnUNet_results" / DATASET / f"{name}__nnUNetPlans__2d").exists()


def _dice(pred: np.ndarray, ref: np.ndarray, label: int) -> float:
    p, g = pred == label, ref == label
    denom = p.sum() + g.sum()
    return float("nan") if denom == 0 else 2.0 * (p & g).sum() / denom


def _epochs(log: Path) -> list[int]:
    """The epochs an nnU-Net training log started ('<time>: Epoch N ' lines)."""
    return [int(m.group(1)) for m in re.finditer(r": Epoch (\d+) *$", log.read_text(), re.MULTILINE)]


def _kill_when_epoch_starts(cmd: list, env: dict, fold_dir: Path, epoch: int) -> None:
    """Start ``cmd``, SIGKILL it (no handler runs) once its log shows ``Epoch <epoch>``: by then the
    checkpoint_latest.pth of the epoch before is complete."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 400
    while (not any(epoch in _epochs(f) for f in fold_dir.glob("training_log_*.txt")) and proc.poll() is None
           and time.time() < deadline):
        time.sleep(0.2)
    assert proc.poll() is None, "training ended before it could be interrupted"
    assert (fold_dir / "checkpoint_latest.pth").exists()
    os.killpg(proc.pid, signal.SIGKILL)  # the augmentation workers too
    proc.wait()
    assert not (fold_dir / "checkpoint_final.pth").exists()


@pytest.mark.e2e
def test_train_resume_validate_predict_and_find_best(tiny, tmp_path):
    """plan/preprocess (fixture) -> train -> killed -> --c resumes -> validation -> nnUNetv2_predict."""
    env = nnunet_env(tiny)
    name = "nnUNetTrainerPolyDice_K2_eps1_8ep3it"
    fold_dir = tiny / "nnUNet_results" / DATASET / f"{name}__nnUNetPlans__2d" / "fold_0"
    cmd = ["nnUNetv2_train", DATASET, "2d", "0", "-tr", name, "-device", "cpu", "--npz"]
    _kill_when_epoch_starts(cmd, env, fold_dir, 1)
    run(cmd + ["--c"], env)
    assert (fold_dir / "checkpoint_final.pth").exists()
    logs = sorted(fold_dir.glob("training_log_*.txt"))
    assert len(logs) == 2  # the interrupted run and the continued one
    resumed = _epochs(logs[-1])
    assert resumed[0] > 0 and resumed[-1] == 7  # it went on where it stopped, it did not start over
    summary = json.loads((fold_dir / "validation" / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2"}

    split = datasets.splits_for(DATASET, "tiny")[0]
    images = tmp_path / "imagesTs"
    images.mkdir()
    raw = tiny / "nnUNet_raw" / DATASET
    for case in split["val"]:
        (images / f"{case}_0000.nii.gz").write_bytes((raw / "imagesTr" / f"{case}_0000.nii.gz").read_bytes())
    out = tmp_path / "pred"
    run(["nnUNetv2_predict", "-i", str(images), "-o", str(out), "-d", DATASET, "-c", "2d", "-f", "0",
         "-tr", name, "-device", "cpu", "-npp", "1", "-nps", "1"], env)
    import SimpleITK as sitk

    for case in split["val"]:
        pred = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{case}.nii.gz")))
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "labelsTr" / f"{case}.nii.gz")))
        assert pred.shape == ref.shape and set(np.unique(pred)) <= {0, 1, 2}
        for label in (1, 2):
            d = _dice(pred, ref, label)
            assert np.isnan(d) or 0.0 <= d <= 1.0

    best = run(["nnUNetv2_find_best_configuration", DATASET, "-c", "2d", "-tr", name, "-f", "0", "-np", "1"],
               env, check=False)
    assert "Could not find requested nnunet trainer" not in best.stderr
    assert (tiny / "nnUNet_results" / DATASET / "inference_information.json").exists(), best.stderr[-2000:]


def _relabel_and_plan(work: Path, labels: dict, extra: dict, change) -> None:
    """Write the tiny set, change its labels and dataset.json, then plan and preprocess with nnU-Net."""
    import SimpleITK as sitk

    raw = datasets.write_nnunet_raw(DATASET, work / "nnUNet_raw", variant="tiny")
    dj = json.loads((raw / "dataset.json").read_text())
    dj["labels"] = labels
    dj.update(extra)
    (raw / "dataset.json").write_text(json.dumps(dj, indent=1))
    for f in sorted((raw / "labelsTr").glob("*.nii.gz")):
        img = sitk.ReadImage(str(f))
        arr = change(sitk.GetArrayFromImage(img))
        new = sitk.GetImageFromArray(arr.astype(np.uint8))
        new.CopyInformation(img)
        sitk.WriteImage(new, str(f))
    run(["nnUNetv2_plan_and_preprocess", "-d", "731", "-c", "2d", "-np", "1", "-npfp", "1"],
        nnunet_env(work, nnUNet_n_proc_DA="1"))
    datasets.write_splits(DATASET, work / "nnUNet_preprocessed", variant="tiny")


def _train_and_validate(work: Path, name: str) -> dict:
    run(["nnUNetv2_train", DATASET, "2d", "0", "-tr", name, "-device", "cpu"], nnunet_env(work))
    fold = work / "nnUNet_results" / DATASET / f"{name}__nnUNetPlans__2d" / "fold_0"
    log = next(fold.glob("training_log_*.txt")).read_text()
    losses = [float(line.split("train_loss")[1]) for line in log.splitlines() if "train_loss" in line]
    assert losses and all(np.isfinite(losses))
    return json.loads((fold / "validation" / "summary.json").read_text())


@pytest.mark.e2e
def test_region_based_training(tmp_path):
    """Regions (sigmoid, BCE+Dice family, background included): 'whole' = hippocampus + amygdala."""
    _relabel_and_plan(tmp_path, {"background": 0, "whole": [1, 2], "amygdala": 2}, {"regions_class_order": [1, 2]},
                      lambda a: a)
    summary = _train_and_validate(tmp_path, "nnUNetTrainerPolyDice_K2_eps1_1ep2it")
    assert set(summary["mean"]) == {"(1, 2)", "2"}  # region keys as nnU-Net writes them


@pytest.mark.e2e
def test_ignore_label_training(tmp_path):
    """An ignore label (3) on the top rows of every slice: masked out of Poly Dice and CE."""
    def add_ignore(a):
        a = a.copy()
        a[..., :8, :] = 3
        return a

    _relabel_and_plan(tmp_path, {"background": 0, "hippocampus": 1, "amygdala": 2, "ignore": 3}, {}, add_ignore)
    summary = _train_and_validate(tmp_path, "nnUNetTrainerPolyDiceCE_K3_eps0p5_1ep2it")
    assert set(summary["mean"]) == {"1", "2"}


_LOGGED = re.compile(r": (Epoch \d+|train_loss .*|val_loss .*|Pseudo dice .*|Mean Validation Dice: .*) *$",
                     re.MULTILINE)


def _logged_values(fold_dir: Path) -> list[str]:
    """Every epoch's losses and pseudo Dice and the final validation Dice, over all logs of a fold, in order."""
    logs = sorted(fold_dir.glob("training_log_*.txt"))
    return [m.group(1).strip() for log in logs for m in _LOGGED.finditer(log.read_text())]


def _weights(fold_dir: Path) -> dict:
    import torch

    return torch.load(fold_dir / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]


@pytest.mark.e2e
def test_a_seeded_name_trains_bit_identically_with_augmentation_workers_and_after_a_kill(tiny, tmp_path):
    """Two runs of one seeded name with nnU-Net's 2 augmentation worker processes: the same logged losses, pseudo
    Dice, final validation Dice and weights. The second is SIGKILLed in epoch 2 and resumed with --c, and still
    equals the first: the resumed run continues the batch stream where the uninterrupted one was."""
    name = "nnUNetTrainerPolyDice_4ep3it_s5"
    firsts = {}
    for run_name in ("uninterrupted", "killed"):
        work = tmp_path / run_name
        work.mkdir()
        for folder in ("nnUNet_raw", "nnUNet_preprocessed"):
            (work / folder).symlink_to(tiny / folder)
        env = nnunet_env(work, nnUNet_n_proc_DA="2")
        fold_dir = work / "nnUNet_results" / DATASET / f"{name}__nnUNetPlans__2d" / "fold_0"
        cmd = ["nnUNetv2_train", DATASET, "2d", "0", "-tr", name, "-device", "cpu"]
        if run_name == "killed":
            _kill_when_epoch_starts(cmd, env, fold_dir, 2)
            cmd = cmd + ["--c"]
        run(cmd, env)
        firsts[run_name] = fold_dir
    a, b = (_logged_values(firsts[k]) for k in ("uninterrupted", "killed"))
    assert len(a) == 4 * 4 + 1 and a[-1].startswith("Mean Validation Dice")
    resumed_at = b.index("Epoch 2", b.index("Epoch 2") + 1)  # epoch 2 as the resumed run logged it
    assert b[:4 * 2] == a[:4 * 2]                       # epochs 0-1 before the kill
    assert b[resumed_at:] == a[4 * 2:]                 # epochs 2-3 and the validation Dice after --c
    wa, wb = _weights(firsts["uninterrupted"]), _weights(firsts["killed"])
    assert all(np.array_equal(wa[k].numpy(), wb[k].numpy()) for k in wa)
    log = sorted(firsts["killed"].glob("training_log_*.txt"))[-1].read_text()
    assert "Seeded run (seed 5)" in log and "Resumed: the batches continue" in log
