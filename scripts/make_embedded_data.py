#!/usr/bin/env python
"""Build the small real data sets shipped in ``nnunet_polydice/data/`` from the offline sources.

Sources (see ``nnunet_polydice/data/PROVENANCE.md``)::

    <shared>/colin27_aal/ch2.nii.gz        Colin27 T1 (181x217x181, 1 mm, RAS voxel axes)
    <shared>/colin27_aal/aal.nii.gz        AAL atlas on the same grid (voxel value = AAL index 1..116)
    <shared>/dsb2018_nuclei/img2d.tif      DSB2018 fluorescence image, 512x512 uint16
    <shared>/dsb2018_nuclei/mask2d.tif     its instance labels (0 = background)

Outputs::

    colin27_aal_coronal.npz    coronal slices through hippocampus / amygdala, full 181x181 slices
    dsb2018_nuclei_tiles.npz   the 512x512 image cut into 16 tiles of 128x128
    colin27_aal_3d_crops.npz   four 32^3 cubes around the left/right hippocampus and amygdala
    COLIN27_AAL_DEBIAN_COPYRIGHT  copy of the Debian mricron-data copyright file

Run from the repository root::

    python scripts/make_embedded_data.py                       # reads ../shared/data
    python scripts/make_embedded_data.py --shared /path/to/shared/data --check

The conversion is deterministic; ``--check`` rebuilds in memory and compares with the shipped files
instead of writing them.
"""
from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "nnunet_polydice" / "data"

# AAL indices (voxel values of aal.nii.gz; the 4-digit numbers in aal.nii.txt are the AAL codes,
# which do NOT occur in the image -- checked below).
AAL_HIPPOCAMPUS = (37, 38)  # Hippocampus_L, Hippocampus_R
AAL_AMYGDALA = (41, 42)  # Amygdala_L, Amygdala_R
MARGIN = 4  # empty coronal slices kept on each side of the structures
N_FOLDS_COLIN = 5

# tiny 2D variant: 64x64 crop around the LEFT medial temporal lobe, in slice coordinates
# (rows = superior->inferior, i.e. row = 180 - z; cols = x voxel index)
TINY_BOX = (86, 150, 34, 98)  # row0, row1, col0, col1
TINY_POSITIONS = (0.3, 0.7)  # two slices per fold block, at these relative positions in the block

# 3D crops: (name, x0, y0, z0) voxel index of the corner in the source grid, size 32^3
CROP = 32
CROPS_3D = (
    ("L_post", 50, 84, 48),  # left hippocampus body/tail
    ("L_ant", 50, 116, 40),  # left hippocampal head + amygdala
    ("R_post", 100, 84, 48),  # right hippocampus body/tail
    ("R_ant", 100, 116, 40),  # right hippocampal head + amygdala
)

DSB_TILE = 128
DSB_TINY = 64  # tiny variant: centre 64x64 of the tiles in columns 0 and 1 of every row


def _labels_from_aal(aal: np.ndarray) -> np.ndarray:
    lab = np.zeros(aal.shape, np.uint8)
    lab[np.isin(aal, AAL_HIPPOCAMPUS)] = 1
    lab[np.isin(aal, AAL_AMYGDALA)] = 2
    return lab


