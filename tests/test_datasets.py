"""Facts about the embedded data sets and the writers in nnunet_polydice.experiments.datasets.

No nnU-Net planning here (that is in the integration tests); everything is written under tmp_path.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")

from nnunet_polydice.experiments import datasets as D  # noqa: E402

COLIN = "Dataset731_Colin27HippoAmyg"
DSB = "Dataset732_DSB2018Nuclei"
COLIN3D = "Dataset733_Colin27HippoAmyg3D"


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


# ---------------------------------------------------------------- registry and shipped arrays


def test_registry_ids_and_names():
    assert D.dataset_keys() == [COLIN, DSB, COLIN3D]
    assert [D.get_dataset(k).dataset_id for k in D.dataset_keys()] == [731, 732, 733]
    for alias, name in [(731, COLIN), ("732", DSB), ("colin27_3d", COLIN3D), ("Dataset731", COLIN), ("dsb2018", DSB)]:
        assert D.get_dataset(alias).name == name
    with pytest.raises(KeyError):
        D.get_dataset("Dataset999_Nope")
    with pytest.raises(ValueError):
        D.load_cases(COLIN, "huge")


def test_shipped_files_small_and_licences_present():
    files = {p.name: p.stat().st_size for p in D.DATA_DIR.iterdir() if p.is_file()}
    for name in ("colin27_aal_coronal.npz", "dsb2018_nuclei_tiles.npz", "colin27_aal_3d_crops.npz",
                 "PROVENANCE.md", "COLIN27_AAL_DEBIAN_COPYRIGHT", "STARDIST_LICENSE"):
        assert name in files
    assert sum(files.values()) < 5 * 1024 * 1024
    assert "BSD-3-clause" in (D.DATA_DIR / "COLIN27_AAL_DEBIAN_COPYRIGHT").read_text()
    assert "BSD 3-Clause" in (D.DATA_DIR / "STARDIST_LICENSE").read_text()
    prov = (D.DATA_DIR / "PROVENANCE.md").read_text()
    for cite in ("Holmes", "Tzourio-Mazoyer", "Caicedo", "Schmidt"):
        assert cite in prov


@pytest.mark.parametrize("key", [COLIN, DSB, COLIN3D])
@pytest.mark.parametrize("variant", ["full", "tiny"])
def test_labels_only_declared_values(key, variant):
    cs = D.load_cases(key, variant)
    assert cs.labels.dtype == np.uint8
    assert set(np.unique(cs.labels).tolist()) == set(cs.dataset.labels.values())
    assert cs.images.shape == cs.labels.shape
    assert len(set(cs.case_ids)) == len(cs)


def test_colin_full_facts():
    cs = D.load_cases(COLIN)
    assert cs.images.shape == (58, 181, 181)
    assert cs.images.dtype == np.uint8  # native dtype of ch2.nii.gz
    assert cs.spacing == (1.0, 1.0)
    y = cs.info["y_index"]
    assert y.tolist() == list(range(80, 138))
    assert cs.case_ids[0] == "colin_y080" and cs.case_ids[-1] == "colin_y137"
    fr = cs.label_fractions()
    # measured on the conversion: hippocampus 0.7934 %, amygdala 0.1946 % of all pixels
    assert fr["hippocampus"] == pytest.approx(0.007934, abs=2e-5)
    assert fr["amygdala"] == pytest.approx(0.001946, abs=2e-5)
    assert fr["hippocampus"] < 0.01 and fr["amygdala"] < 0.002
    # total AAL voxel counts: hippocampus 7469 + 7606, amygdala 1733 + 1965, all inside the slab
    assert int((cs.labels == 1).sum()) == 7469 + 7606
    assert int((cs.labels == 2).sum()) == 1733 + 1965
    # 4 empty margin slices on each side, foreground in between
    fg = (cs.labels > 0).any(axis=(1, 2))
    assert not fg[:4].any() and not fg[-4:].any() and fg[4] and fg[-5]


def test_colin_orientation_superior_up_left_first():
    cs = D.load_cases(COLIN)
    lab = cs.labels
    rows = np.nonzero(lab.any(axis=(0, 2)))[0]
    # structures sit in the lower half of a superior-up coronal slice
    assert rows.min() > 90
    # AAL index 37 (left hippocampus) is at x voxel index 51..80: the first columns are the patient's left
    cols = np.nonzero((lab == 1).any(axis=(0, 1)))[0]
    assert cols.min() == 51 and cols.max() == 132


def test_dsb_facts():
    cs = D.load_cases(DSB)
    assert cs.images.shape == (16, 128, 128)
    assert cs.images.dtype == np.uint16
    assert cs.label_fractions()["nucleus"] == pytest.approx(0.199226, abs=1e-5)
    # the 16 tiles reassemble the 512x512 source image
    full = np.block([[cs.images[r * 4 + c] for c in range(4)] for r in range(4)])
    assert full.shape == (512, 512)
    assert cs.case_ids[:5] == ("dsb_r0c0", "dsb_r0c1", "dsb_r0c2", "dsb_r0c3", "dsb_r1c0")
    tiny = D.load_cases(DSB, "tiny")
    assert tiny.images.shape == (8, 64, 64)
    assert np.array_equal(tiny.images[0], cs.images[0][32:96, 32:96])


def test_colin_tiny_is_a_real_cut_of_full():
    full = D.load_cases(COLIN)
    tiny = D.load_cases(COLIN, "tiny")
    assert tiny.images.shape == (10, 64, 64)
    idx = {c: i for i, c in enumerate(full.case_ids)}
    for i, c in enumerate(tiny.case_ids):
        j = idx[c]
        assert np.array_equal(tiny.images[i], full.images[j][86:150, 34:98])
        assert np.array_equal(tiny.labels[i], full.labels[j][86:150, 34:98])
        assert tiny.fold[i] == full.fold[j]
    assert np.bincount(tiny.fold).tolist() == [2] * 5
    assert int((tiny.labels > 0).any(axis=(1, 2)).sum()) == 8


def test_colin3d_facts():
    cs = D.load_cases(COLIN3D)
    assert cs.images.shape == (4, 32, 32, 32)
    assert cs.case_ids == ("colin3d_L_post", "colin3d_L_ant", "colin3d_R_post", "colin3d_R_ant")
    am = (cs.labels == 2).any(axis=(1, 2, 3))
    assert am.tolist() == [False, True, False, True]
    assert (cs.labels == 1).any(axis=(1, 2, 3)).all()
    # the crops are cut from the same brain as the coronal slices: compare one voxel line
    full = D.load_cases(COLIN)
    x0, y0, z0 = (int(v) for v in cs.info["corner_xyz"][0])
    k = full.case_ids.index(f"colin_y{y0:03d}")
    # 3D arrays are (z, y, x); the coronal slice rows are z from 180 down to 0, columns x
    for dz in (0, 10, 31):
        z = z0 + dz
        assert np.array_equal(cs.images[0][dz, 0, :], full.images[k][180 - z, x0:x0 + 32])
        assert np.array_equal(cs.labels[0][dz, 0, :], full.labels[k][180 - z, x0:x0 + 32])


# ---------------------------------------------------------------- folds


@pytest.mark.parametrize("key,variant,nfold", [
    (COLIN, "full", 5), (COLIN, "tiny", 5), (DSB, "full", 4), (DSB, "tiny", 4), (COLIN3D, "full", 4),
])
def test_folds_contiguous_disjoint_cover(key, variant, nfold):
    cs = D.load_cases(key, variant)
    splits = D.splits_for(key, variant)
    assert len(splits) == nfold
    order = list(cs.case_ids)
    vals = [s["val"] for s in splits]
    # disjoint and covering
    flat = [c for v in vals for c in v]
    assert sorted(flat) == sorted(order) and len(flat) == len(set(flat))
    for s in splits:
        assert set(s["train"]) | set(s["val"]) == set(order)
        assert not set(s["train"]) & set(s["val"])
    # contiguous blocks in case order, blocks in order
    concat = []
    for v in vals:
        pos = [order.index(c) for c in v]
        assert pos == list(range(pos[0], pos[0] + len(pos)))
        concat.extend(v)
    assert concat == order


def test_colin_folds_follow_anatomy():
    cs = D.load_cases(COLIN)
    y = cs.info["y_index"]
    assert np.all(np.diff(y) == 1)  # case order is the anatomical order
    assert np.bincount(cs.fold).tolist() == [12, 12, 12, 11, 11]
    assert [int(y[cs.fold == f].min()) for f in range(5)] == [80, 92, 104, 116, 127]


def test_dsb_folds_are_tile_rows():
    for s, r in zip(D.splits_for(DSB), range(4)):
        assert s["val"] == [f"dsb_r{r}c{c}" for c in range(4)]


# ---------------------------------------------------------------- nnU-Net raw writing


@pytest.mark.parametrize("key,variant", [(COLIN, "tiny"), (DSB, "tiny"), (COLIN3D, "full")])
def test_write_nnunet_raw_roundtrip(tmp_path, key, variant):
    raw = tmp_path / "nnUNet_raw"
    out = D.write_nnunet_raw(key, raw, variant)
    cs = D.load_cases(key, variant)
    assert out == raw / cs.dataset.name
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["numTraining"] == len(cs)
    assert dj["file_ending"] == ".nii.gz"
    assert dj["labels"] == cs.dataset.labels
    assert dj["channel_names"] == cs.dataset.channel_names
    assert "CT" not in dj["channel_names"].values()
    imgs = sorted(p.name for p in (out / "imagesTr").iterdir())
    labs = sorted(p.name for p in (out / "labelsTr").iterdir())
    assert imgs == sorted(f"{c}_0000.nii.gz" for c in cs.case_ids)
    assert labs == sorted(f"{c}.nii.gz" for c in cs.case_ids)
    for i, c in enumerate(cs.case_ids):
        im = sitk.ReadImage(str(out / "imagesTr" / f"{c}_0000.nii.gz"))
        lb = sitk.ReadImage(str(out / "labelsTr" / f"{c}.nii.gz"))
        a, b = sitk.GetArrayFromImage(im), sitk.GetArrayFromImage(lb)
        if cs.dataset.dim == 2:
            # 2D slices: singleton first numpy axis, spacing 999 on it (nnU-Net plans only "2d")
            assert a.shape == (1, *cs.images.shape[1:])
            assert im.GetSpacing() == (1.0, 1.0, 999.0)
            a, b = a[0], b[0]
        else:
            assert im.GetSpacing() == (1.0, 1.0, 1.0)
            assert np.allclose(im.GetOrigin(), cs.origins[i])
        assert a.dtype == cs.images.dtype and b.dtype == np.uint8
        assert np.array_equal(a, cs.images[i]) and np.array_equal(b, cs.labels[i])
        for attr in ("GetSpacing", "GetOrigin", "GetDirection"):  # image and label share the geometry
            assert getattr(im, attr)() == getattr(lb, attr)()


def test_3d_crop_keeps_world_geometry(tmp_path):
    """The written cube lies where it was in Colin27: its first voxel's world position."""
    out = D.write_nnunet_raw(COLIN3D, tmp_path)
    im = sitk.ReadImage(str(out / "imagesTr" / "colin3d_L_post_0000.nii.gz"))
    # corner voxel (50, 84, 48) of a RAS grid with origin (-90, -125, -71): RAS (-40, -41, -23) = LPS (40, 41, -23)
    assert np.allclose(im.GetOrigin(), (40.0, 41.0, -23.0))
    assert np.allclose(im.GetDirection(), (-1, 0, 0, 0, -1, 0, 0, 0, 1))


