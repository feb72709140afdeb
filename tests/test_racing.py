"""The racing rule and the budget arithmetic of ``tune`` (nnunet_polydice.experiments.racing), on hand-made
numbers whose expected outcomes are worked out in the comments."""

from __future__ import annotations

import math

import pytest

from nnunet_polydice.experiments import racing
from nnunet_polydice.experiments.instance import Instance

ORDER_1F3S = racing.instance_order(["0"], [0, 1, 2])  # [('0', 0), ('0', 1), ('0', 2)]


# ------------------------------------------------------------------------------------------- instances

def test_instances_are_seed_major_and_the_search_block_is_the_first_seed():
    assert racing.instance_order(["0", "1"], [0, 1]) == [("0", 0), ("1", 0), ("0", 1), ("1", 1)]
    assert racing.search_block(["0", "1"], [3, 4]) == [("0", 3), ("1", 3)]
    assert racing.instance_order(["2"], [None]) == [("2", None)]
    assert all(isinstance(i, Instance) for i in racing.instance_order(["0", "1"], [0, None]))


# ------------------------------------------------------------------------------------------- budget

def test_grid_and_run_iterations():
    # 8 settings x 2 folds x 3 seeds x 30 epochs x 40 iterations = 48 runs of 1200
    assert racing.run_iterations(30, 40) == 1200
    assert racing.grid_iterations(8, 2, 3, 30, 40) == 57600
    assert racing.grid_iterations(8, 2, 0, 30, 40) == 19200  # no seeds: one run per fold


def test_default_budget():
    # 8 settings, 1 fold, 3 seeds, runs of 10: grid 240; half (120) pays for the search (80)
    assert racing.default_budget(240, 8, 1, 10) == 120
    # no seeds: the search alone is the grid (80), more than half of it
    assert racing.default_budget(80, 8, 1, 10) == 80
    # one setting, one run: the grid
    assert racing.default_budget(4, 1, 1, 4) == 4


@pytest.mark.parametrize("text, expected", [
    ("25%", 250), ("0.25", 250), ("100%", 1000), ("1.0", 1000), ("500", 500), ("500it", 500), (" 40 ", 40),
    ("33.3%", 333), ("10", 10),
])
def test_budget_words(text, expected):
    assert racing.parse_budget(text, grid=1000, run=10) == expected


@pytest.mark.parametrize("text, message", [
    ("0", "the budget must be above 0"),
    ("-5", "the budget must be above 0"),
    ("0%", "a share of the grid must be above 0"),
    ("-0.5", "a share of the grid must be above 0"),
    ("1500", "is more than the full grid (1000 training iterations)"),
    ("150%", "is more than the full grid (100 %, 1000 iterations)"),
    ("1.5", "is more than the full grid"),
    ("abc", "is neither a number of training iterations nor a share of the grid"),
    ("", "is neither"),
    ("nan", "is neither a number"),
    ("1e400", "a number in exponent notation could be read as iterations or as a share"),
    ("1e3", "write the iterations as an integer (250) or the share with a point or %"),  # 1000 < grid, not 100 %
    ("2.5E-1", "exponent notation"),
    ("\uff15\uff10\uff10", "is neither a number of training iterations nor a share"),  # fullwidth 500
    ("\u0665\u0660%", "is neither a number"),
    ("9" * 5000, "is more than the full grid (1000 training iterations)"),
    ("5", "is 5 training iterations, less than one run (10)"),
    ("0.5%", "is 5 training iterations, less than one run (10)"),
])
def test_budget_refusals(text, message):
    with pytest.raises(ValueError, match="--budget") as err:
        racing.parse_budget(text, grid=1000, run=10)
    assert message in str(err.value)


# ------------------------------------------------------------------------------------------- the rule

def test_common_prefix_and_seeds_per_fold():
    order = racing.instance_order(["0", "1"], [0, 1])
    values = {"A": dict.fromkeys(order, 0.5), "B": {order[0]: 0.4, order[1]: 0.4, order[3]: 0.4}}
    assert racing.common_prefix(values, order) == 2  # B lacks ('0', 1)
    assert not racing.seeds_per_fold_ok(order[:3])  # fold 1 has one seed
    assert racing.seeds_per_fold_ok(order) and not racing.seeds_per_fold_ok([])


