"""Second stage of ``compare``: the names of one setting, and the seeds of one setting, merged into one row."""

from __future__ import annotations

from collections.abc import Sequence

from nnunet_polydice.experiments.compare._model import Cell, Missing, Row
from nnunet_polydice.experiments.instance import Instance
from nnunet_polydice.integration.naming import seed_suffix, setting_and_seed

__all__ = ["merge_rows"]


def _take(row: Row, members: Sequence[tuple], setting: str, notes: list) -> None:
    """Fill the merged ``row`` from its members ``[(seed, run row)]``, the name that spells the setting out first;
    a run another member has already given is listed in ``notes``, not pooled."""
    ordered = sorted(members, key=lambda m: m[1].trainer != setting + seed_suffix(m[0]))
    taken: dict = {}
    for s, run in ordered:
        for f in run.folds:
            inst = Instance(f, s)
            if inst in taken:
                where = f"fold {f}" if s is None else f"fold {f}, seed {s}"
                notes.append(Missing(run.trainer, f, f"the same setting as {taken[inst]}, which has {where} too: "
                                                     f"that one is compared in the row {setting}, this one not"))
                continue
            taken[inst] = run.trainer
            row.cases[inst] = run.cases[Instance(f)]
            for k, cell in run.cells.items():
                value = cell.values.get(Instance(f))
                merged = row.cells.setdefault(k, Cell())
                if value is not None:
                    merged.values[inst] = value
    row.cases = dict(sorted(row.cases.items()))
    for cell in row.cells.values():
        cell.values = dict(sorted(cell.values.items()))


def merge_rows(runs: Sequence[Row], folds: Sequence[str], notes: list) -> list[Row]:
    """One row per setting and kind of run, in the order of the runs.

    A run (one results folder) is keyed by its setting and whether it is seeded. Unseeded: a setting trained
    under one name keeps that run's row unchanged; under several names (``nnUNetTrainerPolyDice`` and
    ``nnUNetTrainerPolyDice_K2_eps1``) one row named by the setting takes each fold from the name that
    spells the setting out, else from the first name that has it; a fold that another name has as well is
    listed in ``notes`` (not compared, not pooled: one value per fold, as for one name). Seeded: one row named
    by the setting whose instances are the (fold, seed) pairs of its runs, by the same rule per instance.
    """
    groups: dict = {}
    for run in runs:
        setting, s = setting_and_seed(run.trainer)
        groups.setdefault((setting, s is not None), []).append((s, run))
    rows = []
    for (setting, seeded), members in groups.items():
        if not seeded and len(members) == 1:
            row = members[0][1]
            row.setting, row.members = setting, [row.trainer]
            rows.append(row)
            continue
        row = Row(setting, setting=setting, members=[run.trainer for _, run in members],
                  seeds=sorted({s for s, _ in members}) if seeded else None)
        _take(row, members, setting, notes)
        if seeded and row.cases:  # the seeds with runs (a linked copy of another seed's folder adds none)
            row.seeds = sorted({inst.seed for inst in row.cases})
        present = {inst.fold for inst in row.cases}
        row.folds = [f for f in folds if f in present]
        if len(members) > 1:
            notes.append(Missing(setting, None, f"{', '.join(row.members)}: one setting, one row {setting}"
                                                + (f" ({row.label})" if seeded else "")))
        rows.append(row)
    return rows