def test_full_colin_writes_58_cases(tmp_path):
    out = D.write_nnunet_raw(COLIN, tmp_path)
    assert len(list((out / "labelsTr").iterdir())) == 58
    lab = _read(out / "labelsTr" / "colin_y110.nii.gz")
    assert lab.shape == (1, 181, 181)


# ---------------------------------------------------------------- never overwrite


def test_raw_identical_is_noop_and_different_refused(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    mine = raw / "my_notes.txt"
    mine.write_text("user file")
    other = raw / "Dataset500_Other"
    other.mkdir()
    (other / "x.txt").write_text("x")
    out = D.write_nnunet_raw(COLIN, raw, "tiny")
    f = out / "imagesTr" / "colin_y100_0000.nii.gz"
    mtime = f.stat().st_mtime_ns
    # identical: no-op, files not rewritten
    assert D.write_nnunet_raw(COLIN, raw, "tiny") == out
    assert f.stat().st_mtime_ns == mtime
    # different content (the full variant): refused, nothing changed
    with pytest.raises(FileExistsError, match="overwrite=True") as ei:
        D.write_nnunet_raw(COLIN, raw, "full")
    assert str(out) in str(ei.value)
    assert len(list((out / "imagesTr").iterdir())) == 10
    # a modified file also makes it different
    (out / "labelsTr" / "colin_y100.nii.gz").unlink()
    with pytest.raises(FileExistsError):
        D.write_nnunet_raw(COLIN, raw, "tiny")
    # overwrite=True replaces only that folder
    D.write_nnunet_raw(COLIN, raw, "full", overwrite=True)
    assert len(list((out / "imagesTr").iterdir())) == 58
    assert mine.read_text() == "user file"
    assert (other / "x.txt").read_text() == "x"
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset500_Other", COLIN, "my_notes.txt"]


def test_raw_extra_user_file_counts_as_different(tmp_path):
    out = D.write_nnunet_raw(DSB, tmp_path, "tiny")
    (out / "imagesTr" / "extra_0000.nii.gz").write_bytes(b"")
    with pytest.raises(FileExistsError):
        D.write_nnunet_raw(DSB, tmp_path, "tiny")
    assert (out / "imagesTr" / "extra_0000.nii.gz").exists()


def test_raw_refuses_same_id_other_name(tmp_path):
    (tmp_path / "Dataset731_SomethingElse").mkdir()
    with pytest.raises(FileExistsError, match="731"):
        D.write_nnunet_raw(COLIN, tmp_path, "tiny")
    assert not (tmp_path / COLIN).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset731_SomethingElse"]


def test_splits_written_and_never_overwritten(tmp_path):
    pre = tmp_path / "pre"
    (pre / COLIN).mkdir(parents=True)
    plans = pre / COLIN / "nnUNetPlans.json"
    plans.write_text("{}")
    p = D.write_splits(COLIN, pre, "tiny")
    assert p == pre / COLIN / "splits_final.json"
    assert json.loads(p.read_text()) == D.splits_for(COLIN, "tiny")
    mtime = p.stat().st_mtime_ns
    assert D.write_splits(COLIN, pre, "tiny") == p
    assert p.stat().st_mtime_ns == mtime
    with pytest.raises(FileExistsError, match="splits_final.json"):
        D.write_splits(COLIN, pre, "full")
    assert json.loads(p.read_text()) == D.splits_for(COLIN, "tiny")
    D.write_splits(COLIN, pre, "full", overwrite=True)
    assert json.loads(p.read_text()) == D.splits_for(COLIN, "full")
    assert plans.read_text() == "{}"
    assert sorted(x.name for x in (pre / COLIN).iterdir()) == ["nnUNetPlans.json", "splits_final.json"]


def test_splits_structure_matches_nnunet():
    s = D.splits_for(COLIN)
    assert isinstance(s, list) and all(set(d) == {"train", "val"} for d in s)
    assert all(isinstance(c, str) and not c.endswith("_0000") for d in s for c in d["train"] + d["val"])
    assert s[0]["val"] == [f"colin_y{y:03d}" for y in range(80, 92)]


# ---------------------------------------------------------------- MSD layout


def test_msd_task_layout(tmp_path):
    task = D.write_msd_task(tmp_path)
    assert task == tmp_path / "Task34_Colin27HippoAmyg"
    assert task.name.count("_") == 1  # nnUNetv2_convert_MSD_dataset splits the name on "_"
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        assert (task / sub).is_dir()
    dj = json.loads((task / "dataset.json").read_text())
    assert dj["modality"] == {"0": "MRI"}
    assert dj["labels"] == {"0": "background", "1": "hippocampus", "2": "amygdala"}
    assert dj["tensorImageSize"] == "3D"
    assert dj["numTraining"] == len(dj["training"]) == 4
    assert dj["numTest"] == len(dj["test"]) == 0
    cs = D.load_cases(COLIN3D)
    for i, entry in enumerate(dj["training"]):
        assert set(entry) == {"image", "label"}
        assert entry["image"].startswith("./imagesTr/") and entry["label"].startswith("./labelsTr/")
        img = sitk.ReadImage(str(task / entry["image"]))
        assert img.GetDimension() == 3  # MSD single-modality images are 3D volumes
        assert np.array_equal(sitk.GetArrayFromImage(img), cs.images[i])
        assert np.array_equal(_read(task / entry["label"]), cs.labels[i])
    # a task-named folder is used as is; identical -> no-op; different -> refused
    named = D.write_msd_task(tmp_path / "Task55_Mine")
    assert named == tmp_path / "Task55_Mine"
    assert D.write_msd_task(task) == task
    (task / "imagesTs" / "extra.nii.gz").write_bytes(b"")
    with pytest.raises(FileExistsError):
        D.write_msd_task(task)


# ---------------------------------------------------------------- listing and import cost


def test_describe_datasets():
    rows = D.describe_datasets()
    assert len(rows) == 6
    by = {(r["name"], r["variant"]): r for r in rows}
    assert by[(COLIN, "full")]["case_shape"] == (181, 181)
    assert by[(COLIN, "full")]["num_cases"] == 58
    assert by[(DSB, "full")]["num_cases"] == 16
    assert by[(COLIN3D, "full")]["case_shape"] == (32, 32, 32)
    assert by[(COLIN, "full")]["fold_sizes"] == [12, 12, 12, 11, 11]
    text = D.format_datasets()
    assert "Dataset731_Colin27HippoAmyg [full] 2D: 58 cases of 181x181" in text
    assert "hippocampus 0.79%" in text


def test_import_is_cheap():
    code = ("import sys, nnunet_polydice.experiments.datasets; "
            "print('torch' in sys.modules, 'SimpleITK' in sys.modules, 'nnunetv2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "False", "False"]