def test_a_constant_gap_separates_once_seed_noise_is_seen():
    """A = 0.8, 0.7, 0.9 and B = 0.5, 0.4, 0.6 on seeds 0, 1, 2 of one fold: every paired difference is 0.3,
    so every bootstrap mean is 0.3 and the CI is [0.3, 0.3], above 0: B leaves, A wins."""
    A = dict(zip(ORDER_1F3S, (0.8, 0.7, 0.9)))
    B = dict(zip(ORDER_1F3S, (0.5, 0.4, 0.6)))
    step = racing.race_step({"B": B, "A": A}, ORDER_1F3S)
    assert step.n == 3 and step.leader == "A" and step.means == pytest.approx({"A": 0.8, "B": 0.5})
    (rival,) = step.rivals
    assert rival.setting == "B" and rival.difference == pytest.approx(0.3) and rival.unit == "instances"
    assert rival.ci == pytest.approx((0.3, 0.3))
    assert step.dropped == ["B"] and step.remaining == ["A"] and step.stop == racing.SEPARATED


def test_no_separation_on_one_seed_per_fold():
    """The same gap on seed 0 alone: the instance CI has width 0 (no run-to-run noise seen), so nothing leaves;
    the next instance (fold 0, seed 1) goes to both."""
    A, B = {ORDER_1F3S[0]: 0.8}, {ORDER_1F3S[0]: 0.5}
    step = racing.race_step({"A": A, "B": B}, ORDER_1F3S, budget_left=100, run_cost=10)
    assert not step.seed_noise_seen and step.dropped == [] and step.remaining == ["A", "B"]
    assert step.stop is None and step.next_instance == ("0", 1) and step.to_train == ("A", "B")


def test_noisy_pair_is_not_told_apart_and_the_order_runs_out():
    """A = 0.8, 0.6 and B = 0.7, 0.75 on two seeds: means 0.7 and 0.725, B leads. B - A = -0.1 and +0.15;
    the bootstrap draws two seeds with replacement: means -0.1, 0.025, 0.025, 0.15, so the CI spans 0."""
    order = ORDER_1F3S[:2]
    step = racing.race_step({"A": dict(zip(order, (0.8, 0.6))), "B": dict(zip(order, (0.7, 0.75)))}, order)
    assert step.leader == "B" and step.rivals[0].difference == pytest.approx(0.025)
    low, high = step.rivals[0].ci
    assert low == pytest.approx(-0.1) and high == pytest.approx(0.15)
    assert step.remaining == ["B", "A"] and step.stop == racing.EXHAUSTED


def test_ties_go_to_the_first_setting_and_the_budget_stops_a_round():
    """Three contenders with equal means: the first listed leads. The next round trains 3 runs of 10 iterations;
    with 25 left it is not started."""
    values = {s: {ORDER_1F3S[0]: 0.5} for s in ("C", "A", "B")}
    step = racing.race_step(values, ORDER_1F3S, budget_left=25, run_cost=10)
    assert step.leader == "C" and step.stop == racing.BUDGET and step.to_train == ("C", "A", "B")
    assert racing.race_step(values, ORDER_1F3S, budget_left=30, run_cost=10).stop is None


def test_comparisons_use_only_the_runs_every_contender_has():
    """B has three finished runs (from a sweep), A one: they are compared on the one both have, so a winner
    never has fewer runs than a rival it beat; only A trains the next instance."""
    A = {ORDER_1F3S[0]: 0.6}
    B = dict(zip(ORDER_1F3S, (0.5, 0.9, 0.9)))
    step = racing.race_step({"A": A, "B": B}, ORDER_1F3S, budget_left=100, run_cost=10)
    assert step.n == 1 and step.leader == "A" and step.means == {"A": 0.6, "B": 0.5}
    assert step.to_train == ("A",)


def test_per_case_differences_make_the_interval():
    """With per-case values the CI is over (seed, case): cases x1 and x2 differ by 0.1 and 0.3 on both seeds;
    a resample draws seeds and (once per fold) cases, so its mean lies in [0.1, 0.3] and both ends are reached."""
    order = ORDER_1F3S[:2]
    a = {i: {"x1": 0.6, "x2": 0.8} for i in order}
    b = {i: {"x1": 0.5, "x2": 0.5} for i in order}
    mean, ci, unit = racing.paired_ci(dict.fromkeys(order, 0.7), dict.fromkeys(order, 0.5), order, a, b)
    assert unit == "cases" and mean == pytest.approx(0.2)
    assert ci == pytest.approx((0.1, 0.3))
    # a case missing on one side on one instance: fall back to the runs
    assert racing.paired_ci(dict.fromkeys(order, 0.7), dict.fromkeys(order, 0.5), order, a,
                            {order[0]: b[order[0]]})[2] == "instances"


