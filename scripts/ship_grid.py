"""Copy the finished runs of a tabular grid's work folder into the shipped grid (what ``tune --replay`` and
``compare`` read, nothing more): per trainer folder nnU-Net's ``plans.json``, ``dataset.json`` and
``dataset_fingerprint.json``; per finished fold its ``training_log_*.txt``, ``polydice_curve.json`` and
``validation/summary.json``. No checkpoints, no predictions. Runs already shipped are left as they are.

    python scripts/ship_grid.py WORK [DEST]

DEST defaults to ``nnunet_polydice/data/grids/colin27_2d_cpu_12x40`` (an ``nnUNet_results`` folder).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = ROOT / "nnunet_polydice" / "data" / "grids" / "colin27_2d_cpu_12x40"
TRAINER_FILES = ("plans.json", "dataset.json", "dataset_fingerprint.json")


def ship(work: Path, dest: Path) -> list[str]:
    shipped = []
    for fold in sorted((work / "nnUNet_results").glob("Dataset*/*__*__*/fold_*")):
        if not ((fold / "checkpoint_final.pth").is_file() and (fold / "validation" / "summary.json").is_file()
                and (fold / "polydice_curve.json").is_file()):
            continue  # not finished (or trained before the curve file existed)
        target = dest / fold.relative_to(work / "nnUNet_results")
        if (target / "validation" / "summary.json").is_file():
            continue
        (target / "validation").mkdir(parents=True, exist_ok=True)
        for name in TRAINER_FILES:
            shutil.copy2(fold.parent / name, target.parent / name)
        for log in sorted(fold.glob("training_log_*.txt")):
            shutil.copy2(log, target / log.name)
        shutil.copy2(fold / "polydice_curve.json", target / "polydice_curve.json")
        shutil.copy2(fold / "validation" / "summary.json", target / "validation" / "summary.json")
        shipped.append(str(target.relative_to(dest)))
    return shipped


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    done = ship(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve() if len(sys.argv) == 3 else DEFAULT_DEST)
    print(f"shipped {len(done)} new runs" + "".join(f"\n  {d}" for d in done))
