"""The budget: what a trial costs (the epochs it trained x the schedule's iterations), what the study has spent,
and the lock under which a trial reserves its worst case before it starts.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from nnunet_polydice.experiments.tune import record

__all__ = ["BudgetBusy", "remaining_epochs", "budget_lock", "trial_cost", "spent_iterations"]


class BudgetBusy(Exception):
    """The budget lock stayed held by a live worker for longer than the wait allows."""


def remaining_epochs(index: int, epochs: int, reported) -> int:
    """Epochs left of the run at instance ``index`` when the trial already has the steps ``reported`` (step
    ``index * epochs + epoch``: a dead worker's curve, inherited by the trial that continues it)."""
    return epochs - sum(index * epochs <= int(step) < (index + 1) * epochs for step in reported)


@contextlib.contextmanager
def budget_lock(folder: Path, timeout: float = 600.0, stale_after: float = 120.0):
    """An exclusive lock file (``O_CREAT | O_EXCL``) around reading the spent budget and reserving a trial's
    cost, so that two workers starting at once cannot both take the last of it. A lock older than
    ``stale_after`` seconds is a dead worker's and is removed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".polydice_budget.lock"
    start = time.monotonic()
    while True:
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            break
        except FileExistsError:
            try:
                if time.time() - path.stat().st_mtime > stale_after:
                    path.unlink(missing_ok=True)
                    continue
            except FileNotFoundError:
                continue
            if time.monotonic() - start > timeout:
                raise BudgetBusy(f"the budget lock {path} has been held for {timeout:.0f} s") from None
            time.sleep(0.05)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def trial_cost(t, iterations: int) -> int:
    epochs = record.epochs_trained(t)
    if epochs is not None:
        return int(epochs) * iterations
    # the epochs it reported itself (a trial that continues a dead worker's inherits that one's curve)
    reported = max(0, len(t.intermediate_values) - int(t.user_attrs.get(record.INHERITED_EPOCHS, 0)))
    if t.state.name == "RUNNING":  # what it reserved, or what it has reported so far
        return max(int(t.user_attrs.get(record.RESERVED, 0)), reported * iterations)
    return reported * iterations  # ended without saying (its worker died), or waiting (0)


def spent_iterations(study, iterations: int, exclude: int | None = None) -> int:
    """Training iterations of every trial of the study (a running one: what it reserved), ``exclude`` left out."""
    return sum(trial_cost(t, iterations) for t in study.get_trials(deepcopy=False) if t.number != exclude)
