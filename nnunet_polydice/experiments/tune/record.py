"""Every attribute a tune keeps on its trials and its study: the names (here only), typed readers and writers,
and why a trial failed (:class:`FailKind`, stored on the trial, never read back from a message's text).

A tune study is shared by workers on many hosts through its Optuna storage alone, so these attributes are its
protocol: a worker of one release must read what a worker of the same release wrote. Trials carry:

=====================  ======================================================================================
``trainer``            the setting's canonical trainer name (without ``_s<N>``)
``host``, ``pid``      the worker that runs it (takeover of dead workers)
``race_instances``     a racing trial's (fold, seed) instance keys; absent on a search trial
``enqueued_at``        when a command's plan enqueued it (a queued trial left over by a dead worker)
``resumes``            the number of the trial it continues (a dead or interrupted worker's)
``requeue_reason``     why it was enqueued again
``retries``            how often its setting was enqueued again after a death
``inherited_epochs``   how many of its intermediate values it inherited from the trial it continues
``reserved``           the training iterations reserved for it against the budget while it runs
``epochs_trained``     the epochs it trained (its cost, x the schedule's iterations)
``instance_values``    ``{instance key: validation Dice}`` of its finished runs
``reused_folds``       the instance keys it read from finished runs instead of training
``reason``             what happened to it, in words, for the tables
``fail_kind``          a :class:`FailKind` value, on every trial this package failed
=====================  ======================================================================================

The study carries its definition (what makes a rerun the same study), a unique id, the last budget, the race's
record and, for a replay, the grid it replays.
"""

from __future__ import annotations

import enum

__all__ = ["FailKind", "set_failure", "fail_kind", "is_failure", "is_racing", "race_keys", "continues",
           "epochs_trained", "instance_values", "reused", "reason", "race_record", "separated_entry",
           "write_race"]

# trial user attributes
TRAINER = "trainer"
HOST = "host"
PID = "pid"
RACE_INSTANCES = "race_instances"
ENQUEUED_AT = "enqueued_at"
RESUMES = "resumes"
REQUEUE_REASON = "requeue_reason"
RETRIES = "retries"
INHERITED_EPOCHS = "inherited_epochs"
RESERVED = "reserved"
EPOCHS_TRAINED = "epochs_trained"
INSTANCE_VALUES = "instance_values"
REUSED_FOLDS = "reused_folds"
REASON = "reason"
FAIL_KIND = "fail_kind"
#: User attributes a re-queued trial carries over from the trial it continues.
CARRIED = (RACE_INSTANCES,)

# study user attributes
DEFINITION = "polydice_definition"
UID = "polydice_uid"
BUDGET = "polydice_budget"
RACE = "polydice_race"
REPLAY = "polydice_replay"


class FailKind(str, enum.Enum):
    """Why this package failed a trial. Only :attr:`TRAINING` is a failure the command reports with exit
    status 1; the others are the tune's own bookkeeping."""

    BUSY = "busy"                # another live trial holds the run's lock
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM: the setting is enqueued again
    BUDGET = "budget"            # not started: it could cost more than the budget left
    TRAINING = "training"        # nnUNetv2_train failed, or its result cannot be used
    ABANDONED = "abandoned"      # the trial was failed meanwhile (taken for dead) and its setting enqueued again


def set_failure(trial, kind: FailKind, reason: str) -> None:
    """Record on a running ``trial`` why it fails (its kind, and the sentence the tables show)."""
    trial.set_user_attr(REASON, reason)
    trial.set_user_attr(FAIL_KIND, FailKind(kind).value)


def fail_kind(frozen) -> FailKind | None:
    """The :class:`FailKind` stored on a trial, None when it has none (not failed by this package: its worker died)."""
    value = frozen.user_attrs.get(FAIL_KIND)
    try:
        return None if value is None else FailKind(value)
    except ValueError:
        return None


def is_failure(frozen, continued: bool) -> bool:
    """Whether a FAILed trial is a failure to report: its training failed, or its worker died and nobody
    continues it (``continued``: a later trial ``resumes`` it)."""
    kind = fail_kind(frozen)
    return kind is FailKind.TRAINING or (kind is None and not continued)


def race_keys(frozen) -> list[str]:
    """The instance keys of a racing trial, ``[]`` for a search trial."""
    return list(frozen.user_attrs.get(RACE_INSTANCES) or [])


def is_racing(frozen) -> bool:
    return bool(frozen.user_attrs.get(RACE_INSTANCES))


def continues(frozen) -> int | None:
    """The number of the trial this one continues, None when it continues none."""
    value = frozen.user_attrs.get(RESUMES)
    return None if value is None else int(value)


def epochs_trained(frozen) -> int | None:
    value = frozen.user_attrs.get(EPOCHS_TRAINED)
    return None if value is None else int(value)


def instance_values(frozen) -> dict:
    """``{instance key: validation Dice}`` of the trial's finished runs."""
    return dict(frozen.user_attrs.get(INSTANCE_VALUES) or {})


def reused(frozen) -> list[str]:
    return list(frozen.user_attrs.get(REUSED_FOLDS) or [])


def reason(frozen) -> str:
    return str(frozen.user_attrs.get(REASON, ""))


# ------------------------------------------------------------------------------------- the race's record

def race_record(study) -> dict:
    """The race's record in the study: ``left`` (trainer -> how it was separated: ``n``, ``difference``, ``ci``,
    ``unit``, ``leader``), ``failed`` (trainer -> why its run failed) and ``stop`` (why the race stopped)."""
    kept = study.user_attrs.get(RACE)
    kept = kept if isinstance(kept, dict) else {}
    return {"left": dict(kept.get("left", {})), "failed": dict(kept.get("failed", {})),
            "stop": str(kept.get("stop") or "")}


def separated_entry(rival, leader: str) -> dict:
    """How a rival was separated from ``leader`` (a :class:`~nnunet_polydice.experiments.racing.Rival`)."""
    return {"n": rival.n, "difference": rival.difference, "ci": list(rival.ci), "unit": rival.unit, "leader": leader}


def write_race(study, left: dict, failed: dict, stop: str) -> None:
    study.set_user_attr(RACE, {"left": left, "failed": failed, "stop": stop})
