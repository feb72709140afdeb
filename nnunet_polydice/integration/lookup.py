"""Will ``nnUNetv2_train -tr NAME`` find the trainer? Asked of nnU-Net's own lookup, before anything runs.

:func:`find_trainer_class` calls nnU-Net's ``recursive_find_trainer_class_by_name`` (what
``nnunetv2.run.run_training.get_trainer_from_args`` calls: nnU-Net's ``training/nnUNetTrainer`` package first,
then each folder of ``nnUNet_extTrainer``) with ``nnUNet_extTrainer`` as it will be in the environment the
training runs with (for ``sweep``: the user's value plus this package's trainers folder). A name it cannot find
gets a sentence with the closest known name (this package's catalogue and nnU-Net's trainer classes).
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib.util
import io
import os
import sys
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

from nnunet_polydice.integration.naming import (
    catalogue_names,
    schedule_suffix,
    seed_suffix,
    split_schedule,
    split_seed,
    unseeded_name,
)

__all__ = ["TrainerNotFound", "find_trainer_class", "check_trainers", "nnunet_trainer_names", "closest_name",
           "exit_in_nnunet_command"]

_EXT = "nnUNet_extTrainer"


class TrainerNotFound(ValueError):
    """nnU-Net's lookup does not find the name, or finds something that is not an nnU-Net trainer class."""


