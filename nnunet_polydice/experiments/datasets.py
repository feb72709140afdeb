"""Small real data sets shipped with the package, and writers for the nnU-Net v2 / MSD layouts.

Three sets are embedded (converted from the offline sources by ``scripts/make_embedded_data.py``;
provenance, cuts and licences in ``nnunet_polydice/data/PROVENANCE.md``):

``Dataset731_Colin27HippoAmyg`` (2D)
    Coronal slices of the Colin27 T1 brain with the AAL hippocampus (label 1) and amygdala (label 2),
    full 181x181 slices at 1 mm: a very imbalanced task (about 0.79% and 0.19% of the pixels).
    One subject, so the folds are contiguous blocks of slices (posterior to anterior), never random.
``Dataset732_DSB2018Nuclei`` (2D)
    One 512x512 fluorescence image of the 2018 Data Science Bowl cut into 16 tiles of 128x128,
    nuclei as label 1 (about 20% foreground: the balanced control). Folds: one row of tiles each.
``Dataset733_Colin27HippoAmyg3D`` (3D)
    Four 32^3 cubes of the Colin27 brain around the left/right hippocampus and amygdala; folds:
    leave one cube out (4 folds).

Each set has a ``"full"`` and a ``"tiny"`` variant (``"tiny"`` is a small real cut for fast tests;
for the 3D set both are the same four cubes).

2D cases are written as NIfTI volumes of numpy shape ``(1, H, W)`` with spacing 999 on the singleton
axis: nnU-Net then sees a 2D data set and plans only the ``2d`` configuration.

Nothing here imports torch or nnunetv2; SimpleITK is imported when a file is read or written.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

__all__ = [
    "DATA_DIR",
    "EmbeddedDataset",
    "CaseSet",
    "REGISTRY",
    "VARIANTS",
    "dataset_keys",
    "get_dataset",
    "load_cases",
    "dataset_json",
    "write_nnunet_raw",
    "splits_for",
    "write_splits",
    "write_msd_task",
    "describe_datasets",
    "format_datasets",
]

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
VARIANTS = ("full", "tiny")
_SPACING_2D_SLICE = 999.0  # spacing of the singleton axis of 2D cases (nnU-Net's own convention)
_RELEASE = "nnunet-polydice embedded data v1"

_COLIN_REFERENCE = (
    "Colin27 T1: Holmes et al., J Comput Assist Tomogr 22(2):324-333, 1998. AAL atlas: Tzourio-Mazoyer "
    "et al., NeuroImage 15(1):273-289, 2002. Files as shipped in Debian mricron-data."
)
_COLIN_LICENCE = "BSD-3-clause (Debian mricron-data copyright file, shipped as COLIN27_AAL_DEBIAN_COPYRIGHT)"
_DSB_REFERENCE = (
    "2018 Data Science Bowl: Caicedo et al., Nature Methods 16:1247-1253, 2019; image as shipped in the "
    "stardist package (Schmidt et al., MICCAI 2018)."
)
_DSB_LICENCE = "BSD-3-clause (stardist distribution); DSB2018 stage1 training data"


@dataclass(frozen=True)
class EmbeddedDataset:
    """Static description of one embedded data set."""

    name: str  # nnU-Net dataset name, e.g. "Dataset731_Colin27HippoAmyg"
    dataset_id: int
    dim: int  # 2 or 3
    npz: str  # file in DATA_DIR
    channel_names: dict
    labels: dict  # nnU-Net v2 style: {"background": 0, ...}
    description: str
    reference: str
    licence: str
    case_prefix: str
    aliases: tuple = ()
    fold_description: str = ""
    tiny_is_full: bool = False  # the "tiny" variant is the same cases as "full"

    @property
    def path(self) -> Path:
        return DATA_DIR / self.npz


REGISTRY: dict[str, EmbeddedDataset] = {
    d.name: d
    for d in (
        EmbeddedDataset(
            name="Dataset731_Colin27HippoAmyg",
            dataset_id=731,
            dim=2,
            npz="colin27_aal_coronal.npz",
            channel_names={"0": "T1"},
            labels={"background": 0, "hippocampus": 1, "amygdala": 2},
            description=(
                "Colin27 T1 MRI, coronal 2D slices (181x181, 1 mm) through hippocampus and amygdala (AAL atlas); "
                "very imbalanced small structures"
            ),
            reference=_COLIN_REFERENCE,
            licence=_COLIN_LICENCE,
            case_prefix="colin",
            aliases=("colin27", "colin", "colin27_2d", "731"),
            fold_description="5 contiguous blocks of coronal slices, posterior to anterior",
        ),
        EmbeddedDataset(
            name="Dataset732_DSB2018Nuclei",
            dataset_id=732,
            dim=2,
            npz="dsb2018_nuclei_tiles.npz",
            channel_names={"0": "fluorescence"},
            labels={"background": 0, "nucleus": 1},
            description=(
                "2018 Data Science Bowl fluorescence nuclei, one 512x512 image in 16 tiles of 128x128; "
                "about 20% foreground (balanced control)"
            ),
            reference=_DSB_REFERENCE,
            licence=_DSB_LICENCE,
            case_prefix="dsb",
            aliases=("dsb2018", "dsb", "nuclei", "732"),
            fold_description="4 folds, one row of tiles each (top to bottom)",
        ),
        EmbeddedDataset(
            name="Dataset733_Colin27HippoAmyg3D",
            dataset_id=733,
            dim=3,
            npz="colin27_aal_3d_crops.npz",
            channel_names={"0": "T1"},
            labels={"background": 0, "hippocampus": 1, "amygdala": 2},
            description=(
                "Colin27 T1 MRI, four 32^3 cubes (1 mm) around left/right hippocampus and amygdala (AAL atlas); "
                "tiny 3D set for tests"
            ),
            reference=_COLIN_REFERENCE,
            licence=_COLIN_LICENCE,
            case_prefix="colin3d",
            aliases=("colin27_3d", "colin3d", "733"),
            fold_description="4 folds, leave one cube out",
            tiny_is_full=True,
        ),
    )
}


def dataset_keys() -> list[str]:
    """Names of the embedded data sets (nnU-Net dataset names)."""
    return list(REGISTRY)


def get_dataset(key) -> EmbeddedDataset:
    """Look a data set up by nnU-Net name, id (int or str) or alias ("colin27", "dsb2018", "colin27_3d")."""
    if isinstance(key, EmbeddedDataset):
        return key
    k = str(key).strip()
    if k in REGISTRY:
        return REGISTRY[k]
    low = k.lower()
    for d in REGISTRY.values():
        if low in (d.name.lower(), str(d.dataset_id), f"dataset{d.dataset_id:03d}", *d.aliases):
            return d
    raise KeyError(f"unknown embedded data set {key!r}; known: {', '.join(REGISTRY)}")


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return variant


@cache
def _load_npz(path: str) -> dict:
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    for v in out.values():
        v.setflags(write=False)
    return out


@dataclass
class CaseSet:
    """The cases of one variant of an embedded data set, as arrays.

    ``images`` / ``labels`` are in numpy (SimpleITK) axis order: ``(N, H, W)`` for 2D (rows, cols),
    ``(N, Z, Y, X)`` for 3D. ``spacing`` is in the same (numpy) axis order, in mm (unit spacing for
    DSB2018, whose pixel size is not known). ``fold`` holds each case's fold index.
    """

    dataset: EmbeddedDataset
    variant: str
    case_ids: tuple
    images: np.ndarray
    labels: np.ndarray
    spacing: tuple
    fold: np.ndarray
    origins: np.ndarray | None = None  # (N, 3) SimpleITK origins (3D only)
    direction: tuple | None = None  # SimpleITK direction (3D only)
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.case_ids)

    @property
    def num_folds(self) -> int:
        return int(self.fold.max()) + 1

    @property
    def folds(self) -> list[list[str]]:
        """Validation case ids of each fold, in case order."""
        return [[c for c, f in zip(self.case_ids, self.fold) if f == k] for k in range(self.num_folds)]

    def label_fractions(self) -> dict[str, float]:
        """Fraction of all pixels / voxels carrying each label (background included)."""
        n = self.labels.size
        return {name: float(np.count_nonzero(self.labels == v)) / n for name, v in self.dataset.labels.items()}

    def sitk_images(self, i: int):
        """(image, label) of case ``i`` as SimpleITK images with the geometry written to disk."""
        import SimpleITK as sitk

        img, lab = self.images[i], self.labels[i]
        if self.dataset.dim == 2:
            img, lab = img[None], lab[None]
            spacing = (float(self.spacing[1]), float(self.spacing[0]), _SPACING_2D_SLICE)
            origin, direction = (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)
        else:
            spacing = tuple(float(s) for s in self.spacing[::-1])
            origin = tuple(float(o) for o in self.origins[i])
            direction = tuple(float(d) for d in self.direction)
        out = []
        for arr in (img, lab):
            im = sitk.GetImageFromArray(np.ascontiguousarray(arr))
            im.SetSpacing(spacing)
            im.SetOrigin(origin)
            im.SetDirection(direction)
            out.append(im)
        return tuple(out)


def load_cases(key, variant: str = "full") -> CaseSet:
    """Load the cases of an embedded data set (``variant`` ``"full"`` or ``"tiny"``)."""
    ds = get_dataset(key)
    _check_variant(variant)
    z = _load_npz(str(ds.path))
    if ds.name == "Dataset731_Colin27HippoAmyg":
        ids = [f"colin_y{int(y):03d}" for y in z["y_index"]]
        sel = np.arange(len(ids))
        img, lab = z["image"], z["label"]
        if variant == "tiny":
            sel = z["tiny_slices"].astype(int)
            r0, r1, c0, c1 = (int(v) for v in z["tiny_box"])
            img, lab = img[sel][:, r0:r1, c0:c1], lab[sel][:, r0:r1, c0:c1]
            ids = [ids[i] for i in sel]
        info = {"y_index": z["y_index"][sel], "y_mm_ras": z["y_mm"][sel]}
        return CaseSet(ds, variant, tuple(ids), img, lab, tuple(float(s) for s in z["spacing"]),
                       z["fold"][sel].astype(int), info=info)
    if ds.name == "Dataset732_DSB2018Nuclei":
        ids = [f"dsb_r{int(r)}c{int(c)}" for r, c in zip(z["tile_row"], z["tile_col"])]
        sel = np.arange(len(ids))
        img, lab = z["image"], z["label"]
        if variant == "tiny":
            sel = z["tiny_tiles"].astype(int)
            r0, r1, c0, c1 = (int(v) for v in z["tiny_box"])
            img, lab = img[sel][:, r0:r1, c0:c1], lab[sel][:, r0:r1, c0:c1]
            ids = [ids[i] for i in sel]
        info = {"tile_row": z["tile_row"][sel], "tile_col": z["tile_col"][sel]}
        return CaseSet(ds, variant, tuple(ids), img, lab, tuple(float(s) for s in z["spacing"]),
                       z["fold"][sel].astype(int), info=info)
    if ds.name == "Dataset733_Colin27HippoAmyg3D":
        ids = [f"colin3d_{n}" for n in z["name"]]
        return CaseSet(ds, variant, tuple(ids), z["image"], z["label"],
                       tuple(float(s) for s in z["spacing"][::-1]), z["fold"].astype(int),
                       origins=z["origin"], direction=tuple(z["direction"]),
                       info={"corner_xyz": z["corner_xyz"]})
    raise KeyError(ds.name)  # pragma: no cover


def dataset_json(key, variant: str = "full") -> dict:
    """The nnU-Net v2 ``dataset.json`` written for this data set."""
    ds = get_dataset(key)
    cs = load_cases(ds, variant)
    return {
        "name": ds.name.split("_", 1)[1] + ("" if variant == "full" or ds.tiny_is_full else f" ({variant})"),
        "description": ds.description,
        "reference": ds.reference,
        "licence": ds.licence,
        "release": _RELEASE,
        "channel_names": dict(ds.channel_names),
        "labels": dict(ds.labels),
        "numTraining": len(cs),
        "file_ending": ".nii.gz",
    }


# --------------------------------------------------------------------------------------------------
# writing with the never-overwrite rule
# --------------------------------------------------------------------------------------------------


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=4, sort_keys=False) + "\n").encode()


def _nifti_matches(path: Path, expected) -> bool:
    import SimpleITK as sitk

    try:
        im = sitk.ReadImage(str(path))
    except Exception:  # unreadable: not identical
        return False
    a, b = sitk.GetArrayViewFromImage(im), sitk.GetArrayViewFromImage(expected)
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and np.array_equal(a, b)
        and np.allclose(im.GetSpacing(), expected.GetSpacing(), atol=1e-5)
        and np.allclose(im.GetOrigin(), expected.GetOrigin(), atol=1e-4)
        and np.allclose(im.GetDirection(), expected.GetDirection(), atol=1e-6)
    )


def _json_matches(path: Path, expected) -> bool:
    try:
        return json.loads(path.read_text()) == json.loads(json.dumps(expected))
    except (OSError, ValueError):
        return False


def _folder_matches(folder: Path, files: dict) -> bool:
    """True when ``folder`` holds exactly ``files`` (relative path -> json object or SimpleITK image)."""
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}
    if present != set(files):
        return False
    for rel, content in files.items():
        p = folder / rel
        ok = _json_matches(p, content) if rel.endswith(".json") else _nifti_matches(p, content)
        if not ok:
            return False
    return True


def _write_files(folder: Path, files: dict, dirs: Iterable[str] = ()) -> None:
    import SimpleITK as sitk

    for d in dirs:
        (folder / d).mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".json"):
            p.write_bytes(_json_bytes(content))
        else:
            sitk.WriteImage(content, str(p), True)


def _install_folder(target: Path, files: dict, overwrite: bool, what: str, dirs: Iterable[str] = ()) -> Path:
    """Write ``files`` into ``target`` (a folder) unless an identical one is there already.

    The content is built in a hidden sibling folder and renamed into place, so an interrupted run leaves
    no half-written data set behind under the final name.
    """
    target = Path(target)
    if target.exists() or target.is_symlink():
        if target.is_dir() and _folder_matches(target, files):
            return target
        if not overwrite:
            raise FileExistsError(
                f"{target} already exists and differs from the {what} that would be written; "
                f"nothing was changed. Delete or move that folder, or pass overwrite=True to replace it."
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    stage = target.parent / f".{target.name}.partial-{tag}"
    try:
        stage.mkdir()
        _write_files(stage, files, dirs)
        if target.exists() or target.is_symlink():
            old = target.parent / f".{target.name}.old-{tag}"
            os.replace(target, old)
            os.replace(stage, target)
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
        else:
            os.replace(stage, target)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return target


def _nnunet_raw_files(cs: CaseSet) -> dict:
    files = {"dataset.json": dataset_json(cs.dataset, cs.variant)}
    for i, case in enumerate(cs.case_ids):
        img, lab = cs.sitk_images(i)
        files[f"imagesTr/{case}_0000.nii.gz"] = img
        files[f"labelsTr/{case}.nii.gz"] = lab
    return files


def _check_id_free(parent: Path, ds: EmbeddedDataset) -> None:
    if not parent.is_dir():
        return
    clash = sorted(
        p.name for p in parent.iterdir()
        if p.name.startswith(f"Dataset{ds.dataset_id:03d}_") and p.name != ds.name
    )
    if clash:
        raise FileExistsError(
            f"{parent} already holds {', '.join(clash)} with dataset id {ds.dataset_id}; nnU-Net cannot tell "
            f"two data sets with the same id apart, so {ds.name} was not written. Move that folder elsewhere "
            f"or use another nnUNet_raw folder."
        )


def write_nnunet_raw(key, nnunet_raw_dir, variant: str = "full", overwrite: bool = False) -> Path:
    """Write an embedded data set in the nnU-Net v2 raw layout under ``nnunet_raw_dir``.

    Creates ``nnunet_raw_dir/DatasetXXX_Name/`` with ``imagesTr/<case>_0000.nii.gz``,
    ``labelsTr/<case>.nii.gz`` and ``dataset.json``, and returns that folder. If the folder exists with
    identical content this is a no-op; if it differs, :class:`FileExistsError` is raised unless
    ``overwrite=True`` (which replaces that one folder). Nothing else in ``nnunet_raw_dir`` is touched.
    Both variants use the same dataset name and id, so only one of them can live in a given raw folder.
    """
    ds = get_dataset(key)
    cs = load_cases(ds, _check_variant(variant))
    parent = Path(nnunet_raw_dir)
    _check_id_free(parent, ds)
    return _install_folder(parent / ds.name, _nnunet_raw_files(cs), overwrite,
                           f"{variant} variant of {ds.name}", dirs=("imagesTr", "labelsTr"))


def splits_for(key, variant: str = "full") -> list[dict]:
    """nnU-Net ``splits_final.json`` content: ``[{"train": [...], "val": [...]}, ...]``, one per fold.

    Folds are contiguous blocks in anatomical / spatial order (see ``EmbeddedDataset.fold_description``);
    case ids are listed in that order.
    """
    cs = load_cases(key, _check_variant(variant))
    return [
        {"train": [c for c, f in zip(cs.case_ids, cs.fold) if f != k],
         "val": [c for c, f in zip(cs.case_ids, cs.fold) if f == k]}
        for k in range(cs.num_folds)
    ]


def write_splits(key, nnunet_preprocessed_dir, variant: str = "full", overwrite: bool = False) -> Path:
    """Write ``nnunet_preprocessed_dir/DatasetXXX_Name/splits_final.json`` and return its path.

    Identical existing file: no-op. Different existing file: :class:`FileExistsError` unless
    ``overwrite=True``. Other files in that folder (plans, preprocessed data) are never touched.
    """
    ds = get_dataset(key)
    splits = splits_for(ds, variant)
    folder = Path(nnunet_preprocessed_dir) / ds.name
    path = folder / "splits_final.json"
    if path.exists():
        if _json_matches(path, splits):
            return path
        if not overwrite:
            raise FileExistsError(
                f"{path} already exists and differs from the contiguous-block splits of the {variant} variant "
                f"of {ds.name}; nothing was changed. Delete it, or pass overwrite=True to replace it."
            )
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".splits_final.json.partial-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_bytes(_json_bytes(splits))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# --------------------------------------------------------------------------------------------------
# Medical Segmentation Decathlon layout
# --------------------------------------------------------------------------------------------------

MSD_TASK_NAME = "Task34_Colin27HippoAmyg"
_MSD_NAME_RE = re.compile(r"^Task\d+_[A-Za-z0-9]+$")


def msd_dataset_json(variant: str = "tiny") -> dict:
    """The MSD-style ``dataset.json`` written by :func:`write_msd_task`."""
    cs = load_cases("Dataset733_Colin27HippoAmyg3D", _check_variant(variant))
    ds = cs.dataset
    return {
        "name": "Colin27HippoAmyg",
        "description": ds.description,
        "reference": ds.reference,
        "licence": ds.licence,
        "release": _RELEASE,
        "tensorImageSize": "3D",
        "modality": {"0": "MRI"},
        "labels": {str(v): k for k, v in ds.labels.items()},
        "numTraining": len(cs),
        "numTest": 0,
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"}
                     for c in cs.case_ids],
        "test": [],
    }


def write_msd_task(task_dir, variant: str = "tiny", overwrite: bool = False) -> Path:
    """Write the 3D Colin27 cubes as a Medical Segmentation Decathlon task and return the task folder.

    If the last component of ``task_dir`` looks like an MSD task name (``TaskNN_Name``, one underscore,
    as ``nnUNetv2_convert_MSD_dataset`` requires) it is the task folder itself; otherwise the task is
    written to ``task_dir/Task34_Colin27HippoAmyg``. Layout: ``imagesTr/<case>.nii.gz`` (3D, one
    modality, so no channel suffix), ``labelsTr/<case>.nii.gz``, an empty ``imagesTs/`` and an MSD
    ``dataset.json`` (``modality``, ``labels`` keyed by value, ``training``, ``test``). Convert it with
    ``nnUNetv2_convert_MSD_dataset -i <task folder> [-overwrite_id N]`` (the id defaults to 34).
    Same never-overwrite rule as :func:`write_nnunet_raw`.
    """
    task_dir = Path(task_dir)
    if not _MSD_NAME_RE.match(task_dir.name):
        task_dir = task_dir / MSD_TASK_NAME
    cs = load_cases("Dataset733_Colin27HippoAmyg3D", _check_variant(variant))
    files = {"dataset.json": msd_dataset_json(variant)}
    for i, case in enumerate(cs.case_ids):
        img, lab = cs.sitk_images(i)
        files[f"imagesTr/{case}.nii.gz"] = img
        files[f"labelsTr/{case}.nii.gz"] = lab
    return _install_folder(task_dir, files, overwrite, f"MSD task ({variant})",
                           dirs=("imagesTr", "labelsTr", "imagesTs"))


# --------------------------------------------------------------------------------------------------
# listing
# --------------------------------------------------------------------------------------------------


def describe_datasets(keys: Sequence | None = None) -> list[dict]:
    """One dict per embedded data set and variant: name, id, dim, description, number of cases, case
    shape (numpy order), spacing, label fractions (of all pixels / voxels), folds and licence."""
    out = []
    for key in keys if keys is not None else dataset_keys():
        ds = get_dataset(key)
        for variant in VARIANTS:
            cs = load_cases(ds, variant)
            out.append({
                "name": ds.name,
                "dataset_id": ds.dataset_id,
                "variant": variant,
                "dim": ds.dim,
                "description": ds.description,
                "num_cases": len(cs),
                "case_shape": tuple(int(s) for s in cs.images.shape[1:]),
                "spacing": cs.spacing,
                "image_dtype": str(cs.images.dtype),
                "channel_names": dict(ds.channel_names),
                "labels": dict(ds.labels),
                "label_fractions": cs.label_fractions(),
                "num_folds": cs.num_folds,
                "fold_sizes": [len(f) for f in cs.folds],
                "folds": ds.fold_description,
                "licence": ds.licence,
                "reference": ds.reference,
            })
    return out


def format_datasets(keys: Sequence | None = None) -> str:
    """Human-readable table of :func:`describe_datasets` (for a command line ``datasets`` command)."""
    lines = []
    for d in describe_datasets(keys):
        fr = ", ".join(f"{k} {v:.2%}" for k, v in d["label_fractions"].items() if k != "background")
        shape = "x".join(str(s) for s in d["case_shape"])
        lines.append(
            f"{d['name']} [{d['variant']}] {d['dim']}D: {d['num_cases']} cases of {shape}, "
            f"{d['num_folds']} folds {d['fold_sizes']}; foreground {fr}"
        )
        if d["variant"] == "full":
            lines.append(f"    {d['description']}")
            lines.append(f"    folds: {d['folds']}; licence: {d['licence']}")
    return "\n".join(lines)
