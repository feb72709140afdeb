"""Where the trainers are, and how nnU-Net is told about them (no torch, no nnunetv2 imports)."""

from __future__ import annotations

import os
from pathlib import Path

HOOK_OPT_OUT = "NNUNET_POLYDICE_NO_HOOK"


def trainers_folder() -> Path:
    """The folder nnU-Net must search: ``nnunet_polydice/trainers`` when installed from a wheel,
    ``<checkout>/trainers`` when running from a source checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "trainers", package.parent / "trainers"):
        if (candidate / "nnunet_polydice_trainers.py").is_file():
            return candidate
    raise FileNotFoundError(f"nnunet-polydice's trainers folder is missing next to {package}; reinstall the package.")


def with_trainers_folder(environ: dict | None = None) -> dict:
    """A copy of ``environ`` (default: os.environ) whose ``nnUNet_extTrainer`` also lists our folder,
    after whatever the user had there."""
    env = dict(os.environ if environ is None else environ)
    folder = str(trainers_folder())
    parts = [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if folder not in parts:
        env["nnUNet_extTrainer"] = os.pathsep.join([*parts, folder])
    return env
