"""What state one nnU-Net training (a ``fold_<f>`` folder) is in: the one rule sweep, compare and tune share.

nnU-Net's layout: ``$nnUNet_results/<DatasetXXX_Name>/<trainer>__<plans>__<configuration>/fold_<f>/``.
A fold is **finished** when it holds ``checkpoint_final.pth`` *and* a readable
``validation/summary.json`` (a JSON object with nnU-Net's ``metric_per_case``, ``mean`` and
``foreground_mean``). Every state, in the order they are checked:

====================  =====================================================  ============================
state                 files                                                  what ``sweep`` does
====================  =====================================================  ============================
``skip``              checkpoint_final + readable summary.json (finished)    nothing
``foreign``           summary.json but no checkpoint at all (copied in)      nothing: never trained over
``pruned``            the marker ``polydice_pruned.json`` (``tune`` stopped  nothing (remove the marker
                      the run early; its checkpoint is kept)                 to let sweep continue it)
``validate``          checkpoint_final, summary.json missing or unreadable   ``nnUNetv2_train ... --val``
``continue``          checkpoint_latest or checkpoint_best, no final         ``nnUNetv2_train ... --c``
``fresh``             none of these                                          ``nnUNetv2_train ...``
====================  =====================================================  ============================

Only files are read (no network weights are loaded). The folder layout and the summary's reader are
:mod:`nnunet_polydice.experiments.layout`'s; the marker's name is
:data:`nnunet_polydice.integration.pruning.PRUNED_MARKER`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnunet_polydice.experiments.layout import (
    CHECKPOINT_BEST,
    CHECKPOINT_FINAL,
    CHECKPOINT_LATEST,
    SummaryError,
    read_summary_json,
    summary_path,
)
from nnunet_polydice.integration.pruning import PRUNED_MARKER

__all__ = ["STATES", "PRUNED_MARKER", "SummaryError", "FoldStatus", "read_summary_json", "fold_status",
           "fold_state"]

#: What a (trainer, fold) needs, in the order of the module docstring's table.
STATES = ("skip", "foreign", "pruned", "validate", "continue", "fresh")


@dataclass(frozen=True)
class FoldStatus:
    """The state of one fold folder, the reason in words, the summary when it is finished or foreign and
    readable, and why the summary.json could not be used otherwise (None when it could)."""

    state: str
    reason: str
    summary: dict | None = None
    summary_problem: str | None = None

    @property
    def finished(self) -> bool:
        return self.state == "skip"


def fold_status(folder) -> FoldStatus:
    """The :class:`FoldStatus` of a ``fold_<f>`` folder (see the module docstring for the rule)."""
    folder = Path(folder)
    final = (folder / CHECKPOINT_FINAL).is_file()
    started = (folder / CHECKPOINT_LATEST).is_file() or (folder / CHECKPOINT_BEST).is_file()
    summary, problem = None, None
    try:
        summary = read_summary_json(summary_path(folder))
    except SummaryError as err:
        problem = str(err)
    if final and summary is not None:
        return FoldStatus("skip", "finished", summary)
    if not final and not started and summary_path(folder).exists():
        return FoldStatus("foreign", "validation/summary.json without any checkpoint (copied from elsewhere?); "
                                     "it is never trained over", summary, problem)
    if (folder / PRUNED_MARKER).is_file():
        return FoldStatus("pruned", "stopped early by the tuner's pruner (checkpoint kept)")
    if final:
        return FoldStatus("validate", problem)
    if started:
        return FoldStatus("continue", "training started, not finished")
    return FoldStatus("fresh", "not trained")


def fold_state(folder) -> str:
    """Just the state name of :func:`fold_status`."""
    return fold_status(folder).state
