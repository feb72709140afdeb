"""Checks of the arguments a user types, in one place, used by every command before any work.

Each function takes the value as typed (or as argparse parsed it) and the option's name, and returns the
value in the form the command uses, or raises :class:`ValueError` with one sentence that names the option,
the value and what is allowed. Every size a user types is bounded, and the bound is in the sentence. The
command-line tool turns these errors into ``nnunet-polydice <command>: error: ...`` and exit code 2; the
commands call them before a study is opened, a folder made, a file written or a training started.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

from nnunet_polydice.experiments.layout import NNUNET_METRICS
from nnunet_polydice.experiments.paths import check_path_length, ensure_writable_dir
from nnunet_polydice.integration import pruning
from nnunet_polydice.integration.naming import MAX_EPOCHS, MAX_ITERATIONS, MAX_SEED, shown_number

__all__ = ["MAX_SEED", "MAX_EPOCHS", "MAX_ITERATIONS", "MAX_RANGE_VALUES", "MIN_RESAMPLES", "MAX_RESAMPLES",
           "MAX_COUNT", "MAX_WORKERS", "check_int", "check_number", "check_resamples", "check_metric", "check_count",
           "check_seed",
           "check_seeds", "check_range", "check_schedule", "check_folds", "check_output_folder", "check_files_free",
           "check_storage", "check_study_name", "check_plans_name"]

#: Bounds of the sizes a user types; each is in the sentence that refuses a larger value. MAX_EPOCHS and
#: MAX_ITERATIONS bound the schedule suffix of trainer names too, so they live in naming.
MAX_RANGE_VALUES = 1000      # values one START:STOP:STEP range may expand to
MIN_RESAMPLES = 100          # bootstrap resamples: the 2.5th percentile of fewer means is hardly an estimate
MAX_RESAMPLES = 1_000_000    # bootstrap resamples: about 8 MB a row of 1000 cases at this bound
MAX_COUNT = 10_000           # trials and other counts of things a command starts
MAX_WORKERS = 1000           # processes (or array tasks) one command starts


def _as_int(value, option: str, allowed: str) -> int:
    """``value`` (an integer, or a string that spells one) as an int; bools, floats and other text refused."""
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not digits.isascii() or not digits.isdigit():
            raise ValueError(f"{option} must be {allowed} (got {shown_number(value)!r}).")
        if len(digits.lstrip("0")) > 4000:  # Python converts at most 4300 digits, with a sentence naming no option
            raise ValueError(f"{option} must be {allowed} (got a number of {len(digits)} digits).")
        return int(text)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{option} must be {allowed} (got {value!r}).")
    return operator.index(value)


def check_int(value, option: str, minimum: int, maximum: int) -> int:
    """``value`` as an int in ``[minimum, maximum]``.

    Raises:
        ValueError: when it is not an integer or lies outside the range; the sentence names ``option`` and
            both bounds.
    """
    allowed = f"an integer from {minimum} to {maximum}"
    number = _as_int(value, option, allowed)
    if not minimum <= number <= maximum:
        raise ValueError(f"{option} must be {allowed} (got {number}).")
    return number


def check_resamples(value, option: str = "--bootstrap") -> int:
    """``value`` as a number of bootstrap resamples, :data:`MIN_RESAMPLES` to :data:`MAX_RESAMPLES`
    (:func:`check_int`); ``compare`` and its command check with this one sentence.

    Raises:
        ValueError: otherwise, naming ``option`` and both bounds.
    """
    return check_int(value, option, MIN_RESAMPLES, MAX_RESAMPLES)


def check_metric(metric: str, option: str = "--metric") -> str:
    """``metric`` when it is one of nnU-Net's per-class metrics (:data:`layout.NNUNET_METRICS`), checked before any
    summary is read.

    Raises:
        ValueError: otherwise, naming the option and the metrics allowed.
    """
    if metric not in NNUNET_METRICS:
        raise ValueError(f"{option} must be one of nnU-Net's per-class metrics {', '.join(NNUNET_METRICS)} "
                         f"(got {metric!r}).")
    return metric


def check_seed(value, option: str = "--seed") -> int:
    """``value`` as a seed: an int from 0 to :data:`MAX_SEED` (what numpy's legacy seeding accepts).

    Raises:
        ValueError: otherwise; the sentence names ``option`` and the range.
    """
    return check_int(value, option, 0, MAX_SEED)


def check_seeds(values, option: str = "--seeds") -> list[int]:
    """``values`` as a non-empty list of distinct seeds (:func:`check_seed` each), in the order given.

    Raises:
        ValueError: when the list is empty, a seed is out of range or a seed is given twice.
    """
    if values is None or isinstance(values, (str, bytes)) or len(values) == 0:
        raise ValueError(f"{option} needs at least one seed, each an integer from 0 to {MAX_SEED} (got "
                         f"{values!r}).")
    seeds = [check_seed(value, option) for value in values]
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise ValueError(f"{option} gives the seed {repeated[0]} more than once; give each seed once.")
    return seeds


def check_number(value, option: str) -> float:
    """``value`` (a number, or text in ASCII that spells one) as a finite float. Python's ``float()`` reads other
    scripts' digits ('１２' as 12.0): a value the user did not type.

    Raises:
        ValueError: for other text, bools, inf and nan; the sentence names ``option``.
    """
    if isinstance(value, str):
        text = value.strip()
        number = math.nan
        if text.isascii():
            try:
                number = float(text)
            except ValueError:
                pass
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    else:
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{option} must be a finite number written in ASCII, e.g. 0.5 or -1e-3 (got "
                         f"{shown_number(str(value))!r}).")
    return number


def check_count(value, option: str, maximum: int = MAX_COUNT, minimum: int = 1) -> int:
    """``value`` as a count from ``minimum`` (default 1) to ``maximum`` (:func:`check_int`)."""
    return check_int(value, option, minimum, maximum)


def check_range(text: str, option: str, min_step: Decimal, max_values: int = MAX_RANGE_VALUES) -> list[Decimal]:
    """``'0:2:0.5'`` -> ``[0, 0.5, 1, 1.5, 2]`` as Decimals (both ends included, no drift).

    Raises:
        ValueError: for a malformed range, a bound that is not a finite number, a step under ``min_step``, an
            empty range or one of more than ``max_values`` values (counted before anything is expanded).
    """
    try:
        if not str(text).isascii():  # Decimal() reads other scripts' digits too ('１' as 1)
            raise ValueError
        start, stop, step = (Decimal(p.strip()) for p in str(text).split(":"))
    except (ValueError, InvalidOperation):
        raise ValueError(f"{option} {text!r}: a range is START:STOP:STEP with three numbers, e.g. 0:2:0.5.") from None
    if not all(d.is_finite() for d in (start, stop, step)):
        raise ValueError(f"{option} {text!r}: START, STOP and STEP must be finite numbers (no nan or inf).")
    if step < min_step:
        raise ValueError(f"{option} {text!r}: the step must be at least {min_step} (got {step}), so that the space "
                         f"stays a small grid of distinct settings.")
    if stop < start:
        raise ValueError(f"{option} {text!r} is empty: START ({start}) is larger than STOP ({stop}).")
    n = (stop - start) // step + 1
    if n > max_values:
        raise ValueError(f"{option} {text!r} has {n} values; a range may have at most {max_values}.")
    return [start + i * step for i in range(int(n))]


def check_schedule(text: str, option: str = "--schedule") -> tuple[int, int]:
    """``'30x20'`` (or ``'30ep20it'``) -> ``(30, 20)``: E epochs (1..MAX_EPOCHS) of I iterations
    (1..MAX_ITERATIONS).

    Raises:
        ValueError: when the text is not two integers in these ranges.
    """
    m = re.fullmatch(r"\s*(\d+)\s*(?:x|ep)\s*(\d+)\s*(?:it)?\s*", str(text), flags=re.ASCII)
    if m is None or not (1 <= int(m.group(1)) <= MAX_EPOCHS and 1 <= int(m.group(2)) <= MAX_ITERATIONS):
        raise ValueError(f"{option}: the schedule must be <epochs>x<iterations>, epochs from 1 to {MAX_EPOCHS} and "
                         f"iterations from 1 to {MAX_ITERATIONS}, e.g. 30x20 for 30 epochs of 20 iterations (got "
                         f"{text!r}).")
    return int(m.group(1)), int(m.group(2))


def check_folds(folds: Iterable, option: str = "--folds") -> list[str]:
    """Folds as nnU-Net names them (``'0'``..., or ``'all'``), without duplicates, order kept.

    Raises:
        ValueError: for a fold that is neither a non-negative integer (at most :data:`MAX_COUNT`) nor 'all', or
            for no fold at all.
    """
    out = []
    for f in folds:
        text = str(f).strip()
        if not (text == "all" or (text.isascii() and text.isdigit() and int(text) <= MAX_COUNT)):
            raise ValueError(f"{option}: a fold is a non-negative integer or 'all', as nnUNetv2_train takes it; at "
                             f"most {MAX_COUNT} (got {f!r}).")
        text = "all" if text == "all" else str(int(text))
        if text not in out:
            out.append(text)
    if not out:
        raise ValueError(f"{option}: no folds given; nnU-Net's cross-validation has folds 0 1 2 3 4.")
    return out


def check_output_folder(path, option: str = "--out") -> Path:
    """A folder the user named for a command's output: it exists, or its parent does (a command makes one
    folder, never a chain of them from the root), and the command can write there.

    Raises:
        ValueError: when neither it nor its parent is an existing folder, a name is too long
            (:func:`paths.check_path_length`), or it cannot be written.
    """
    path = check_path_length(path, option)
    if not path.exists() and not path.is_symlink() and not path.absolute().parent.exists():
        raise ValueError(f"{option} {path}: its parent folder {path.absolute().parent} does not exist; give an "
                         f"existing folder, or a new one inside an existing folder.")
    return ensure_writable_dir(path, option)


def check_files_free(folder, names: Sequence[str], owned: set, tool: str, option: str = "--out") -> None:
    """Refuse, before any work, a folder where one of ``names`` exists and is not in ``owned`` (the files the
    command ``tool`` wrote there before): a command never overwrites its user's files.

    Raises:
        FileExistsError: naming the first such file and ``option``.
    """
    folder = Path(folder)
    clash = [n for n in names if ((folder / n).exists() or (folder / n).is_symlink()) and n not in owned]
    if clash:
        raise FileExistsError(f"{option} {folder}: {clash[0]} there was not written by nnunet-polydice {tool}; "
                              f"refusing to overwrite it (move it away or give another folder). Nothing was done.")


def _journal_problem(path: Path) -> str | None:
    """None when ``path`` is missing, empty or reads as an Optuna journal (JSON objects with an op_code, one
    a line), else why not."""
    if not path.exists():
        return None
    if not path.is_file():
        return "it is not a file"
    try:
        with path.open("rb") as f:
            first = f.readline(1 << 20)
    except OSError as err:
        return err.strerror or type(err).__name__
    if not first:
        return None
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    # Optuna's journal opens with the creation of a study (op_code 0, JournalOperation.CREATE_STUDY)
    if not (isinstance(record, dict) and record.get("op_code") == 0 and isinstance(record.get("study_name"), str)
            and isinstance(record.get("directions"), list)):
        return "it is not an Optuna journal (its first line is not the record that creates a study)"
    return None


def check_storage(url: str, option: str = "--storage") -> str:
    """An Optuna storage URL (:func:`pruning.storage_kind`); a journal's folder must exist and an existing file
    must be an Optuna journal, so that the user's own file is never appended to; an SQLite database must be a
    file (not ``:memory:``) in an existing folder.

    Raises:
        ValueError: naming ``option``, the URL and what is allowed.
    """
    kind = pruning.storage_kind(url)
    if kind == "journal":
        path = check_path_length(pruning.journal_path(url), f"{option} {url[:60]!r}...")
        if not path.parent.is_dir():
            raise ValueError(f"{option} {url!r}: the folder {path.parent} does not exist; give a journal file in an "
                             f"existing folder.")
        problem = _journal_problem(path)
        if problem:
            raise ValueError(f"{option} {url!r}: {path} exists and {problem}; give a new file or an existing "
                             f"journal of nnunet-polydice tune (nothing was written to it).")
    if kind == "sqlite":
        database = pruning.sqlite_database(url)[1]
        if database in ("", ":memory:"):
            raise ValueError(f"{option} {url!r} is an in-memory SQLite database, which lives and dies with one "
                             f"process: the trainers cannot report to it and nothing would be kept. Give "
                             f"sqlite:///path/file.sqlite3, or leave {option} out for the journal file.")
        folder = check_path_length(database, f"{option} {url[:60]!r}...").parent
        if not folder.is_dir():
            raise ValueError(f"{option} {url!r}: the folder {folder} does not exist; give a database file in an "
                             f"existing folder.")
    return str(url)


_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}", re.ASCII)


def check_study_name(name: str, option: str = "--study") -> str:
    """A study name that is also a plain folder name: letters, digits, '.', '_', '+', '-', at most 128, starting
    with a letter or digit (no path separator, no '..').

    Raises:
        ValueError: otherwise.
    """
    text = str(name)
    if not _STUDY_NAME.fullmatch(text) or ".." in text:
        raise ValueError(f"{option} {text!r} is not a plain name: use 1 to 128 ASCII letters, digits, '.', '_', '+' "
                         f"or '-', starting with a letter or digit and without '..' (the name is also the folder "
                         f"of its reports).")
    return text


_PLANS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)


def check_plans_name(name: str, option: str = "-p/--plans") -> str:
    """A plans identifier as nnU-Net uses it (``nnUNetPlans``, ``nnUNetResEncUNetMPlans``): it names the file
    ``<plans>.json`` and is part of the results folders ``<trainer>__<plans>__<configuration>``, so it is a plain
    name: 1 to 128 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit, without '__' or '..'.

    Raises:
        ValueError: otherwise (``../../etc`` would name a file outside the dataset's folder).
    """
    text = str(name)
    if not _PLANS_NAME.fullmatch(text) or "__" in text or ".." in text:
        raise ValueError(f"{option} {text!r} is not a plans identifier: use 1 to 128 ASCII letters, digits, '.', '_' "
                         f"or '-', starting with a letter or digit, without '__' or '..' (e.g. nnUNetPlans); it "
                         f"names <plans>.json in the dataset's folder of nnUNet_preprocessed.")
    return text


def check_replay_options(workers: int, *, status: bool, slurm, storage, worker_index) -> None:
    """``tune --replay`` runs one worker in this process, on a study in memory of its own.

    Raises:
        ValueError: for ``--workers`` above 1, ``--status``, ``--slurm`` or ``--storage`` with ``--replay``.
    """
    if workers > 1 or worker_index is not None:
        raise ValueError(f"--replay with --workers {workers}: a replay runs one worker in this process (its decisions "
                         f"are those of a one-worker tune); leave --workers out.")
    for given, option, why in ((status, "--status", "a replay's study lives in memory while it runs; its report is "
                                                    "tune.md in --out"),
                               (slurm, "--slurm", "a replay trains nothing, so it needs no cluster"),
                               (storage, "--storage", "a replay's study lives in a new storage of its own, never in a "
                                                      "live study's")):
        if given:
            raise ValueError(f"--replay with {option}: {why}; leave {option} out.")
