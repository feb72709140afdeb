"""The study's outcome, computed (no text): every trial as a row, every tried setting over its finished runs,
the race as it stands, and the cost against the budget and the full grid (:class:`Summary`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from nnunet_polydice.experiments import racing
from nnunet_polydice.experiments.sweep import with_schedule
from nnunet_polydice.experiments.tune import record
from nnunet_polydice.experiments.tune.budget import spent_iterations
from nnunet_polydice.experiments.tune.race import race_contenders
from nnunet_polydice.experiments.tune.setup import TuneSetup
from nnunet_polydice.experiments.tune.space import SearchSpace, Setting
from nnunet_polydice.experiments.tune.study import setting_of
from nnunet_polydice.experiments.tune.values import finished_values
from nnunet_polydice.integration.naming import setting_and_seed

__all__ = ["TrialRow", "trial_rows", "SettingRow", "Summary", "summarize"]


@dataclass
class TrialRow:
    """One trial as the tables show it."""

    number: int
    state: str
    setting: Setting | None
    value: float | None
    curve: dict = field(default_factory=dict)
    epochs_trained: int = 0
    reused_folds: list = field(default_factory=list)
    reason: str = ""
    instances: list = field(default_factory=list)  # instance keys it trained or reused ('0', '0:s1')
    phase: str = "search"  # or 'race'
    failure: bool = False  # a failure to report (:func:`record.is_failure`), not the tune's bookkeeping

    @property
    def trainer(self) -> str:
        return self.setting.trainer if self.setting else ""

    @property
    def last(self) -> tuple[int | None, float | None]:
        """(step, value) of the last report."""
        if not self.curve:
            return None, None
        step = max(self.curve)
        return step, self.curve[step]


def trial_rows(study, space: SearchSpace) -> list[TrialRow]:
    """Every trial of the study, by number (from the storage; fresh intermediate values)."""
    rows = []
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    continued = {record.continues(t): t for t in trials if record.continues(t) is not None}
    for t in trials:
        epochs = record.epochs_trained(t)
        reason = record.reason(t)
        later = continued.get(t.number)
        if t.state.name == "FAIL" and not reason:  # its worker died without a word: say what became of it
            reason = f"{later.user_attrs.get(record.REQUEUE_REASON, 'its worker was lost')}; continued as trial " \
                     f"{later.number}" if later is not None else "its worker was lost; not enqueued again"
        rows.append(TrialRow(number=t.number, state=t.state.name, setting=setting_of(space, t),
                             value=t.value if t.state.name == "COMPLETE" else None,
                             curve={int(k): float(v) for k, v in t.intermediate_values.items()},
                             epochs_trained=len(t.intermediate_values) if epochs is None else epochs,
                             reused_folds=record.reused(t), reason=reason,
                             instances=record.race_keys(t) or list(record.instance_values(t)),
                             phase="race" if record.is_racing(t) else "search",
                             failure=t.state.name == "FAIL" and record.is_failure(t, later is not None)))
    return rows


@dataclass
class SettingRow:
    """One setting over its finished (fold, seed) runs, and where the race left it."""

    setting: Setting
    values: dict  # {instance: validation Dice}
    status: str

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values.values()) if self.values else None

    @property
    def seed_sd(self) -> float | None:
        from nnunet_polydice.experiments.statistics import seed_sd

        return seed_sd(self.values) if self.values else None


@dataclass
class Summary:
    """The study's outcome and its cost against the budget and the full grid."""

    setup: TuneSetup
    rows: list
    best: TrialRow | None
    iterations_spent: int
    full_grid_iterations: int
    budget: int | None = None
    sampler_note: str = ""
    look: racing.RaceStep | None = None  # the race now, over the contenders' common instances (seeded studies)
    settings: list = field(default_factory=list)  # SettingRow, seeded studies
    left: dict = field(default_factory=dict)  # trainer -> the record of the look that separated it
    stop: str = ""
    noise: tuple = (None, 0)  # pooled run-to-run sd and its degrees of freedom
    untried: list = field(default_factory=list)  # trainers whose trials are queued, running or failed, no result

    @property
    def reused(self) -> list:
        return [r for r in self.rows if r.reused_folds]

    @property
    def winner(self) -> str | None:
        """The trainer name to use next: the race's leader (seeded) or the best trial."""
        if self.look is not None:
            return self.look.leader
        return self.best.trainer if self.best else None

    def default_among(self, trainers: Sequence[str]) -> str | None:
        """The trainer of ``trainers`` that is its family's default setting, if any."""
        for name in trainers:
            setting = self.setup.space.by_trainer(name)
            if setting is None:
                continue
            space = self.setup.space
            family_default = with_schedule(setting.family, space.epochs, space.iterations)
            if setting_and_seed(family_default)[0] == setting_and_seed(name)[0]:
                return name
        return None


def summarize(study, setup: TuneSetup, runner, sampler_note: str = "") -> Summary:
    """The :class:`Summary` of the study as its storage and ``runner`` (the finished runs) hold it now."""
    rows = trial_rows(study, setup.space)
    complete = [r for r in rows if r.state == "COMPLETE" and r.value is not None and r.phase == "search"]
    best = max(complete, key=lambda r: r.value) if complete else None
    spent = spent_iterations(study, setup.iterations)
    summary = Summary(setup, rows, best, spent, setup.grid_iterations, setup.budget, sampler_note)
    if not setup.seeded:
        return summary
    kept = record.race_record(study)
    summary.left, summary.stop = kept["left"], kept["stop"]
    tried = {r.setting for r in rows if r.setting is not None}
    values, cases = finished_values(setup, runner, [s for s in setup.space.settings if s in tried])
    summary.noise = racing.pooled_seed_sd(values)
    contenders = {s.trainer: values[s.trainer] for s in race_contenders(study, setup) if values[s.trainer]}
    if contenders and racing.common_prefix(contenders, setup.instances):
        summary.look = racing.race_step(contenders, setup.instances, cases=cases)
    finished = {r.setting for r in rows if r.state in ("COMPLETE", "PRUNED")}
    summary.untried = [s.trainer for s in setup.space.settings if s in tried and s not in finished
                       and s.trainer not in contenders and s.trainer not in summary.left]
    failed = kept["failed"]
    for s in setup.space.settings:
        if s not in tried:
            continue
        look = summary.look
        if look is not None and s.trainer == look.leader:
            status = "winner" if len(look.remaining) == 1 and (look.rivals or summary.left) else "leader"
        elif look is not None and s.trainer in look.remaining:
            r = next(r for r in look.rivals if r.setting == s.trainer)
            status = f"not told apart: leader {r.difference:+.4f} [{r.ci[0]:+.4f}, {r.ci[1]:+.4f}] over {r.n} runs"
        elif s.trainer in summary.left:
            r = summary.left[s.trainer]
            status = (f"separated after {r['n']} runs: leader {r['difference']:+.4f} "
                      f"[{r['ci'][0]:+.4f}, {r['ci'][1]:+.4f}]")
        elif look is not None and any(r.setting == s.trainer for r in look.rivals):
            r = next(r for r in look.rivals if r.setting == s.trainer)
            status = f"separated: leader {r.difference:+.4f} [{r.ci[0]:+.4f}, {r.ci[1]:+.4f}] over {r.n} runs"
        elif s.trainer in failed:
            status = f"failed: {failed[s.trainer]}"
        else:
            states = {r.state for r in rows if r.setting == s}
            status = "pruned in the search" if "PRUNED" in states else "no finished search trial"
        summary.settings.append(SettingRow(s, values[s.trainer], status))
    return summary