def exit_in_nnunet_command(error: Exception, program: str | None = None) -> None:
    """In one of nnU-Net's own commands (the program, ``sys.argv[0]`` unless ``program`` is given, is named
    ``nnUNetv2_*``): print ``<program>: error: <error>`` to stderr and exit with status 2, so that a malformed
    trainer name is answered by its sentence alone instead of the last line of a 35-line traceback through
    nnU-Net's lookup. Anywhere else (this package's commands, a notebook, a test) it returns and the caller
    raises ``error`` as usual."""
    name = os.path.basename(sys.argv[0] if program is None else program)
    if name.startswith("nnUNetv2_"):
        print(f"{name}: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2)


def _set_ext(value: str | None) -> None:
    if value is None:
        os.environ.pop(_EXT, None)
    else:
        os.environ[_EXT] = value


@contextlib.contextmanager
def _ext_trainer(value: str | None):
    """``os.environ['nnUNet_extTrainer']`` set to ``value`` (removed for None) inside the block, restored after:
    nnU-Net's lookup reads the variable from ``os.environ`` when it is called."""
    before = os.environ.get(_EXT)
    _set_ext(value)
    try:
        yield
    finally:
        _set_ext(before)


def _class_bases(source: str) -> dict[str, set]:
    """``{class name: the names of its bases}`` of the top-level classes of a module's source."""
    bases: dict[str, set] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            named = [b for b in node.bases if isinstance(b, (ast.Name, ast.Attribute))]
            bases.setdefault(node.name, set()).update(b.id if isinstance(b, ast.Name) else b.attr for b in named)
    return bases


def nnunet_trainer_names() -> list[str]:
    """The names of the trainer classes nnU-Net ships: the classes of its trainer package that derive from
    ``nnUNetTrainer`` through classes of that package.

    Read from the package's source, not imported: importing its ~70 modules took 8-10 s here (torch's compiler
    stack among them) and is the one thing ``list NAME`` did beyond ``list``; a ``list nnUNetTrainer`` that did not
    exit after printing was reported on another machine. The names are those an import of every module finds
    (77 on nnunetv2 2.8.1, checked by the tests against nnU-Net's own lookup)."""
    spec = importlib.util.find_spec("nnunetv2.training.nnUNetTrainer")
    bases: dict[str, set] = {}
    for folder in spec.submodule_search_locations or ():
        for path in sorted(Path(folder).rglob("*.py")):
            try:
                found = _class_bases(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                continue  # a module nnU-Net could not import either
            for name, of in found.items():
                bases.setdefault(name, set()).update(of)
    names, grown = {"nnUNetTrainer"}, True
    while grown:
        more = {name for name, of in bases.items() if name not in names and of & names}
        names |= more
        grown = bool(more)
    return sorted(names)


def _canonical_guess(name: str) -> str:
    """``name`` without surrounding white space and with other scripts' decimal digits written 0-9."""
    return "".join(str(unicodedata.digit(c)) if c.isdecimal() else c for c in name.strip())


def closest_name(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name``, or None. Compared on the ASCII spelling (white space stripped, other
    scripts' digits as 0-9) without the schedule and seed suffixes, which are put back."""
    text = _canonical_guess(name)
    try:
        unseeded, seed = split_seed(text)
        core, epochs, iterations = split_schedule(unseeded)
    except ValueError:
        core, epochs, iterations, seed = text, None, None, None
    match = difflib.get_close_matches(core, list(dict.fromkeys(known)), n=1, cutoff=0.6)
    return match[0] + schedule_suffix(epochs, iterations) + seed_suffix(seed) if match else None


def _not_found(name: str, ext: str | None, why: str) -> TrainerNotFound:
    guess = closest_name(name, [*catalogue_names(), *nnunet_trainer_names()])
    hint = f" Did you mean {guess!r}?" if guess and guess != name else ""
    return TrainerNotFound(
        f"trainer {name!r} {why} by nnU-Net's lookup (nnunetv2's trainers, then nnUNet_extTrainer={ext or ''!r}), "
        f"so nnUNetv2_train would fail with it.{hint} Names are case-sensitive ASCII; 'nnunet-polydice list' shows "
        f"this package's trainers.")


def _nnunet_lookup():
    """nnU-Net's own by-name lookup, as its ``nnUNetv2_train`` calls it. nnunetv2 2.8.0 added
    ``utilities.find_objects.recursive_find_trainer_class_by_name`` (its own folder, then nnUNet_extTrainer);
    2.5.x-2.7.x search their own trainer folder only (``run_training.get_trainer_from_args``), which finds this
    package's trainers through ``nnunet-polydice link``. Both raise RuntimeError for an unknown name and
    AssertionError for a class that is not an nnUNetTrainer."""
    try:
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
        return recursive_find_trainer_class_by_name
    except ImportError:
        pass
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_polydice.integration.trainer import nnunet_trainer_class

    def before_2_8(name: str):
        cls = nnunet_trainer_class(name)
        if cls is None:
            raise RuntimeError(f"Could not find requested nnunet trainer {name}")
        assert issubclass(cls, nnUNetTrainer), "The requested nnunet trainer class must inherit from nnUNetTrainer"
        return cls

    return before_2_8


def find_trainer_class(name: str, environ: Mapping[str, str] | None = None):
    """The class ``nnUNetv2_train -tr name`` would train, found by nnU-Net's own lookup.

    ``environ`` (default: ``os.environ``) gives ``nnUNet_extTrainer``, the folders nnU-Net searches after its
    own package. nnU-Net's progress messages are swallowed.

    Raises:
        TrainerNotFound: when nnU-Net finds no such name, or finds something that is not a subclass of its
            ``nnUNetTrainer``; the sentence suggests the closest known name.
        InvalidTrainerName: for a malformed name of this package's families (raised by the trainers module).
    """
    recursive_find_trainer_class_by_name = _nnunet_lookup()
    ext = (os.environ if environ is None else environ).get(_EXT)
    with _ext_trainer(ext), contextlib.redirect_stdout(io.StringIO()):
        try:
            cls = recursive_find_trainer_class_by_name(name)
        except RuntimeError:        # nnU-Net: "Could not find requested nnunet trainer ..."
            raise _not_found(name, ext, "is not found") from None
        except (AssertionError, TypeError):   # found, but not a subclass of nnUNetTrainer (or not a class)
            raise _not_found(name, ext, "names no nnU-Net trainer class (a subclass of nnUNetTrainer)") from None
    return cls


def check_trainers(names: Iterable[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Look every name up with :func:`find_trainer_class`; return them, or raise one sentence for all that fail.

    Raises:
        TrainerNotFound: listing every name nnU-Net does not find (one sentence each; names that differ only in
            their seed suffix share one sentence).
        InvalidTrainerName: as :func:`find_trainer_class`.
    """
    names = list(names)
    problems, seen = [], set()
    for name in names:
        unseeded = unseeded_name(name)
        if unseeded in seen:  # the same name on another seed: found or not as the first one was
            continue
        seen.add(unseeded)
        try:
            find_trainer_class(name, environ)
        except TrainerNotFound as err:
            seeds = [n for n in names if n != name and unseeded_name(n) == unseeded]
            problems.append(str(err) + (f" (The same holds for {', '.join(map(repr, seeds))}.)" if seeds else ""))
    if problems:
        raise TrainerNotFound(" ".join(problems) if len(problems) == 1 else
                              f"{len(problems)} trainers would fail: " + " ".join(problems))
    return names