def build_colin(shared: Path) -> tuple[dict, dict, str]:
    import SimpleITK as sitk

    src = shared / "colin27_aal"
    t1 = sitk.ReadImage(str(src / "ch2.nii.gz"))
    aal = sitk.ReadImage(str(src / "aal.nii.gz"))
    for attr in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        a, b = getattr(t1, attr)(), getattr(aal, attr)()
        if not np.allclose(a, b):
            raise SystemExit(f"ch2 and aal grids differ in {attr}: {a} vs {b}")
    if not np.allclose(t1.GetSpacing(), 1.0):
        raise SystemExit(f"expected 1 mm voxels, got {t1.GetSpacing()}")
    # SimpleITK works in LPS; a NIfTI with RAS voxel axes reads as direction diag(-1, -1, 1).
    if not np.allclose(t1.GetDirection(), (-1, 0, 0, 0, -1, 0, 0, 0, 1)):
        raise SystemExit(f"unexpected direction {t1.GetDirection()}: voxel axes are not RAS")

    T = sitk.GetArrayFromImage(t1)  # (z, y, x); x = left->right, y = posterior->anterior, z = inf->sup
    A = sitk.GetArrayFromImage(aal)
    present = set(np.unique(A).tolist())
    if not set(AAL_HIPPOCAMPUS + AAL_AMYGDALA) <= present or {4101, 4102, 4201, 4202} & present:
        raise SystemExit("aal.nii.gz does not hold AAL indices 37/38/41/42 as expected")
    # Hippocampus_L (37) must lie on the patient's left: LPS x > 0
    zz, yy, xx = np.argwhere(A == 37).mean(0)
    if aal.TransformContinuousIndexToPhysicalPoint((float(xx), float(yy), float(zz)))[0] <= 0:
        raise SystemExit("AAL index 37 (Hippocampus_L) is not on the left: orientation assumption broken")
    L = _labels_from_aal(A)
    log = []

    # ---- coronal slices: fixed y (the anterior-posterior voxel axis) -------------------------------
    ys = np.flatnonzero((L > 0).any(axis=(0, 2)))
    y0, y1 = int(ys.min()) - MARGIN, int(ys.max()) + MARGIN
    yidx = np.arange(y0, y1 + 1)
    # slice image: rows = z from superior to inferior (flip), cols = x (patient left -> right)
    img = np.stack([T[::-1, y, :] for y in yidx]).astype(T.dtype)
    lab = np.stack([L[::-1, y, :] for y in yidx])
    n = len(yidx)
    fold = np.zeros(n, np.int8)
    for f, block in enumerate(np.array_split(np.arange(n), N_FOLDS_COLIN)):
        fold[block] = f
    tiny = []
    for f in range(N_FOLDS_COLIN):
        block = np.flatnonzero(fold == f)
        for p in TINY_POSITIONS:
            tiny.append(int(block[int(round(p * (len(block) - 1)))]))
    y_mm_ras = np.array([aal.TransformIndexToPhysicalPoint((0, int(y), 0))[1] * -1 for y in yidx])
    colin = dict(
        image=img,
        label=lab,
        y_index=yidx.astype(np.int16),
        y_mm=y_mm_ras.astype(np.float32),  # RAS (MNI-like) y coordinate of the slice, mm
        fold=fold,
        spacing=np.array([1.0, 1.0]),  # (row, col) in mm
        tiny_slices=np.array(tiny, np.int16),
        tiny_box=np.array(TINY_BOX, np.int16),
    )
    fr1, fr2 = float((lab == 1).mean()), float((lab == 2).mean())
    log.append(
        f"colin27 coronal: {n} slices y={y0}..{y1} (RAS y {y_mm_ras[0]:.0f}..{y_mm_ras[-1]:.0f} mm), "
        f"slice {img.shape[1:]}, dtype {img.dtype}; foreground hippocampus {fr1:.4%}, amygdala {fr2:.4%}"
    )
    log.append(f"  fold sizes {np.bincount(fold).tolist()}; slices with hippocampus "
               f"{int((lab == 1).any((1, 2)).sum())}, with amygdala {int((lab == 2).any((1, 2)).sum())}")
    r0, r1, c0, c1 = TINY_BOX
    tl = lab[tiny][:, r0:r1, c0:c1]
    log.append(f"  tiny: slices {[int(yidx[i]) for i in tiny]}, box rows {r0}:{r1} cols {c0}:{c1}; "
               f"with foreground {int((tl > 0).any((1, 2)).sum())}/{len(tiny)}; "
               f"hippocampus {(tl == 1).mean():.3%}, amygdala {(tl == 2).mean():.3%}")

    # ---- 3D crops ----------------------------------------------------------------------------------
    imgs, labs, origins, names, corners = [], [], [], [], []
    for name, x0, y0_, z0 in CROPS_3D:
        sub = t1[x0:x0 + CROP, y0_:y0_ + CROP, z0:z0 + CROP]  # sitk slicing keeps the geometry
        imgs.append(sitk.GetArrayFromImage(sub))
        labs.append(L[z0:z0 + CROP, y0_:y0_ + CROP, x0:x0 + CROP])
        origins.append(sub.GetOrigin())
        names.append(name)
        corners.append((x0, y0_, z0))
    crops = dict(
        image=np.stack(imgs),  # (N, z, y, x), SimpleITK array order
        label=np.stack(labs),
        name=np.array(names),
        corner_xyz=np.array(corners, np.int16),  # voxel index of the crop corner in ch2.nii.gz
        origin=np.array(origins),  # SimpleITK (LPS) origin of each crop
        direction=np.array(t1.GetDirection()),
        spacing=np.array(t1.GetSpacing()),  # SimpleITK (x, y, z) order
        fold=np.arange(len(names), dtype=np.int8),  # leave-one-cube-out
    )
    for i, nm in enumerate(names):
        log.append(f"3d crop {nm}: corner xyz {corners[i]}, hippocampus {(labs[i] == 1).mean():.2%}, "
                   f"amygdala {(labs[i] == 2).mean():.2%}")
    return colin, crops, "\n".join(log)