def test_race_step_refusals():
    with pytest.raises(ValueError, match="at least one contender"):
        racing.race_step({}, ORDER_1F3S)
    with pytest.raises(ValueError, match="needs a value for the first instance"):
        racing.race_step({"A": {ORDER_1F3S[1]: 0.5}}, ORDER_1F3S)


# ------------------------------------------------------------------------------------------- the loop

def _fake_runs(truth):
    """read/train over a dict of 'true' values; records every (setting, instance) trained."""
    done = {s: {} for s in truth}
    trained = []

    def read(names):
        return {n: dict(done[n]) for n in names}, {}

    def train(names, inst):
        for n in names:
            trained.append((n, inst))
            done[n][inst] = truth[n][inst]
        return {}

    return done, trained, read, train


def test_run_race_gives_more_seeds_only_while_needed():
    """Search: A, B, C on seed 0. Round 1 (seed 1) for all three; then C (always 0.3 below A) leaves, A and B
    (differences +0.05 and -0.05) stay; round 2 (seed 2) for A and B; the order is used up: A leads, B is not
    told apart. Every (setting, instance) is trained once."""
    truth = {"A": dict(zip(ORDER_1F3S, (0.80, 0.70, 0.75))),
             "B": dict(zip(ORDER_1F3S, (0.75, 0.75, 0.70))),
             "C": dict(zip(ORDER_1F3S, (0.50, 0.40, 0.45)))}
    done, trained, read, train = _fake_runs(truth)
    for s in truth:
        done[s][ORDER_1F3S[0]] = truth[s][ORDER_1F3S[0]]
    lines = []
    result = racing.run_race(["A", "B", "C"], ORDER_1F3S, read=read, train=train, budget_left=lambda: 10**6,
                             run_cost=10, echo=lines.append)
    assert trained == [("A", ("0", 1)), ("B", ("0", 1)), ("C", ("0", 1)), ("A", ("0", 2)), ("B", ("0", 2))]
    assert len(set(trained)) == len(trained)
    assert list(result.left) == ["C"] and result.left["C"].n == 2 and result.left["C"].ci[0] > 0
    assert result.winner == "A" and result.indistinguishable == ["A", "B"] and not result.separated
    assert result.last.stop == racing.EXHAUSTED and result.rounds == 2
    assert any(line.startswith("race: C leaves") for line in lines)


def test_run_race_stops_at_the_budget_and_drops_failures():
    truth = {s: dict(zip(ORDER_1F3S, v)) for s, v in (("A", (0.8, 0.7, 0.9)), ("B", (0.7, 0.8, 0.6)))}
    done, trained, read, train = _fake_runs(truth)
    for s in truth:
        done[s][ORDER_1F3S[0]] = truth[s][ORDER_1F3S[0]]
    left = [15]
    result = racing.run_race(["A", "B"], ORDER_1F3S, read=read, train=train, budget_left=lambda: left[0],
                             run_cost=10)
    assert trained == [] and result.last.stop == racing.BUDGET and result.indistinguishable == ["A", "B"]

    def failing(names, inst):
        return {"B": "nnUNetv2_train exited with status 1"}

    result = racing.run_race(["A", "B"], ORDER_1F3S, read=read, train=failing, budget_left=lambda: 100, run_cost=10)
    assert result.failed == {"B": "nnUNetv2_train exited with status 1"} and result.winner == "A"


def test_run_race_with_one_contender_explains_itself():
    done, trained, read, train = _fake_runs({"A": dict.fromkeys(ORDER_1F3S, 0.5)})
    done["A"][ORDER_1F3S[0]] = 0.5
    result = racing.run_race(["A"], ORDER_1F3S, read=read, train=train, budget_left=lambda: 100, run_cost=10)
    assert "fewer than two settings" in result.note and trained == [] and result.winner == "A"


def test_pooled_seed_sd_by_hand():
    """A fold 0: 0.8, 0.6 (mean 0.7, squares 0.02); B fold 0: 0.7, 0.75 (squares 0.00125); B fold 1: one seed
    (nothing). sd = sqrt(0.02125 / 2) = 0.10308, 2 degrees of freedom."""
    values = {"A": {("0", 0): 0.8, ("0", 1): 0.6}, "B": {("0", 0): 0.7, ("0", 1): 0.75, ("1", 0): 0.2}}
    sd, dof = racing.pooled_seed_sd(values)
    assert dof == 2 and sd == pytest.approx(math.sqrt(0.02125 / 2))
    assert racing.pooled_seed_sd({"A": {("0", 0): 0.8}}) == (None, 0)
