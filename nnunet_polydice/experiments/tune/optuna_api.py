"""The one adapter over what tune needs of Optuna beyond its public API: a study's storage, a trial's id in it,
and the fixed parameters of an enqueued (WAITING) trial. Every other module goes through these."""

from __future__ import annotations

__all__ = ["storage_of", "trial_id", "frozen_of", "fixed_params", "trial_state"]


def storage_of(study):
    """The storage object of an ``optuna.Study`` (``study._storage``)."""
    return study._storage


def trial_id(trial) -> int:
    """The storage's id of a ``Trial`` or ``FrozenTrial`` (``_trial_id``), not its number in the study."""
    return trial._trial_id


def frozen_of(study, trial):
    """The ``FrozenTrial`` of a running ``Trial``, fresh from the storage (its intermediate values as reported by
    any process)."""
    return storage_of(study).get_trial(trial_id(trial))


def trial_state(study, tid: int):
    """The state of the trial with storage id ``tid``, None when the storage has no such trial."""
    try:
        return storage_of(study).get_trial(tid).state
    except KeyError:
        return None


def fixed_params(frozen) -> dict:
    """The parameters of a trial: its own, or those it was enqueued with while it waits (the ``fixed_params``
    system attribute of ``study.enqueue_trial``)."""
    return frozen.params or frozen.system_attrs.get("fixed_params") or {}
