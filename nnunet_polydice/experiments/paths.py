"""Where the commands write, checked before any work: a path that cannot be used gets a sentence that names
the option, the path and what is allowed, instead of an ``[Errno ...]`` after minutes of work.

Writability is tried, not guessed from permission bits: a temporary folder is created (and removed at once)
in the folder itself or, when that does not exist yet, in its nearest existing parent. ``os.access`` would
say yes to root for ``/proc`` or to anyone for a folder on a file system that refuses new entries. Nothing
else is created; the folders themselves are made by the command that writes into them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["check_path_length", "ensure_writable_dir", "ensure_new_file"]

#: What POSIX file systems allow when the system cannot say (``os.pathconf``): bytes per name, bytes per path.
NAME_MAX, PATH_MAX = 255, 4096


def _limit(folder: Path, key: str, default: int) -> int:
    try:
        return int(os.pathconf(folder, key))
    except (OSError, ValueError):
        return default


def check_path_length(path, option: str) -> Path:
    """Check that no name in ``path`` and not the whole path is longer than the file system allows (the limits of
    its nearest existing folder, ``os.pathconf``; 255 bytes a name and 4096 a path where it cannot say). Asked
    before anything else looks at ``path``: the system's ENAMETOOLONG would otherwise come as a traceback from
    the first ``exists()``, or after the work, from the first write.

    Raises:
        ValueError: naming ``option``, the name's start, its length and the limit.
    """
    path = Path(path)
    folder = Path(path.anchor or ".")
    for part in path.parts[1:] if path.anchor else path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            break
        try:
            if not (folder / part).is_dir():
                break
        except OSError:
            break
        folder = folder / part
    name_max, path_max = _limit(folder, "PC_NAME_MAX", NAME_MAX), _limit(folder, "PC_PATH_MAX", PATH_MAX)
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > name_max:
            raise ValueError(f"{option}: the name {part[:40]!r}... is {size} bytes long; the file system allows "
                             f"at most {name_max} bytes a name. Give a shorter path.")
    size = len(os.fsencode(str(path.absolute())))
    if size > path_max:
        raise ValueError(f"{option}: the path is {size} bytes long; the file system allows at most {path_max} "
                         f"bytes a path. Give a shorter path.")
    return path


def _nearest_existing(path: Path) -> Path:
    """``path`` itself when it exists, else its nearest existing parent."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def _cannot_create_in(folder: Path) -> str | None:
    """None when a new entry can be made in ``folder`` (tried with a temporary folder, removed again), else why."""
    try:
        tempfile.TemporaryDirectory(prefix=".nnunet_polydice_write_test_", dir=folder).cleanup()
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


def ensure_writable_dir(path, option: str) -> Path:
    """Check that ``path`` is a folder the command can write into, or one it can create; return it as a Path.

    Raises:
        ValueError: when ``path`` is an existing file, when the nearest existing path above it is a file, or
            when nothing can be created in the nearest existing folder; the sentence names ``option``.
    """
    path = check_path_length(path, option)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder; give a folder (it is created if needed).")
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise ValueError(f"{option} {path} cannot be created: {existing} is a file, not a folder; give a folder.")
    reason = _cannot_create_in(existing)
    if reason is not None:
        where = "it" if existing == path else f"{existing}, the nearest existing folder above it"
        raise ValueError(f"{option} {path} cannot be written: nothing can be created in {where} ({reason}); give "
                         f"a folder you can write to.")
    return path


def ensure_new_file(path, option: str) -> Path:
    """Check that ``path`` names a new file in an existing folder the command can write into; return it.

    Commands never overwrite a file, so an existing one is refused.

    Raises:
        FileExistsError: when ``path`` exists (a file or a folder).
        ValueError: when its folder does not exist, is a file, or cannot be written.
    """
    path = check_path_length(path, option)
    if path.is_dir():
        raise FileExistsError(f"{option} {path} is a folder; give the name of a new file.")
    if path.exists() or path.is_symlink():
        raise FileExistsError(f"{option} {path} exists; nnunet-polydice never overwrites a file: remove it or give "
                              f"another name.")
    folder = path.parent
    if not folder.exists():
        raise ValueError(f"{option} {path}: the folder {folder} does not exist; create it first or give a file in "
                         f"an existing folder.")
    if not folder.is_dir():
        raise ValueError(f"{option} {path}: {folder} is a file, not a folder; give a file in an existing folder.")
    reason = _cannot_create_in(folder)
    if reason is not None:
        raise ValueError(f"{option} {path} cannot be written: nothing can be created in {folder} ({reason}); give "
                         f"a file in a folder you can write to.")
    return path
