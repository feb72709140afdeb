"""The full-precision learning curve of a training, in ``polydice_curve.json`` beside its nnU-Net log.

nnU-Net prints each epoch's pseudo Dice to ``training_log_*.txt`` rounded to 4 decimals, and keeps the exact
values only inside its checkpoints (megabytes each, under ``logging``). A tune's pruner, though, sees the
unrounded values. So every trainer of this package (:class:`~nnunet_polydice.integration.pruning.TrialPruningMixin`)
rewrites, after each epoch, one small JSON file in its fold folder with the logger's per-epoch series as
nnU-Net holds them (Python's float repr round-trips exactly), and ``tune --replay`` reads it back: a replay
sees what a live tune saw, to the last digit.

Schema (version 1)::

    {"format": "nnunet-polydice curve", "version": 1, "trainer": NAME, "epochs": E,
     "series": {"ema_fg_dice": [E floats], "mean_fg_dice": [...], "train_losses": [...],
                "val_losses": [...], "dice_per_class_or_region": [E lists]}}

NaN (nnU-Net's pseudo Dice of a class absent from every validation patch) is written as ``null`` and read
back as NaN. A run resumed with ``--c`` gets its logger back from the checkpoint, so the file always holds
every epoch from 0. Writing it changes nothing that the training computes.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

__all__ = ["CURVE_FILE", "SERIES", "curve_payload", "write_curve", "read_curve"]

CURVE_FILE = "polydice_curve.json"
_FORMAT = "nnunet-polydice curve"
_VERSION = 1
#: The logger keys recorded, each one value (a list for ``dice_per_class_or_region``) per epoch.
SERIES = ("ema_fg_dice", "mean_fg_dice", "train_losses", "val_losses", "dice_per_class_or_region")


def _encode(value):
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    value = float(value)
    return None if math.isnan(value) else value


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return math.nan if value is None else float(value)


def curve_payload(trainer: str, get_series) -> dict:
    """The file's JSON object from ``get_series(key)`` (the whole list nnU-Net's logger holds for ``key``);
    every series is cut to the length of the shortest, the epochs completed."""
    series = {key: list(get_series(key)) for key in SERIES}
    epochs = min(len(v) for v in series.values())
    return {"format": _FORMAT, "version": _VERSION, "trainer": trainer, "epochs": epochs,
            "series": {key: _encode(v[:epochs]) for key, v in series.items()}}


def write_curve(folder, payload: dict) -> Path:
    """Write ``payload`` to ``folder/polydice_curve.json`` atomically (a reader never sees half a file)."""
    path = Path(folder) / CURVE_FILE
    tmp = path.with_name(f".{CURVE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, allow_nan=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_curve(folder) -> dict | None:
    """The series of ``folder/polydice_curve.json`` as ``{key: list}`` (NaN restored), with ``"epochs"`` and
    ``"trainer"``; None when there is no such file.

    Raises:
        ValueError: naming the file, when it is not a curve file of this format.
    """
    path = Path(folder) / CURVE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable curve file ({err}).") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("version") != _VERSION:
        raise ValueError(f"{path}: not a version-{_VERSION} curve file of nnunet-polydice.")
    series, epochs = data.get("series"), data.get("epochs")
    if not isinstance(series, dict) or not isinstance(epochs, int) or epochs < 0 \
            or any(not isinstance(series.get(k), list) or len(series[k]) != epochs for k in SERIES):
        raise ValueError(f"{path}: its series are missing or do not all hold {epochs!r} epochs.")
    try:
        out = {key: _decode(series[key]) for key in SERIES}
    except (TypeError, ValueError):
        raise ValueError(f"{path}: a series holds a value that is not a number.") from None
    out["epochs"] = epochs
    out["trainer"] = data.get("trainer")
    return out
