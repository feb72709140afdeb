"""nnU-Net's encodings that trainers and tools both read: the summary.json label key and the logger's EMA.

* :func:`label_key`: how ``validation/summary.json`` keys a class: the label value (``'2'``) or, for a
  region-based dataset, the region tuple (``'(1, 2, 3)'``), as ``str`` of an int or of a tuple of ints.
* :func:`ema_series`: nnU-Net's exponential moving average (``MetaLogger``: ``ema_0 = v_0``,
  ``ema_t = 0.9 ema_(t-1) + 0.1 v_t``). **NaN rule**: a NaN value makes every later value NaN, as in
  nnU-Net's logger, whose ``ema_fg_dice`` stays NaN once an epoch's mean is NaN. A caller that wants a
  class absent from an epoch to be skipped (the pruner's per-label signal,
  :func:`nnunet_polydice.integration.pruning.ema`) drops the NaN values before the call.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["EMA_DECAY", "label_key", "ema_series"]

#: nnU-Net's logger: ema_t = EMA_DECAY * ema_(t-1) + (1 - EMA_DECAY) * v_t.
EMA_DECAY = 0.9


def label_key(value) -> str:
    """The summary.json key of a ``dataset.json`` label value (``2`` -> ``'2'``) or region (``[1, 2]`` ->
    ``'(1, 2)'``), as nnU-Net's evaluation writes it."""
    if isinstance(value, (list, tuple)):
        return str(tuple(int(v) for v in value))
    return str(int(value))


def ema_series(values: Iterable[float], decay: float = EMA_DECAY) -> list[float]:
    """nnU-Net's moving average of ``values``, one entry per value: ``ema_0 = v_0``,
    ``ema_t = decay * ema_(t-1) + (1 - decay) * v_t``; a NaN value propagates to every later entry."""
    out: list[float] = []
    for v in values:
        out.append(v if not out else decay * out[-1] + (1 - decay) * v)
    return out
