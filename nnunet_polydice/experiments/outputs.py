"""Output folders the tools share with their user: a tool overwrites only files it wrote there itself.

Each tool (``compare``, ``curves``, ``plot-shape``) keeps, in its output folder, a manifest ``.polydice_<tool>.json``
listing the files it wrote. A later run of that tool overwrites the files listed there, removes those of
them it does not produce any more, and refuses to overwrite any other file (the user's, or another
tool's): :class:`OwnedFolder`. :func:`check_out_dir` says, before any work, when a folder cannot be used.

A run that stops halfway (a full disk, a crash) leaves no half-written file under a name of its own and is not
locked out by its own files: the names are listed in the manifest (as being written) before any file is written,
each file is written to a hidden partial file beside it and renamed into place only when complete
(:meth:`OwnedFolder.write`), and the manifest itself is replaced in one rename.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from nnunet_polydice.experiments import checks
from nnunet_polydice.experiments.paths import ensure_writable_dir

__all__ = ["file_slug", "manifest_name", "check_out_dir", "default_out_dir", "OutputNotWritten", "OwnedFolder"]


class OutputNotWritten(OSError, ValueError):
    """An output file that could not be written (a full disk, a file-size limit, ...): one sentence naming it. An
    OSError, and a ValueError so that the command line prints it as an error sentence."""


def partial_name(name: str) -> str:
    """The hidden file a file ``name`` is written to before it is renamed into place (its extension kept, which
    tells matplotlib the format)."""
    return f".polydice-partial.{name}"


def file_slug(text: str) -> str:
    """``text`` as a part of a file name: every run of other characters than ASCII letters and digits one '_'
    (``'class'`` when nothing is left)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_") or "class"


def manifest_name(tool: str) -> str:
    """``'.polydice_<tool>.json'``: the file, in the output folder, that lists the files ``tool`` wrote."""
    return f".polydice_{tool}.json"


def check_out_dir(path, option: str = "--out") -> Path:
    """Check, leaving nothing behind, that ``path`` is or can become a writable folder; return it.

    The check is :func:`nnunet_polydice.experiments.paths.ensure_writable_dir`, shared by every command.

    Raises:
        ValueError: when ``path`` is an existing file, when a parent of it is a file, or when nothing can be
            created in the nearest existing folder above it (or itself); the message names ``option``.
    """
    return ensure_writable_dir(path, option)


def default_out_dir(results, dataset_name: str, configuration: str, plans: str, tool: str) -> Path:
    """``<results>/<dataset>/polydice_<tool>_<configuration>`` (``polydice_<tool>_<plans>_<configuration>``
    for plans other than nnUNetPlans, so that two plans do not share one folder)."""
    tag = configuration if plans == "nnUNetPlans" else f"{plans}_{configuration}"
    return Path(results) / dataset_name / f"polydice_{tool}_{tag}"


class OwnedFolder:
    """An output folder of one tool: :meth:`claim` the file names, write them, then :meth:`commit`.

    ``claim`` refuses (before anything is written) a name that exists and is not in the tool's manifest, then
    lists the names in the manifest as being written; :meth:`write` writes each file whole or not at all;
    ``commit`` removes the tool's own files that this run did not produce and writes the manifest.
    """

    def __init__(self, out_dir, tool: str):
        self.out_dir = Path(out_dir)
        self.tool = tool
        self.manifest = self.out_dir / manifest_name(tool)

    def owned(self) -> set:
        """The file names the manifest lists (none when it is missing or unreadable)."""
        if not self.manifest.is_file():
            return set()
        try:
            return set(json.loads(self.manifest.read_text(encoding="utf-8")).get("files", []))
        except (ValueError, AttributeError):
            return set()

    def claim(self, names: Sequence[str], option: str = "the output folder") -> None:
        """Create the folder and check that every name is free or the tool's own
        (:func:`nnunet_polydice.experiments.checks.check_files_free`, the one clash check and its sentence).

        Raises:
            FileExistsError: when a name exists and was not written by this tool; nothing is written then.
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)
        owned = self.owned()
        checks.check_files_free(self.out_dir, names, owned, self.tool, option)
        self._write(sorted(owned | set(names)), writing=names)

    def write(self, name: str, write: Callable[[Path], None]) -> Path:
        """``write(path)`` to a hidden partial file in the folder, renamed to ``name`` once it returns (one
        ``os.replace``: the old file stays whole until then). Returns the final path.

        Raises:
            OutputNotWritten: when writing fails (a full disk, ...): the partial file is removed.
        """
        path, partial = self.out_dir / name, self.out_dir / partial_name(name)
        try:
            write(partial)
            os.replace(partial, path)
        except OSError as err:
            partial.unlink(missing_ok=True)
            raise OutputNotWritten(f"could not write {path}: {err.strerror or err}; the files of an earlier run "
                                   f"are kept, and a rerun overwrites this run's.") from err
        return path

    def write_text(self, name: str, text: str) -> Path:
        """:meth:`write` of a UTF-8 text."""
        return self.write(name, lambda path: path.write_text(text, encoding="utf-8"))

    def commit(self, names: Sequence[str]) -> None:
        """Remove the tool's files of an earlier run that are not in ``names``; list ``names`` in the manifest."""
        for stale in self.owned() - set(names):
            path = self.out_dir / stale
            if os.path.basename(stale) == stale and path.is_file():
                path.unlink()
        self._write(names)

    def add(self, names: Sequence[str]) -> None:
        """List ``names`` in the manifest beside the tool's earlier files that are still there (for a tool whose
        runs each write one file of a name the user picks, such as ``plot-shape``: nothing is removed)."""
        kept = sorted(n for n in self.owned() - set(names) if (self.out_dir / n).is_file())
        self._write([*kept, *names])

    def _write(self, names: Sequence[str], writing: Sequence[str] = ()) -> None:
        """The manifest, replaced whole (:meth:`write`); ``writing``: names claimed and not yet written."""
        data = {"tool": f"nnunet-polydice {self.tool}", "files": list(names)}
        if writing:
            data["writing"] = list(writing)
        self.write_text(self.manifest.name, json.dumps(data, indent=1))