def build_dsb(shared: Path) -> tuple[dict, str]:
    import tifffile

    src = shared / "dsb2018_nuclei"
    img = tifffile.imread(src / "img2d.tif")
    inst = tifffile.imread(src / "mask2d.tif")
    if img.shape != (512, 512) or inst.shape != (512, 512):
        raise SystemExit(f"unexpected DSB shapes {img.shape} {inst.shape}")
    nt = 512 // DSB_TILE
    tiles_i, tiles_m, rows, cols = [], [], [], []
    for r in range(nt):
        for c in range(nt):
            sl = np.s_[r * DSB_TILE:(r + 1) * DSB_TILE, c * DSB_TILE:(c + 1) * DSB_TILE]
            tiles_i.append(img[sl])
            tiles_m.append(inst[sl])
            rows.append(r)
            cols.append(c)
    inst_t = np.stack(tiles_m)
    dsb = dict(
        image=np.stack(tiles_i),
        label=(inst_t > 0).astype(np.uint8),
        instances=inst_t.astype(np.uint16),
        tile_row=np.array(rows, np.int8),
        tile_col=np.array(cols, np.int8),
        fold=np.array(rows, np.int8),  # one fold per row of tiles
        spacing=np.array([1.0, 1.0]),  # pixel size unknown; unit spacing
        tiny_tiles=np.array([i for i in range(len(rows)) if cols[i] in (0, 1)], np.int16),
        tiny_box=np.array([(DSB_TILE - DSB_TINY) // 2, (DSB_TILE + DSB_TINY) // 2] * 2, np.int16),
    )
    n_inst = len(np.unique(inst)) - 1
    log = (f"dsb2018: {len(rows)} tiles {DSB_TILE}x{DSB_TILE}, {n_inst} nuclei, image dtype {img.dtype} "
           f"range {img.min()}..{img.max()}; foreground {dsb['label'].mean():.4%}; "
           f"per fold {[round(float(dsb['label'][dsb['fold'] == f].mean()), 4) for f in range(nt)]}")
    return dsb, log


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _same(path: Path, arrays: dict) -> bool:
    if not path.is_file():
        return False
    with np.load(path) as old:
        if set(old.files) != set(arrays):
            return False
        return all(old[k].dtype == np.asarray(v).dtype and np.array_equal(old[k], v) for k, v in arrays.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                    help="folder holding colin27_aal/ and dsb2018_nuclei/")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="compare with the shipped files, write nothing")
    args = ap.parse_args(argv)

    colin, crops, log1 = build_colin(args.shared)
    dsb, log2 = build_dsb(args.shared)
    print(log1)
    print(log2)
    outputs = {
        "colin27_aal_coronal.npz": colin,
        "colin27_aal_3d_crops.npz": crops,
        "dsb2018_nuclei_tiles.npz": dsb,
    }
    bad = 0
    for name, arrays in outputs.items():
        path = args.out / name
        if args.check:
            ok = _same(path, arrays)
            bad += not ok
            print(f"{name}: {'identical' if ok else 'DIFFERS'}")
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_npz_bytes(arrays))
            print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    cr = args.shared / "colin27_aal" / "DEBIAN_COPYRIGHT"
    dst = args.out / "COLIN27_AAL_DEBIAN_COPYRIGHT"
    if args.check:
        ok = dst.is_file() and dst.read_bytes() == cr.read_bytes()
        bad += not ok
        print(f"{dst.name}: {'identical' if ok else 'DIFFERS'}")
    else:
        shutil.copyfile(cr, dst)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
