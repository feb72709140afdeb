"""The link route, for nnU-Net before 2.8: one small module in nnU-Net's own trainer folder.

nnU-Net 2.5.x-2.7.x look trainers up only inside ``nnunetv2/training/nnUNetTrainer`` (recursively): each module
there is imported by name and the class taken with ``hasattr``/``getattr``. ``nnunet-polydice link`` writes
:data:`LINK_FILE` into that folder; the module forwards its module-level ``__getattr__`` to this package's
trainers module, so every name the grammar allows resolves, as through ``nnUNet_extTrainer`` on 2.8+.

The file records itself: its second line is the SHA-256 of the text below that line. :func:`unlink` removes the
file only when that record still matches (so a file edited by hand, or someone else's file of the same name, is
never removed), together with the bytecode Python compiled from it, and nothing else. Nothing is written
without the command. ``pip uninstall nnunet-polydice`` does not know the file (it is in no package's RECORD):
a link left behind makes our trainer names fail with one sentence, and leaves nnU-Net's own trainers alone.

No torch and no nnunetv2 imports here: the linked module imports :func:`load_trainers_module` while nnU-Net
walks its trainer folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from nnunet_polydice.integration.locate import trainers_folder

__all__ = ["LINK_FILE", "FIRST_EXT_TRAINER_RELEASE", "LinkError", "LinkState", "nnunet_version", "version_tuple",
           "needs_link", "nnunet_trainer_folder", "link_text", "link_state", "link", "unlink", "load_trainers_module"]

LINK_MODULE = "nnunet_polydice_link"
#: The file ``link`` writes. It sorts after nnU-Net's ``nnUNetTrainer.py``, so a lookup of ``nnUNetTrainer``
#: itself never imports it.
LINK_FILE = LINK_MODULE + ".py"
#: The first nnunetv2 release that searches the folders in ``nnUNet_extTrainer`` (the start-up hook's route).
FIRST_EXT_TRAINER_RELEASE = (2, 8)
_MARKER = "# nnunet-polydice link: written by `nnunet-polydice link`, removed by `nnunet-polydice unlink`."
_HASH_PREFIX = "# sha256 of the text below this line: "

_BODY = '''"""Hands nnU-Net's trainer lookup the trainers of nnunet-polydice (nnU-Net < 2.8 searches only this folder).

`pip uninstall nnunet-polydice` does not remove this file: run `nnunet-polydice unlink` first, or delete it.
"""
import re as _re

try:
    from nnunet_polydice.integration.link import load_trainers_module as _load
    _trainers, _why = _load(), None
except Exception as _error:  # an ImportError here would stop nnU-Net's lookup of its own trainers too
    _trainers, _why = None, f"{type(_error).__name__}: {_error}"

_OURS = _re.compile(r"nnUNetTrainer(PolyDice|PolyTversky|Tversky|FocalTversky)|.*_([0-9]+ep[0-9]+it|s[0-9]+)$")


def __getattr__(name):
    if _trainers is not None:
        return getattr(_trainers, name)
    if _OURS.match(name):
        raise SystemExit(f"nnU-Net trainer {name!r} would come from nnunet-polydice, which this Python cannot "
                         f"import ({_why}). Reinstall it (pip install nnunet-polydice), or delete the link it "
                         f"left in nnU-Net: {__file__}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
'''


class LinkError(ValueError):
    """``link`` or ``unlink`` cannot do what was asked; the message says why and what to run instead."""


def nnunet_version() -> str | None:
    try:
        return md.version("nnunetv2")
    except md.PackageNotFoundError:
        return None


def version_tuple(text: str) -> tuple[int, ...]:
    """``'2.7.0'`` -> ``(2, 7, 0)``; pre-release tags are dropped (``'2.8.0rc1'`` -> ``(2, 8, 0)``)."""
    out = []
    for part in text.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def needs_link(version: str) -> bool:
    """True for an nnunetv2 release that does not read ``nnUNet_extTrainer`` (before 2.8)."""
    return version_tuple(version) < FIRST_EXT_TRAINER_RELEASE


def nnunet_trainer_folder() -> Path:
    """The installed nnU-Net's ``training/nnUNetTrainer`` folder, found without importing nnunetv2."""
    spec = importlib.util.find_spec("nnunetv2")
    if spec is None or not spec.submodule_search_locations:
        raise LinkError("nnunetv2 is not installed in this Python: pip install 'nnunetv2>=2.5'.")
    return Path(list(spec.submodule_search_locations)[0]) / "training" / "nnUNetTrainer"


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def link_text() -> str:
    """The whole text of the linked module: the marker, the record (hash of the body), the body."""
    return f"{_MARKER}\n{_HASH_PREFIX}{_digest(_BODY)}\n{_BODY}"


@dataclass(frozen=True)
class LinkState:
    """What is at ``path``: ``absent``; ``linked`` (our file, as written); ``edited`` (our marker, but the text
    no longer matches its record); ``foreign`` (a file of that name that this package did not write)."""

    path: Path
    status: str
    sha256: str | None = None


