"""nnU-Net's environment as a sweep meets it: trainer names, the dataset, its plans and splits, the train command.

Everything here asks nnU-Net's own files and code (``$nnUNet_results``, ``$nnUNet_preprocessed``, nnU-Net's dataset
name resolution and trainer lookup) and checks, before anything trains, what would make every
``nnUNetv2_train`` of a sweep fail the same way. The results-folder layout itself is
:mod:`nnunet_polydice.experiments.layout`'s (:func:`fold_folder` is re-exported here).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from nnunet_polydice.experiments import checks
from nnunet_polydice.experiments.layout import fold_folder
from nnunet_polydice.experiments.runs import STATES
from nnunet_polydice.integration import lookup
from nnunet_polydice.integration.locate import nnunet_command, with_trainers_folder
from nnunet_polydice.integration.naming import is_class_name, parse_trainer_name

__all__ = ["TRAIN_EXECUTABLE", "NNUNET_SPLIT_FOLDS", "validate_trainer_name", "check_trainers_found",
           "resolve_dataset_name", "results_root", "check_plans", "split_fold_count", "check_folds", "fold_folder",
           "train_command", "train_executable", "extTrainer_export"]

#: nnU-Net's training command.
TRAIN_EXECUTABLE = "nnUNetv2_train"
#: Folds nnU-Net's own splits_final.json has (it writes one with 5 folds at the first training).
NNUNET_SPLIT_FOLDS = 5


def validate_trainer_name(name: str) -> str:
    """Check a trainer name before anything runs and return it.

    Names of our families must follow the grammar (:func:`parse_trainer_name` raises its sentence);
    any other name (one of nnU-Net's trainers or a user's own) must at least be an ASCII Python class name
    without ``'__'`` (nnU-Net separates trainer, plans and configuration by ``'__'`` in its folder names).
    Whether such a class exists is asked of nnU-Net's lookup by :func:`check_trainers_found`.
    """
    spec = parse_trainer_name(name)
    if spec is None and not is_class_name(name):
        raise ValueError(f"trainer name {name!r} is not a valid nnU-Net trainer name: it must be an ASCII Python "
                         f"class name (letters, digits 0-9, '_') without '__' and with nothing after it, e.g. "
                         f"nnUNetTrainer or nnUNetTrainerPolyDice_K2_eps1.")
    return name


def check_trainers_found(names: Sequence[str], environ: dict | None = None) -> list[str]:
    """Ask nnU-Net's own lookup for every name, in the environment the sweep's trainings run with
    (:func:`locate.with_trainers_folder` of ``environ``, default os.environ); return the names.

    Raises:
        TrainerNotFound: (a ValueError) naming every trainer nnU-Net would not find, with the closest known name.
    """
    return lookup.check_trainers(names, with_trainers_folder(environ))


def resolve_dataset_name(dataset: str | int) -> str:
    """``'1'``, ``1`` or ``'Dataset001_X'`` -> ``'Dataset001_X'``, the way nnU-Net does it
    (``maybe_convert_to_dataset_name``, which looks in nnUNet_raw, nnUNet_preprocessed and nnUNet_results).

    Raises:
        ValueError: when it is not ASCII (nnU-Net's ``int()`` would read '٧٣١' or '７３１' as 731: a data set the
            user did not type) or nnU-Net cannot resolve it (its message, on one line).
    """
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    if not str(dataset).isascii():
        raise ValueError(f"dataset {dataset!r}: give its id in ASCII digits 0-9 (e.g. 731) or its folder name "
                         f"(e.g. Dataset731_Colin27AAL).")

    try:
        return str(maybe_convert_to_dataset_name(dataset))
    except (RuntimeError, AssertionError) as err:
        lines = [" ".join(line.split()) for line in str(err).splitlines() if line.strip()]
        text = " ".join([lines[0], ", ".join(lines[1:])]) if lines else type(err).__name__  # the folders it lists
        raise ValueError(f"cannot resolve dataset {dataset!r}: {text}") from None


def results_root(environ: dict | None = None) -> Path:
    """``$nnUNet_results`` as a Path.

    Raises:
        ValueError: when the variable is not set.
    """
    env = os.environ if environ is None else environ
    value = env.get("nnUNet_results")
    if not value:
        raise ValueError("nnUNet_results is not set; export it to the folder where nnU-Net keeps its trained "
                         "models (see nnU-Net's documentation/setting_up_paths.md).")
    return Path(value)


def check_plans(dataset_name: str, plans: str, configuration: str, environ: dict | None = None) -> Path:
    """Check, before anything runs, that ``$nnUNet_preprocessed/<dataset>/<plans>.json`` exists and has the
    configuration (otherwise every nnUNetv2_train of the sweep would fail the same way). Returns its path.

    Raises:
        ValueError: when the plans identifier is not a plain name (:func:`checks.check_plans_name`),
            nnUNet_preprocessed is not set or the configuration is not in the plans.
        FileNotFoundError: when the plans file does not exist.
    """
    checks.check_plans_name(plans)
    path = _preprocessed(environ) / dataset_name / f"{plans}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: plan and preprocess the dataset first "
                                f"(nnUNetv2_plan_and_preprocess -d <id>), or give the right -p/--plans.")
    try:
        configurations = json.loads(path.read_text(encoding="utf-8")).get("configurations", {})
    except (ValueError, AttributeError):
        raise ValueError(f"{path} is not an nnU-Net plans file (not a JSON object).") from None
    if configuration not in configurations:
        raise ValueError(f"configuration {configuration!r} is not in {path.name}; it has "
                         f"{', '.join(sorted(configurations)) or 'none'}.")
    return path


def split_fold_count(dataset_name: str, environ: dict | None = None) -> int | None:
    """How many folds ``$nnUNet_preprocessed/<dataset>/splits_final.json`` has; None when it does not exist yet
    (nnU-Net then writes a 5-fold one at the first training).

    Raises:
        ValueError: when nnUNet_preprocessed is not set, or the file is not a JSON list (nnU-Net's format).
    """
    path = _splits_path(dataset_name, environ)
    if not path.is_file():
        return None
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        splits = None
    if not isinstance(splits, list):
        raise ValueError(f"{path} is not nnU-Net's splits_final.json (a JSON list with one train/val entry per "
                         f"fold); fix or remove it before training.")
    return len(splits)


def _preprocessed(environ: dict | None) -> Path:
    """``$nnUNet_preprocessed`` of ``environ`` (default os.environ).

    Raises:
        ValueError: when it is not set.
    """
    pre = (os.environ if environ is None else environ).get("nnUNet_preprocessed")
    if not pre:
        raise ValueError("nnUNet_preprocessed is not set; export it to the folder of nnU-Net's preprocessed data "
                         "(see nnU-Net's documentation/setting_up_paths.md).")
    return Path(pre)


def _splits_path(dataset_name: str, environ: dict | None) -> Path:
    return _preprocessed(environ) / dataset_name / "splits_final.json"


def check_folds(dataset_name: str, folds: Sequence[str], *, allow_random_split: bool = False,
                environ: dict | None = None) -> list[str]:
    """Refuse folds the dataset's splits_final.json does not have (nnU-Net would silently train them on a random
    80:20 split instead), unless ``allow_random_split``; return the folds.

    Without a splits_final.json the folds of the 5-fold split nnU-Net will write (0-4) are allowed; 'all' always.

    Raises:
        ValueError: naming the folds, the split file and its folds, and ``--allow-random-split``.
    """
    count = split_fold_count(dataset_name, environ)
    have = NNUNET_SPLIT_FOLDS if count is None else count
    beyond = [f for f in folds if f != "all" and int(f) >= have]
    if not beyond or allow_random_split:
        return list(folds)
    path = _splits_path(dataset_name, environ)
    if count is None:
        source = f"{path} does not exist yet, and the split nnU-Net writes at the first training has folds 0-4"
    else:
        source = f"{path} has {count} fold{'s' if count != 1 else ''}" + (f" (0-{count - 1})" if count else "")
    raise ValueError(
        f"--folds {' '.join(beyond)}: {source}. nnU-Net would train {'these folds' if len(beyond) > 1 else 'it'} on "
        f"a random 80:20 split of the training cases instead (with slices of one subject, neighbouring slices would "
        f"land in training and validation). Give folds {f'0-{have - 1} or ' if have else ''}'all', or pass "
        f"--allow-random-split to ask for nnU-Net's random split.")


def train_command(dataset_name: str, configuration: str, fold, trainer: str, state: str, *,
                  plans: str = "nnUNetPlans", device: str | None = None, npz: bool = False) -> tuple[str, ...] | None:
    """The ``nnUNetv2_train`` argument list for a state (None for 'skip', 'foreign' and 'pruned').

    ``nnUNetv2_train DATASET CONFIGURATION FOLD -tr TRAINER -p PLANS [-device D] [--npz] [--c | --val]``
    """
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES} (got {state!r}).")
    if state in ("skip", "foreign", "pruned"):
        return None
    cmd = [TRAIN_EXECUTABLE, str(dataset_name), str(configuration), str(fold), "-tr", trainer, "-p", plans]
    if device is not None:
        cmd += ["-device", device]
    if npz:
        cmd.append("--npz")
    if state == "continue":
        cmd.append("--c")
    elif state == "validate":
        cmd.append("--val")
    return tuple(cmd)


def train_executable(environ: dict) -> str:
    """nnUNetv2_train on the PATH of ``environ`` or beside this interpreter (:func:`locate.nnunet_command`)."""
    return nnunet_command(TRAIN_EXECUTABLE, environ)



def extTrainer_export(environ: dict | None = None) -> str | None:
    """``export nnUNet_extTrainer=...`` when ``environ`` (default os.environ) does not list our trainers
    folder yet, else None."""
    env = dict(os.environ if environ is None else environ)
    wanted = with_trainers_folder(env)
    if wanted.get("nnUNet_extTrainer") == env.get("nnUNet_extTrainer"):
        return None
    return f"export nnUNet_extTrainer={shlex.quote(wanted['nnUNet_extTrainer'])}"
