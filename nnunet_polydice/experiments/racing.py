"""Racing the best settings of ``tune`` on more (fold, seed) instances, and what a tuning run costs.

Pure functions of numbers and names (no Optuna, no nnU-Net, no files), except :func:`run_race`, which
drives the loop through two callables it is given (read the finished runs, train some).

**Instances.** A setting's instances are ``(fold, seed)`` pairs, each one seeded nnU-Net training (or
``(fold, None)``, one unseeded training per fold, without ``--seeds``). :func:`instance_order` puts them
*seed-major*: every fold of the first seed, then every fold of the second, ... (``sweep --seeds`` orders its
runs the same way). A search trial trains the first block (every fold, first seed), so a trial's value is the
mean over the folds as before; racing adds one instance at a time in this order, so all contenders get the
same ``(fold, seed)`` pairs (common random numbers) and every prefix of the order has every fold.

**The racing rule** (SMAC's intensification and F-race in one paired form), :func:`race_step`:

1. ``n`` = the longest prefix of the order that every contender has finished (:func:`common_prefix`);
   comparisons use exactly these ``n`` instances, so a winner never has fewer instances than a rival it beat.
2. The leader has the highest mean over them (ties: the setting listed first).
3. Once every fold among the ``n`` instances has at least two seeds (:func:`seeds_per_fold_ok`: only then
   does the interval see run-to-run noise), each rival whose paired 95 % interval of *leader - rival* lies
   above 0 (:func:`paired_ci`, :func:`statistics.hierarchical_bootstrap_ci` over (fold, seed) x cases) leaves
   the race.
4. Stop when one contender is left (``separated``), when the order is used up (``exhausted``), or when the
   next instance for the contenders that lack it would cost more than the budget left (``budget``);
   otherwise train instance ``n`` (0-based) for those contenders and repeat.

The report (:class:`RaceResult`) names the leader with its interval against each rival, the settings it
could not be told apart from, and why the race stopped. The intervals are recomputed at every step and the
leader is compared with several rivals: the 95 % is per comparison, not for the whole race.

**Budget** (:func:`parse_budget`, :func:`grid_iterations`, :func:`run_iterations`): training iterations,
``epochs x iterations`` per run; a pruned run costs the epochs it trained, a reused finished run nothing.
"""

from __future__ import annotations

import math
import statistics as pystats
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from nnunet_polydice.experiments import statistics
from nnunet_polydice.experiments.instance import Instance
from nnunet_polydice.integration.naming import capped_int

__all__ = ["DEFAULT_BUDGET", "default_budget", "LEVEL", "SEPARATED", "EXHAUSTED", "BUDGET", "instance_order",
           "search_block", "run_iterations", "grid_iterations", "parse_budget",
           "common_prefix", "seeds_per_fold_ok", "paired_ci", "Rival", "RaceStep", "race_step", "RaceResult",
           "run_race", "pooled_seed_sd"]

#: ``--budget``'s default (:func:`default_budget`): half of the full grid over the requested folds and seeds, and
#: never less than one search trial of every setting.
DEFAULT_BUDGET = "50%"
#: Confidence level of the paired intervals of the race.
LEVEL = 0.95
SEPARATED, EXHAUSTED, BUDGET = "separated", "exhausted", "budget"


# ------------------------------------------------------------------------------------------- instances

def instance_order(folds: Sequence[str], seeds: Sequence[int | None]) -> list[Instance]:
    """Seed-major: ``[Instance(f, s) for s in seeds for f in folds]``.

    >>> [i.key for i in instance_order(["0", "1"], [0, 1])]
    ['0:s0', '1:s0', '0:s1', '1:s1']
    """
    return [Instance(f, s) for s in seeds for f in folds]


def search_block(folds: Sequence[str], seeds: Sequence[int | None]) -> list[Instance]:
    """The instances a search trial trains: every fold with the first seed."""
    return instance_order(folds, list(seeds)[:1])


# ------------------------------------------------------------------------------------------- budget

def run_iterations(epochs: int, iterations: int) -> int:
    """Training iterations of one full run: epochs x iterations per epoch."""
    return int(epochs) * int(iterations)


