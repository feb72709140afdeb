"""Third stage of ``compare``: each row's reference, its differences to it and the paired statistics."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from nnunet_polydice.experiments.compare._model import Cell, Method, Missing, Row, Seeded
from nnunet_polydice.experiments.compare._pairing import holm_seeded, pair_seeded, pair_unseeded
from nnunet_polydice.experiments.statistics import seed_sd
from nnunet_polydice.integration.naming import schedule_suffix, setting_and_seed, split_schedule, unseeded_name

__all__ = ["reference_for", "link_references"]


def reference_for(trainer: str, reference: str, available: Sequence[str]) -> str | None:
    """The reference of a row: the reference with the row's schedule suffix if that has results,
    else ``reference`` itself if it has results, else None.

    ``nnUNetTrainer_30ep20it`` is the reference of ``nnUNetTrainerPolyDice_K2_eps0_30ep20it`` (with
    ``reference='nnUNetTrainer'``), and plain ``nnUNetTrainer`` that of ``nnUNetTrainerPolyDice_K2_eps0``.
    """
    base = split_schedule(reference)[0]
    candidates = [base + schedule_suffix(*split_schedule(trainer)[1:]), reference]
    for c in candidates:
        if c in available:
            return c
    return None


def _find_reference(row: Row, reference: str, by_kind: dict) -> tuple[Row | None, Row | None]:
    """``(the reference's row of the row's kind, else None; the reference's row of the other kind, else None)``:
    the reference with the row's schedule suffix if that has results, else the reference as given."""
    base = split_schedule(unseeded_name(reference))[0]
    candidates = [setting_and_seed(base + schedule_suffix(*split_schedule(row.setting)[1:]))[0],
                  setting_and_seed(unseeded_name(reference))[0]]
    kind = row.seeds is not None
    same = next((by_kind[(c, kind)] for c in candidates if (c, kind) in by_kind), None)
    other = next((by_kind[(c, not kind)] for c in candidates if (c, not kind) in by_kind), None)
    return same, other


def _other_kind_note(row: Row, other: Row) -> str:
    kind = row.seeds is not None
    return (f"the reference {other.trainer} has only {'unseeded' if kind else 'seeded'} runs: "
            f"a {'seeded' if kind else 'unseeded'} row is compared only with "
            f"{'seeded runs of the same seeds' if kind else 'unseeded runs'}, so no difference")


def _differences(row: Row, ref: Row, keys: Sequence[str]) -> None:
    """``row.diffs`` and ``row.diff_folds``: the mean over the runs both have, minus the reference's over them."""
    for key in keys:
        a, b = row.cells.get(key, Cell()).values, ref.cells.get(key, Cell()).values
        common = [k for k in a if k in b]
        row.diff_folds[key] = common
        row.diffs[key] = (statistics.fmean(a[k] for k in common) - statistics.fmean(b[k] for k in common)
                          if common else None)


def link_references(rows: Sequence[Row], keys: Sequence[str], method: Method, missing: list) -> None:
    """Set each row's reference and its differences to it: the reference's row of the same kind (seeded or
    not) with the row's schedule suffix if that has results, else the reference as given (:func:`reference_for`
    on settings); with only the other kind there, :attr:`Row.reference_note` says so. ``keys``: the class keys
    and the foreground mean."""
    by_kind = {(r.setting, r.seeds is not None): r for r in reversed(rows) if r.n_instances > 0}
    orphans = []
    for row in rows:
        if row.n_instances == 0:
            continue
        kind = row.seeds is not None
        ref, other = _find_reference(row, method.reference, by_kind)
        if ref is None:
            if other is None:
                orphans.append(row.trainer)
                continue
            row.reference_note = _other_kind_note(row, other)
            missing.append(Missing(row.trainer + (f" [{row.label}]" if kind else ""), None, row.reference_note))
            continue
        row.reference = ref.trainer
        _differences(row, ref, keys)
        if kind:
            for key in keys:
                row.seeded[key] = Seeded(seed_sd=seed_sd(row.cells.get(key, Cell()).pairs()))
        if row is not ref:
            (pair_seeded if kind else pair_unseeded)(row, ref, keys, method, missing)
    if orphans:
        missing.append(Missing(method.reference, None, f"reference trainer (or its variant with the same schedule) "
                                                       f"has no results; no differences for {', '.join(orphans)}"))
    holm_seeded(rows, keys, method)
