"""Where the trainers are, and how nnU-Net is told about them (no torch, no nnunetv2 imports)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

HOOK_OPT_OUT = "NNUNET_POLYDICE_NO_HOOK"
#: The values of HOOK_OPT_OUT that switch the start-up hook off (stripped, any case); every other value keeps
#: it on. startup/_nnunet_polydice_hook.py, which may import nothing but os, holds the same tuple (a test
#: checks that they agree).
HOOK_OPT_OUT_VALUES = ("1", "true", "yes")
#: The values of HOOK_OPT_OUT that keep the hook on, as documented (stripped, any case); any other value keeps it on
#: too, but is not understood: :func:`hook_value_problem` says so (``doctor`` prints it).
HOOK_KEEP_VALUES = ("", "0", "false", "no")


def hook_opted_out(environ: dict | None = None) -> bool:
    """True when ``environ`` (default os.environ) switches the start-up hook off: HOOK_OPT_OUT is 1, true or
    yes (stripped, any case). 0, false, no, an empty value or any other value keep the hook on."""
    env = os.environ if environ is None else environ
    return env.get(HOOK_OPT_OUT, "").strip().lower() in HOOK_OPT_OUT_VALUES


def hook_value_problem(environ: dict | None = None) -> str | None:
    """None when HOOK_OPT_OUT is unset or one of the documented values, else a sentence: the value, that the hook
    stays on, and the values allowed (``NNUNET_POLYDICE_NO_HOOK=on`` reads as "on" to a person and keeps the hook
    on, whatever was meant)."""
    env = os.environ if environ is None else environ
    value = env.get(HOOK_OPT_OUT)
    if value is None or value.strip().lower() in HOOK_OPT_OUT_VALUES + HOOK_KEEP_VALUES:
        return None
    keep = ", ".join(v for v in HOOK_KEEP_VALUES if v)
    return (f"{HOOK_OPT_OUT}={value!r} is not understood, so the start-up hook stays on: set it to "
            f"{', '.join(HOOK_OPT_OUT_VALUES)} to switch the hook off, or to {keep} or nothing to keep it (any case), "
            f"or unset it.")


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


def nnunet_command(name: str, environ: dict | None = None) -> str:
    """The path of nnU-Net's command ``name`` (``nnUNetv2_train``, ``nnUNetv2_predict``, ...): the one on the PATH of
    ``environ`` (default os.environ), else the one beside this interpreter (``sys.executable``'s folder: a tool run
    as ``/path/to/venv/bin/nnunet-polydice`` without the venv on PATH finds the nnU-Net of its own venv).

    Raises:
        FileNotFoundError: when neither exists, with the fix.
    """
    env = os.environ if environ is None else environ
    found = shutil.which(name, path=env.get("PATH"))
    if found:
        return found
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise FileNotFoundError(f"{name} is not on PATH nor next to {sys.executable}; install nnunetv2 (pip install "
                            f"'nnunetv2>=2.8') in this environment, or put its folder on PATH.")


def self_command(python: str | None = None) -> list[str]:
    """``[<absolute interpreter>, '-m', 'nnunet_polydice.cli']``: how this package starts itself as a subprocess
    (a tune's local workers, a Slurm task), run by this interpreter (a virtual environment's ``bin/python`` finds
    its packages without being activated, so the command runs from a plain login shell too).

    Raises:
        ValueError: when the interpreter's path is unknown or not absolute.
    """
    python = sys.executable if python is None else python
    if not python or not os.path.isabs(python):
        raise ValueError(f"the path of this Python interpreter is unknown ({python!r}); nnunet-polydice starts its "
                         f"workers and Slurm tasks with it, so it must be an absolute path.")
    return [python, "-m", "nnunet_polydice.cli"]