def link_state(folder: Path | None = None) -> LinkState:
    path = Path(folder or nnunet_trainer_folder()) / LINK_FILE
    if not path.exists() and not path.is_symlink():
        return LinkState(path, "absent")
    try:
        text = path.read_text() if path.is_file() and not path.is_symlink() else ""
    except (OSError, UnicodeDecodeError):
        text = ""
    lines = text.split("\n", 2)
    if len(lines) < 3 or lines[0] != _MARKER or not lines[1].startswith(_HASH_PREFIX):
        return LinkState(path, "foreign")
    recorded = lines[1][len(_HASH_PREFIX):]
    return LinkState(path, "linked" if _digest(lines[2]) == recorded else "edited", recorded)


def _bytecode(path: Path) -> list[Path]:
    """The bytecode Python wrote when it imported ``path`` (``__pycache__/<name>.<tag>.pyc``)."""
    cache = path.parent / "__pycache__"
    return sorted(p for p in cache.glob(f"{path.stem}.*.pyc") if p.is_file()) if cache.is_dir() else []


def link(folder: Path | None = None, version: str | None = None) -> tuple[LinkState, str]:
    """Write the link into nnU-Net's trainer folder (``folder``, default the installed nnU-Net's).

    Returns (state, what happened): ``written``, or ``unchanged`` when this very link is already there.

    Raises:
        LinkError: nnunetv2 is 2.8+ (the start-up hook is the route), the folder is missing or not writable, or a
            file of that name is there that this command did not write (or that was edited since).
    """
    version = version or nnunet_version()
    if version is None:
        raise LinkError("nnunetv2 is not installed in this Python: pip install 'nnunetv2>=2.5'.")
    if not needs_link(version):
        raise LinkError(f"no link needed: nnunetv2 {version} reads nnUNet_extTrainer, which this package's start-up "
                        f"hook sets; nothing was written ('nnunet-polydice doctor' checks the hook).")
    folder = Path(folder or nnunet_trainer_folder())
    if not folder.is_dir():
        raise LinkError(f"nnU-Net's trainer folder {folder} does not exist; is nnunetv2 {version} installed whole?")
    state = link_state(folder)
    if state.status == "linked" and state.path.read_text() == link_text():
        return state, "unchanged"
    if state.status == "foreign":
        raise LinkError(f"{state.path} exists and was not written by 'nnunet-polydice link'; nothing was written. "
                        f"Move that file away if it is not needed, then run 'nnunet-polydice link' again.")
    if state.status == "edited":
        raise LinkError(f"{state.path} was written by 'nnunet-polydice link' but edited since; nothing was written. "
                        f"Look at it, delete it by hand if the edit is not needed, then run 'nnunet-polydice link'.")
    if not os.access(folder, os.W_OK):
        raise LinkError(f"no write access to nnU-Net's trainer folder {folder}; nothing was written. Run "
                        f"'nnunet-polydice link' as the user who installed nnunetv2 (or in your own virtual "
                        f"environment).")
    try:
        if state.status == "linked":  # our record, an older text of the link: replace it with this one
            state.path.write_text(link_text())
        else:
            with open(state.path, "x") as handle:  # never over a file that appeared since the check
                handle.write(link_text())
    except FileExistsError:
        raise LinkError(f"{state.path} appeared while linking; nothing was written. Run the command again.") from None
    except PermissionError:
        raise LinkError(f"no write access to {state.path}; nothing was written. Run 'nnunet-polydice link' as the "
                        f"user who installed nnunetv2.") from None
    for pyc in _bytecode(state.path):  # bytecode of an older text must not shadow the new one
        pyc.unlink(missing_ok=True)
    return link_state(folder), "written"


def unlink(folder: Path | None = None) -> tuple[LinkState, list[Path]]:
    """Remove the link (and the bytecode Python compiled from it) from nnU-Net's trainer folder.

    Returns (the link's state before, the paths removed).

    Raises:
        LinkError: nothing is linked, the file there is not ours, or it was edited since ``link`` wrote it.
    """
    folder = Path(folder or nnunet_trainer_folder())
    state = link_state(folder)
    if state.status == "absent":
        raise LinkError(f"nothing is linked: there is no {LINK_FILE} in {folder}; nothing was removed.")
    if state.status == "foreign":
        raise LinkError(f"{state.path} was not written by 'nnunet-polydice link'; nothing was removed.")
    if state.status == "edited":
        raise LinkError(f"{state.path} was edited since 'nnunet-polydice link' wrote it (its text no longer matches "
                        f"the SHA-256 it records); nothing was removed. Look at it and delete it by hand.")
    removed = [state.path, *_bytecode(state.path)]
    try:
        for path in removed:
            path.unlink()
    except PermissionError:
        raise LinkError(f"no write access to {folder}; run 'nnunet-polydice unlink' as the user who installed "
                        f"nnunetv2.") from None
    return state, removed


def load_trainers_module():
    """This package's trainers module, under the name nnU-Net 2.8+ gives it (``nnunet_polydice_trainers``),
    loaded once: from the wheel's ``nnunet_polydice/trainers`` or a source checkout's ``trainers``."""
    name = "nnunet_polydice_trainers"
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, trainers_folder() / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