def grid_iterations(n_settings: int, n_folds: int, n_seeds: int, epochs: int, iterations: int) -> int:
    """Training iterations of the full grid: every setting on every (fold, seed), trained to the end."""
    return int(n_settings) * int(n_folds) * max(1, int(n_seeds)) * run_iterations(epochs, iterations)


def default_budget(grid: int, n_settings: int, n_folds: int, run: int) -> int:
    """``max(grid // 2, n_settings x n_folds x run)``, at most ``grid``.

    With S seeds a search trial of every setting costs 1/S of the grid (a third with three seeds), so half the
    grid pays for the whole search and leaves the rest for racing; without seeds the search alone is the grid,
    and the default is the grid (``tune`` as before: every setting at most once).
    """
    return min(int(grid), max(int(grid) // 2, int(n_settings) * int(n_folds) * int(run)))


def parse_budget(text, grid: int, run: int, option: str = "--budget") -> int:
    """``--budget`` as training iterations.

    ``N`` or ``Nit`` (an integer): N training iterations. ``X%`` (0 < X <= 100) or a decimal fraction with a
    point (``0.25``, ``1.0``): that share of ``grid``, rounded down.

    Raises:
        ValueError: for text that is neither (exponent notation and other scripts' digits included), a budget of
            0 or less, one above the grid, or one below the cost of one run (nothing could be trained).
    """
    raw = str(text).strip()
    word = raw.lower()
    example = f"e.g. 25%, 0.25 or {max(run, grid // 4)} (iterations)"
    if "e" in word.replace("it", "") and any(c.isdigit() for c in word):
        raise ValueError(f"{option} {raw!r}: a number in exponent notation could be read as iterations or as a "
                         f"share; write the iterations as an integer ({grid // 4}) or the share with a point or % "
                         f"({example}).")
    try:
        if not word.isascii():  # Python's float() and int() read other scripts' digits ('１２' as 12)
            raise ValueError
        if word.endswith("%"):
            share = float(word[:-1]) / 100
            kind = "share"
        elif "." in word:
            share = float(word)
            kind = "share"
        else:
            digits = word[:-2] if word.endswith("it") else word
            value = capped_int(digits, grid) if digits.isdigit() else int(digits)
            kind = "iterations"
    except ValueError:
        raise ValueError(f"{option} {raw!r} is neither a number of training iterations nor a share of the grid "
                         f"({example}).") from None
    if kind == "share":
        if not math.isfinite(share) or share <= 0:
            raise ValueError(f"{option} {raw!r}: a share of the grid must be above 0 ({example}).")
        if share > 1:
            raise ValueError(f"{option} {raw!r} is more than the full grid (100 %, {grid} iterations); tune never "
                             f"needs more than the grid.")
        value = int(share * grid + 1e-9)
    if value <= 0:
        raise ValueError(f"{option} {raw!r}: the budget must be above 0 ({example}).")
    if value > grid:
        raise ValueError(f"{option} {raw!r} is more than the full grid ({grid} training iterations); give at most "
                         f"{grid} or 100%.")
    if value < run:
        raise ValueError(f"{option} {raw!r} is {value} training iterations, less than one run ({run}); nothing could "
                         f"be trained. Give at least {run}.")
    return value


# ------------------------------------------------------------------------------------------- the rule

def common_prefix(values: Mapping[str, Mapping], order: Sequence[Instance]) -> int:
    """The longest n such that every setting of ``values`` has a value for each of ``order[:n]``."""
    n = 0
    for inst in order:
        if all(inst in v for v in values.values()):
            n += 1
        else:
            break
    return n


def seeds_per_fold_ok(instances: Sequence[Instance], least: int = 2) -> bool:
    """Whether every fold among ``instances`` has at least ``least`` seeds (False without instances)."""
    counts: dict[str, int] = {}
    for fold, _ in instances:
        counts[fold] = counts.get(fold, 0) + 1
    return bool(counts) and min(counts.values()) >= least


def paired_ci(a: Mapping, b: Mapping, instances: Sequence[Instance], a_cases: Mapping | None = None,
              b_cases: Mapping | None = None, level: float = LEVEL, resamples: int = statistics.DEFAULT_BOOTSTRAP,
              seed: int = statistics.DEFAULT_SEED) -> tuple[float, tuple[float, float], str]:
    """Mean and confidence interval of ``a - b`` paired on ``instances``: ``(mean, (low, high), unit)``.

    With per-case values of both on every instance (``{instance: {case: value}}``) the differences are
    per (fold, seed, case) and the interval is :func:`statistics.hierarchical_bootstrap_ci` (seeds and cases
    crossed, folds fixed), ``unit`` ``'cases'``; else each instance is one value (its validation Dice) and
    the same bootstrap resamples seeds within folds, ``unit`` ``'instances'``. With one seed per fold the
    instance interval has width 0: it sees no run-to-run noise (see :func:`seeds_per_fold_ok`).
    """
    use_cases = a_cases is not None and b_cases is not None and all(
        a_cases.get(i) and b_cases.get(i) and set(a_cases[i]) & set(b_cases[i]) for i in instances)
    if use_cases:
        diffs = {i: {c: a_cases[i][c] - b_cases[i][c] for c in sorted(set(a_cases[i]) & set(b_cases[i]))}
                 for i in instances}
        unit = "cases"
    else:
        diffs = {i: {"run": a[i] - b[i]} for i in instances}
        unit = "instances"
    ci = statistics.hierarchical_bootstrap_ci(diffs, resamples, seed, level)
    mean = pystats.fmean(a[i] - b[i] for i in instances)
    return mean, (float(ci[0]), float(ci[1])), unit


@dataclass(frozen=True)
class Rival:
    """The leader against one rival on the same instances."""

    setting: str
    n: int
    difference: float  # mean over the n instances of leader - rival
    ci: tuple[float, float]
    unit: str  # 'cases' or 'instances'

    @property
    def separated(self) -> bool:
        return self.ci[0] > 0


@dataclass(frozen=True)
class RaceStep:
    """One look at the race: the leader on the common instances, its rivals, and what to do next."""

    n: int
    leader: str
    means: dict
    rivals: tuple[Rival, ...]
    seed_noise_seen: bool  # every fold of the n instances has two seeds or more
    stop: str | None  # SEPARATED, EXHAUSTED, BUDGET or None
    next_instance: Instance | None
    to_train: tuple[str, ...]

    @property
    def dropped(self) -> list[str]:
        return [r.setting for r in self.rivals if self.seed_noise_seen and r.separated]

    @property
    def remaining(self) -> list[str]:
        return [self.leader] + [r.setting for r in self.rivals if r.setting not in self.dropped]


def race_step(values: Mapping[str, Mapping], order: Sequence[Instance], *, cases: Mapping | None = None,
              budget_left: int | None = None, run_cost: int = 0, level: float = LEVEL,
              resamples: int = statistics.DEFAULT_BOOTSTRAP) -> RaceStep:
    """Steps 1-4 of the rule (module docstring) for the contenders ``values`` = ``{setting: {instance: value}}``
    (finished runs; insertion order breaks ties). ``cases``: ``{setting: {instance: {case: value}}}``.

    Raises:
        ValueError: without contenders, or when a contender lacks the first instance.
    """
    if not values:
        raise ValueError("a race needs at least one contender.")
    n = common_prefix(values, order)
    if n == 0:
        raise ValueError(f"every contender needs a value for the first instance {order[0]} before a race.")
    used = list(order[:n])
    means = {s: pystats.fmean(v[i] for i in used) for s, v in values.items()}
    leader = max(means, key=lambda s: (means[s], -list(values).index(s)))
    cases = cases or {}
    rivals = []
    for s in values:
        if s == leader:
            continue
        diff, ci, unit = paired_ci(values[leader], values[s], used, cases.get(leader), cases.get(s), level, resamples)
        rivals.append(Rival(s, n, diff, ci, unit))
    seen = seeds_per_fold_ok(used)
    step = RaceStep(n, leader, means, tuple(rivals), seen, None, None, ())
    remaining = step.remaining
    if len(remaining) == 1:
        return _with(step, SEPARATED)
    if n == len(order):
        return _with(step, EXHAUSTED)
    nxt = order[n]
    need = tuple(s for s in remaining if nxt not in values[s])
    if budget_left is not None and len(need) * run_cost > budget_left:
        return _with(step, BUDGET, nxt, need)
    return _with(step, None, nxt, need)


def _with(step: RaceStep, stop, nxt=None, need=()) -> RaceStep:
    return RaceStep(step.n, step.leader, step.means, step.rivals, step.seed_noise_seen, stop, nxt, tuple(need))


# ------------------------------------------------------------------------------------------- the loop

@dataclass
class RaceResult:
    """The outcome: the last look, every rival that left and at which look, and the settings that failed."""

    last: RaceStep | None
    left: dict = field(default_factory=dict)  # setting -> Rival (the look at which it was separated)
    failed: dict = field(default_factory=dict)  # setting -> reason
    rounds: int = 0
    note: str = ""

    @property
    def winner(self) -> str | None:
        return None if self.last is None else self.last.leader

    @property
    def indistinguishable(self) -> list[str]:
        """The leader and every contender it could not be told apart from."""
        return [] if self.last is None else self.last.remaining

    @property
    def separated(self) -> bool:
        return self.last is not None and len(self.last.remaining) == 1


def run_race(contenders: Sequence[str], order: Sequence[Instance], *,
             read: Callable[[Sequence[str]], tuple[dict, dict]],
             train: Callable[[Sequence[str], Instance], dict],
             budget_left: Callable[[], int], run_cost: int, echo: Callable[[str], None] = lambda s: None,
             level: float = LEVEL, resamples: int = statistics.DEFAULT_BOOTSTRAP) -> RaceResult:
    """Race ``contenders`` (in order; the first wins ties) over ``order``.

    ``read(settings)`` returns ``(values, cases)`` of their finished runs (``{setting: {instance: value}}``,
    ``{setting: {instance: {case: value}}}``); ``train(settings, instance)`` trains that instance for each and
    returns ``{setting: reason}`` for those that failed (they leave the race); ``budget_left()`` is what the
    budget still allows, in iterations.
    """
    result = RaceResult(None)
    active = list(contenders)
    if len(active) < 2:
        result.note = "fewer than two settings finished their search trial: nothing to race"
        if active:
            values, cases = read(active)
            if values.get(active[0]) and common_prefix(values, order):
                result.last = race_step(values, order, cases=cases, level=level, resamples=resamples)
        return result
    while True:
        values, cases = read(active)
        missing = [s for s in active if order[0] not in values.get(s, {})]
        for s in missing:
            result.failed[s] = f"no finished run on {Instance.of(order[0]).key}"
        active = [s for s in active if s not in missing]
        if not active:
            return result
        step = race_step({s: values[s] for s in active}, order, cases=cases, budget_left=budget_left(),
                         run_cost=run_cost, level=level, resamples=resamples)
        result.last = step
        for s in step.dropped:
            result.left[s] = next(r for r in step.rivals if r.setting == s)
            echo(f"race: {s} leaves (leader {step.leader} better by {result.left[s].difference:+.4f}, "
                 f"{LEVEL:.0%} CI {result.left[s].ci[0]:+.4f}..{result.left[s].ci[1]:+.4f} on {step.n} instances)")
        active = step.remaining
        if step.stop is not None:
            return result
        echo(f"race: {len(active)} contenders on {step.n} instances, leader {step.leader}; next "
             f"{Instance.of(step.next_instance).key} for {len(step.to_train)}")
        result.rounds += 1
        for s, reason in train(step.to_train, step.next_instance).items():
            result.failed[s] = reason
        active = [s for s in active if s not in result.failed]


def pooled_seed_sd(values: Mapping[str, Mapping]) -> tuple[float | None, int]:
    """The run-to-run sd pooled over settings (within (setting, fold), over seeds), and its degrees of freedom
    (:func:`statistics.pooled_sd` with one group per (setting, fold))::

        sd = sqrt( sum_s sum_f sum_seed (x - mean_sf)^2 / sum_s sum_f (n_sf - 1) )

    None (and 0) when no setting has two seeds on one fold.
    """
    groups: dict[str, list[float]] = {}
    for setting, per in values.items():
        for (fold, _), v in per.items():
            groups.setdefault(f"{setting} fold {fold}", []).append(float(v))
    return statistics.pooled_sd(groups)
