"""nnunet_polydice.experiments.statistics on tiny inputs whose answers are worked out by hand in the comments:
the hierarchical bootstrap over folds x seeds x cases, the Wilcoxon test over instances, Holm's adjustment, the
seed-to-seed sd, the verdict and the planning formulas."""

import math

import numpy as np
import pytest
from scipy.stats import wilcoxon

from nnunet_polydice.experiments import statistics as st

Z_975, Z_80 = 1.959964, 0.841621  # norm.ppf(0.975), norm.ppf(0.8)


def grid(values: dict) -> dict:
    """``{(fold, seed): [d, ...]}`` -> ``{(fold, seed): {"c0": d, ...}}``."""
    return {key: {f"c{i}": v for i, v in enumerate(ds)} for key, ds in values.items()}


def random_grid(folds=3, seeds=2, cases=5, seed=1) -> dict:
    rng = np.random.default_rng(seed)
    return grid({(str(f), s): list(rng.normal(0.01, 0.05, cases)) for f in range(folds) for s in range(seeds)})


# ------------------------------------------------------------------------------------------------- Holm

@pytest.mark.parametrize("pvalues, expected", [
    ([0.01, 0.04, 0.03], [0.03, 0.06, 0.06]),  # 3 x .01; 2 x .03; max(.06, 1 x .04)
    ([0.01, None, 0.04, 0.03], [0.03, None, 0.06, 0.06]),  # None passes through and is not counted in m
    ([0.01, 0.02, 0.03, 0.04], [0.04, 0.06, 0.06, 0.06]),  # 4 x .01; 3 x .02; max(.06, 2 x .03); max(.06, .04)
    ([0.6, 0.01], [0.6, 0.02]),  # 2 x .01; max(.02, 1 x .6)
    ([0.5, 0.4], [0.8, 0.8]),  # 2 x .4; max(.8, .5): monotone
    ([0.9, 0.8, 0.7], [1.0, 1.0, 1.0]),  # 3 x .7 = 2.1, capped at 1
    ([0.02, 0.02], [0.04, 0.04]),  # ties
    ([0.02], [0.02]),
    ([None], [None]),
    ([], []),
])
def test_holm_by_hand(pvalues, expected):
    assert st.holm(pvalues) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [[float("nan")], [1.5], [-0.1], [0.01, "0.2"]])
def test_holm_rejects_what_is_not_a_p(bad):
    with pytest.raises(ValueError, match="p-value must be a number in"):
        st.holm(bad)


# ------------------------------------------------------------------------------------------- seed noise

@pytest.mark.parametrize("values, expected", [
    # fold 0: mean .82, squares .0004 + .0004; fold 1: mean .73, .0009 + .0009; sqrt(.0026 / 2)
    ({("0", 0): 0.80, ("0", 1): 0.84, ("1", 0): 0.70, ("1", 1): 0.76}, math.sqrt(0.0013)),
    ({("0", 0): 1.0, ("0", 1): 2.0, ("0", 2): 3.0}, 1.0),  # squares 1 + 0 + 1, 2 degrees of freedom
    ({("0", 0): 1.0, ("0", 1): 3.0, ("1", 0): 10.0}, math.sqrt(2.0)),  # a one-seed fold adds nothing
    ({("0", None): 0.5, ("0", 0): 0.7}, math.sqrt(0.02)),  # an unseeded run is one more run of its fold
    ({("0", 0): 0.5, ("1", 0): 0.9}, None),  # no fold with two seeds; the fold difference is not noise
])
def test_seed_sd_by_hand(values, expected):
    assert st.seed_sd(values) == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize("values, message", [
    ({("0", 0): float("nan"), ("0", 1): 0.5}, "finite"),
    ({"0": 0.5}, "must be a .fold, seed. pair"),
    ({(0, 1): 0.5}, "must be a .fold, seed. pair"),
    ({("0", True): 0.5}, "must be a .fold, seed. pair"),
])
def test_seed_sd_bad_input(values, message):
    with pytest.raises(ValueError, match=message):
        st.seed_sd(values)


@pytest.mark.parametrize("sd, diff, expected", [
    (0.02, 0.01, True), (0.02, -0.01, True), (0.02, -0.03, False), (0.01, 0.01, False), (0.0, 0.0, False),
    (None, 0.1, False), (0.1, None, False),
])
def test_seeds_disagree(sd, diff, expected):
    assert st.seeds_disagree(sd, diff) is expected


@pytest.mark.parametrize("sd, diff", [(-0.1, 0.0), (float("nan"), 0.0), (0.1, float("nan"))])
def test_seeds_disagree_bad_input(sd, diff):
    with pytest.raises(ValueError, match="standard deviation >= 0"):
        st.seeds_disagree(sd, diff)


# ---------------------------------------------------------------------------------------------- verdict

@pytest.mark.parametrize("ci, p, alpha, expected", [
    ((0.01, 0.03), 0.01, 0.05, st.BETTER),
    ((-0.03, -0.01), 0.01, 0.05, st.WORSE),
    ((-0.01, 0.03), 0.01, 0.05, st.WITHIN_NOISE),  # significant, but the CI holds 0
    ((0.01, 0.03), 0.2, 0.05, st.WITHIN_NOISE),  # the CI excludes 0, but p is not small
    ((0.0, 0.03), 0.01, 0.05, st.WITHIN_NOISE),  # low end exactly 0 does not exclude it
    ((0.01, 0.03), 0.05, 0.05, st.WITHIN_NOISE),  # p must be below alpha
    ((0.01, 0.03), 0.07, 0.10, st.BETTER),
    ((0.01, 0.03), None, 0.05, st.UNDETERMINED),  # a CI alone does not decide
    ((-0.01, 0.03), None, 0.05, st.UNDETERMINED),  # nor is "within noise" known without a test
    (None, 0.01, 0.05, st.UNDETERMINED),
])
def test_verdict(ci, p, alpha, expected):
    assert st.verdict(ci, p, alpha) == expected


@pytest.mark.parametrize("ci, alpha, message", [
    ((0.1, 0.2), 0.0, "alpha must be a number strictly between 0 and 1"),
    ((0.1, 0.2), 1.0, "alpha must be a number strictly between 0 and 1"),
    ((0.3, 0.1), 0.05, "low <= high"),
])
def test_verdict_bad_input(ci, alpha, message):
    with pytest.raises(ValueError, match=message):
        st.verdict(ci, 0.01, alpha)


# --------------------------------------------------------------------------------------------- planning

@pytest.mark.parametrize("sd, n, alpha, power, expected", [
    (0.01, 4, 0.05, 0.8, (Z_975 + Z_80) * 0.01 / 2),  # 2.801585 * 0.01 / sqrt(4) = 0.0140079
    (1.0, 1, 0.05, 0.8, Z_975 + Z_80),
    (1.0, 1, 0.10, 0.9, 1.644854 + 1.281552),  # norm.ppf(0.95) + norm.ppf(0.9)
    (0.0, 10, 0.05, 0.8, 0.0),
])
def test_minimal_detectable_difference(sd, n, alpha, power, expected):
    assert st.minimal_detectable_difference(sd, n, alpha, power) == pytest.approx(expected, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("correlation, sd_diff", [
    (0.0, math.sqrt(2) * 0.01),  # independent seeds: the difference of two runs has sd sqrt(2) sigma
    (0.5, 0.01),  # sqrt(2 (1 - 0.5)) = 1
    (1.0, 0.0),
])
def test_planned_mdd(correlation, sd_diff):
    # 5 folds x 2 seeds = 10 instances
    expected = (Z_975 + Z_80) * sd_diff / math.sqrt(10)
    assert st.planned_mdd(0.01, 5, 2, correlation) == pytest.approx(expected, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda: st.minimal_detectable_difference(-0.1, 4), "finite number >= 0"),
    (lambda: st.minimal_detectable_difference(float("nan"), 4), "finite number >= 0"),
    (lambda: st.minimal_detectable_difference(0.1, 0), "instances must be an integer of at least 1"),
    (lambda: st.minimal_detectable_difference(0.1, 4, alpha=1.0), "alpha"),
    (lambda: st.minimal_detectable_difference(0.1, 4, power=0.0), "power"),
    (lambda: st.planned_mdd(0.01, 5, 2, correlation=1.5), r"correlation must be a number in \[-1, 1\]"),
    (lambda: st.planned_mdd(0.01, 0, 2), "folds must be an integer of at least 1"),
    (lambda: st.planned_mdd(0.01, 5, 0), "seeds must be an integer of at least 1"),
    (lambda: st.planned_mdd(-0.01, 5, 2), "finite number >= 0"),
])
def test_planning_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("matched, mismatched, expected", [
    ([1.0, 2.0, 3.0], [0.0, 2.0, 4.0], 0.25),  # variances 1 and 4
    ([0.0, 2.0, 4.0], [1.0, 2.0, 3.0], 4.0),
    ([0.5, 0.5], [0.0, 1.0], 0.0),  # matched seeds remove all noise
])
def test_crn_variance_ratio(matched, mismatched, expected):
    assert st.crn_variance_ratio(matched, mismatched) == pytest.approx(expected)


@pytest.mark.parametrize("matched, mismatched, message", [
    ([1.0], [0.0, 1.0], "at least two"),
    ([1.0, 2.0], [], "at least two"),
    ([1.0, float("nan")], [0.0, 1.0], "finite"),
    ([1.0, 2.0], [0.3, 0.3], "variance is 0"),
])
def test_crn_variance_ratio_bad_input(matched, mismatched, message):
    with pytest.raises(ValueError, match=message):
        st.crn_variance_ratio(matched, mismatched)


# --------------------------------------------------------------------------------- Wilcoxon, instances

@pytest.mark.parametrize("n", range(1, 9))
def test_the_minimum_number_of_instances_is_where_p_can_fall_below_005(n):
    # n distinct positive differences: the most extreme of 2^n sign patterns, two-sided p = 2 / 2^n
    p = wilcoxon([0.01 * (i + 1) for i in range(n)]).pvalue
    assert p == pytest.approx(min(1.0, 2 / 2**n))
    assert bool(p < 0.05) is (n >= st.MIN_INSTANCES)


@pytest.mark.parametrize("diffs", [
    [0.01, 0.02, 0.03, 0.04, 0.05],  # 5 instances
    [0.01, 0.02, 0.03, 0.04, 0.05, 0.0],  # 6, one of them zero: 5 count
    [0.01, 0.02, 0.03, 0.04, 0.05, 0.3 - 0.2 - 0.1],  # float noise is zero too
    [],
])
def test_wilcoxon_over_instances_too_few(diffs):
    assert st.wilcoxon_over_instances({(str(i), 0): d for i, d in enumerate(diffs)}) is None


@pytest.mark.parametrize("diffs, expected", [
    ([0.01, 0.02, 0.03, 0.04, 0.05, 0.06], 2 / 64),
    ([0.02] * 6, 2 / 64),  # ties: the exhaustive sign-flip permutation gives the same extreme
    ([0.01, -0.01, 0.01, -0.01, 0.01, -0.01], 1.0),  # W+ = 3 x 3.5 = its mean
])
def test_wilcoxon_over_instances_by_hand(diffs, expected):
    assert st.wilcoxon_over_instances({("0", s): d for s, d in enumerate(diffs)}) == pytest.approx(expected)


@pytest.mark.parametrize("diffs", [
    [0.03, -0.01, 0.02, 0.05, 0.04, -0.02, 0.06],
    [0.1, 0.2, -0.3, 0.4, 0.5, 0.6, -0.7, 0.8, 0.9, 1.0],
])
def test_wilcoxon_over_instances_is_scipys(diffs):
    p = st.wilcoxon_over_instances({(str(i % 3), i): d for i, d in enumerate(diffs)})
    assert p == wilcoxon(diffs, zero_method="wilcox").pvalue


def test_instance_means_by_hand():
    d = {("0", 0): {"a": 0.1, "b": 0.3}, ("0", 1): {"a": -0.2}}
    assert st.instance_means(d) == pytest.approx({("0", 0): 0.2, ("0", 1): -0.2})


# ------------------------------------------------------------------------- the single-seed functions

@pytest.mark.parametrize("call, message", [
    (lambda: st.bootstrap_ci([]), "at least one difference"),
    (lambda: st.bootstrap_ci([0.1, float("nan")]), "finite"),
    (lambda: st.bootstrap_ci([0.1], resamples=0), "resamples must be an integer of at least 1"),
    (lambda: st.bootstrap_ci([0.1], level=1.0), "level must be a number strictly between 0 and 1"),
    (lambda: st.wilcoxon_p([0.1, float("inf")]), "finite"),
])
def test_single_seed_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------------- hierarchical bootstrap

def test_hierarchical_mean_weighs_folds_then_seeds_then_cases():
    # fold 0: seed 0 mean (.1 + .3) / 2 = .2, seed 1 mean .4 -> .3; fold 1: (0 + .2 + .4) / 3 = .2; (.3 + .2) / 2
    d = grid({("0", 0): [0.1, 0.3], ("0", 1): [0.4, 0.4], ("1", 0): [0.0, 0.2, 0.4]})
    assert st.hierarchical_mean(d) == pytest.approx(0.25)


def test_crossed_cases_keeps_the_cases_all_seeds_of_a_fold_have():
    d = {("0", 0): {"a": 0.1, "b": 0.3, "c": 0.5}, ("0", 1): {"a": 0.4, "c": 0.2},  # b: only seed 0
         ("1", 0): {"x": 0.0}, ("1", 1): {"y": 1.0},  # no case in common: fold 1 dropped whole
         ("2", None): {"z": 0.7}}
    restricted, left_out = st.crossed_cases(d)
    assert restricted == {("0", 0): {"a": 0.1, "c": 0.5}, ("0", 1): {"a": 0.4, "c": 0.2}, ("2", None): {"z": 0.7}}
    assert left_out == 1 + 2
    # the mean and the bootstrap use the restricted cases: fold 0 (.1 + .5 + .4 + .2) / 4 = .3, fold 2 .7
    assert st.hierarchical_mean(d) == pytest.approx(0.5)
    assert st.instance_means(restricted) == pytest.approx({("0", 0): 0.3, ("0", 1): 0.3, ("2", None): 0.7})


def test_seeds_without_a_common_case_anywhere_are_refused():
    with pytest.raises(ValueError, match="in no fold do the seeds have a case in common"):
        st.hierarchical_bootstrap_ci({("0", 0): {"a": 0.1}, ("0", 1): {"b": 0.2}})


@pytest.mark.parametrize("c", [0.25, -0.125, 0.0])
def test_identical_differences_give_a_zero_width_interval_at_that_value(c):
    d = grid({(str(f), s): [c] * (f + 1) for f in range(3) for s in (None, 0, 4)})
    assert st.hierarchical_bootstrap_ci(d, resamples=500) == (c, c)
    assert st.hierarchical_mean(d) == c


def test_one_case_and_one_seed_per_fold_is_the_mean_of_the_folds():
    # nothing to resample: every resample is (.1 + .3 + .8) / 3 = .4
    d = grid({("0", 0): [0.1], ("1", 0): [0.3], ("2", 1): [0.8]})
    assert st.hierarchical_bootstrap_ci(d, resamples=200) == pytest.approx((0.4, 0.4))


def frequencies(draws, values):
    return [float(np.mean(np.isclose(draws, v))) for v in values]


@pytest.mark.parametrize("d", [
    grid({("0", 0): [0.0], ("0", 1): [1.0]}),  # two seeds drawn from two: mean 0, .5 or 1
    grid({("0", 0): [0.0, 1.0]}),  # one seed, two cases: resampling cases within the fold, the same
])
def test_two_draws_from_two_by_hand(d):
    # (0, 0) 1/4, (0, 1) or (1, 0) 1/2, (1, 1) 1/4
    draws = st.hierarchical_bootstrap_means(d, resamples=8000, seed=3)
    assert frequencies(draws, [0.0, 0.5, 1.0]) == pytest.approx([0.25, 0.5, 0.25], abs=0.02)
    assert st.hierarchical_bootstrap_ci(d, resamples=8000, seed=3) == (0.0, 1.0)  # 25 % at each end
    assert st.hierarchical_bootstrap_ci(d, resamples=8000, seed=3, level=0.4) == (0.5, 0.5)  # 30th, 70th


def test_one_case_draw_is_shared_by_the_seeds_of_a_fold():
    # two seeds, both with cases (0, 1): the drawn seeds do not matter, one draw of two cases does: Binomial(2, 1/2)
    # / 2, i.e. 0, .5, 1 with 1/4, 1/2, 1/4 and variance 1/8 (a fresh case draw for each drawn seed would average
    # two such draws: Binomial(4, 1/2) / 4, variance 1/16, understating the case-to-case uncertainty)
    draws = st.hierarchical_bootstrap_means(grid({("0", 0): [0.0, 1.0], ("0", 1): [0.0, 1.0]}), 16000, seed=2)
    assert frequencies(draws, [0, 0.25, 0.5, 0.75, 1]) == pytest.approx([1 / 4, 0, 1 / 2, 0, 1 / 4], abs=0.015)
    assert draws.var() == pytest.approx(1 / 8, rel=0.05)


def test_seed_and_case_effects_add_up():
    # d = seed + case: seeds (0, 1) x cases (0, 1). A resample is X / 2 + Y / 2, X the seeds drawn as 1 and Y the
    # cases drawn as 1, independent Binomial(2, 1/2): (X + Y) / 2 ~ Binomial(4, 1/2) / 2, so 0, .5, 1, 1.5, 2 with
    # 1, 4, 6, 4, 1 sixteenths and variance 1/8 + 1/8 = 1/4
    draws = st.hierarchical_bootstrap_means(grid({("0", 0): [0.0, 1.0], ("0", 1): [1.0, 2.0]}), 16000, seed=2)
    assert frequencies(draws, [0, 0.5, 1, 1.5, 2]) == pytest.approx([1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16],
                                                                    abs=0.015)
    assert draws.var() == pytest.approx(1 / 4, rel=0.05)


def test_seeds_with_different_cases_use_the_common_ones():
    # seed 0 has case c0 (.5), seed 1 cases c0, c1, c2 (1 each): c0 alone is common (2 values left out); seed 0
    # gives .5, seed 1 gives 1: .5, .75 or 1 with 1/4, 1/2, 1/4
    d = grid({("0", 0): [0.5], ("0", 1): [1.0, 1.0, 1.0]})
    assert st.crossed_cases(d)[1] == 2
    draws = st.hierarchical_bootstrap_means(d, 8000, seed=4)
    assert frequencies(draws, [0.5, 0.75, 1.0]) == pytest.approx([0.25, 0.5, 0.25], abs=0.02)


def test_folds_are_strata():
    # fold 0 always contributes 0, fold 1 (two seeds, 0 or 1) contributes 0, .5 or 1: the statistic is half of it
    draws = st.hierarchical_bootstrap_means(grid({("0", 0): [0.0], ("1", 0): [0.0], ("1", 1): [1.0]}), 8000)
    assert frequencies(draws, [0.0, 0.25, 0.5]) == pytest.approx([0.25, 0.5, 0.25], abs=0.02)


def test_the_interval_contains_the_mean_and_is_reproducible():
    d = random_grid()
    low, high = st.hierarchical_bootstrap_ci(d, resamples=2000, seed=11)
    assert low < st.hierarchical_mean(d) < high
    assert st.hierarchical_bootstrap_ci(d, resamples=2000, seed=11) == (low, high)
    assert st.hierarchical_bootstrap_ci(d, resamples=2000, seed=12) != (low, high)


def test_the_order_of_the_mapping_does_not_matter():
    d = random_grid()
    backwards = {key: dict(reversed(cases.items())) for key, cases in reversed(d.items())}
    assert np.array_equal(st.hierarchical_bootstrap_means(d, 300), st.hierarchical_bootstrap_means(backwards, 300))


@pytest.mark.parametrize("chunk", [1, 7, 300, 10**6])
def test_chunking_gives_the_same_draws_as_one_chunk(chunk):
    d = random_grid(folds=2, seeds=3, cases=4)
    one = st.hierarchical_bootstrap_means(d, 300, seed=5, chunk=300)
    assert np.array_equal(st.hierarchical_bootstrap_means(d, 300, seed=5, chunk=chunk), one)


def test_the_default_chunk_keeps_max_draws(monkeypatch):
    """With MAX_DRAWS smaller than one resample's uniforms, one resample at a time, the same draws."""
    d = random_grid(folds=2, seeds=3, cases=4)  # 2 x (3 + 4) = 14 uniforms per resample
    many = st.hierarchical_bootstrap_means(d, 200, seed=5)
    calls = []
    original = st._resampled_means
    monkeypatch.setattr(st, "_resampled_means", lambda tables, u: calls.append(u.shape) or original(tables, u))
    monkeypatch.setattr(st, "MAX_DRAWS", 64)
    assert np.array_equal(st.hierarchical_bootstrap_means(d, 200, seed=5), many)
    assert set(calls) == {(4, 14)}  # 64 // 14 = 4 resamples at a time


@pytest.mark.parametrize("d, message", [
    ({}, "no paired differences"),
    ({("0", 0): {}}, "has no paired case"),
    ({("0", 0): {"a": float("nan")}}, "finite"),
    ({("0", 0): {"a": 0.1}, ("0", 1): {"a": float("-inf")}}, "finite"),
    ({"0": {"a": 0.1}}, "must be a .fold, seed. pair"),
    ({("0", 0, 1): {"a": 0.1}}, "must be a .fold, seed. pair"),
    ({(0, 0): {"a": 0.1}}, "must be a .fold, seed. pair"),
    ({("0", 0.5): {"a": 0.1}}, "must be a .fold, seed. pair"),
])
def test_hierarchical_bootstrap_bad_data(d, message):
    for call in (st.hierarchical_bootstrap_ci, st.hierarchical_mean, st.instance_means):
        with pytest.raises(ValueError, match=message):
            call(d)


@pytest.mark.parametrize("kwargs, message", [
    ({"resamples": 0}, "resamples must be an integer of at least 1"),
    ({"resamples": 2.5}, "resamples must be an integer of at least 1"),
    ({"level": 0.0}, "level must be a number strictly between 0 and 1"),
    ({"level": 1.0}, "level must be a number strictly between 0 and 1"),
    ({"level": 95}, "level must be a number strictly between 0 and 1"),
])
def test_hierarchical_bootstrap_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        st.hierarchical_bootstrap_ci(grid({("0", 0): [0.1]}), **kwargs)


def test_a_chunk_below_one_is_refused():
    with pytest.raises(ValueError, match="chunk size must be an integer of at least 1"):
        st.hierarchical_bootstrap_means(grid({("0", 0): [0.1]}), 10, chunk=0)


# ----------------------------------------------------------------------------------- compare_instances

def three_settings():
    """2 folds x 3 seeds, two equal cases per instance. "up": instance differences .01 ... .06 (fold 0: .01, .02,
    .03; fold 1: .04, .05, .06); "down": their negatives; "flat": +-.01 alternating (mean 0)."""
    instances = [(f, s) for f in ("0", "1") for s in (0, 1, 2)]
    up = {key: 0.01 * (i + 1) for i, key in enumerate(instances)}
    diffs = {"up": up, "down": {k: -v for k, v in up.items()},
             "flat": {key: 0.01 * (-1) ** i for i, key in enumerate(instances)}}
    # each setting's own values: fold 0 .80 .82 .84, fold 1 .70 .72 .74 -> squares .0008 + .0008 over 4 dof: sd .02
    values = dict(zip(instances, [0.80, 0.82, 0.84, 0.70, 0.72, 0.74]))
    return ({name: grid({k: [v, v] for k, v in d.items()}) for name, d in diffs.items()},
            {name: values for name in diffs})


def test_compare_instances_by_hand():
    diffs, values = three_settings()
    rows = st.compare_instances(diffs, values, resamples=500)
    up, down, flat = rows["up"], rows["down"], rows["flat"]
    # means: (.02 + .05) / 2 = .035; flat: fold 0 (.01 - .01 + .01) / 3, fold 1 the negative: 0
    assert (up.mean_difference, down.mean_difference, flat.mean_difference) == pytest.approx((0.035, -0.035, 0))
    # p: 6 of one sign 2/64 (twice), W+ at its mean 1; Holm: 3 x 2/64 = .09375, max(.09375, 2 x 2/64), 1
    assert (up.p, down.p, flat.p) == pytest.approx((2 / 64, 2 / 64, 1.0))
    assert (up.p_holm, down.p_holm, flat.p_holm) == pytest.approx((0.09375, 0.09375, 1.0))
    # the CIs exclude 0, but after Holm neither test is below .05
    assert up.ci[0] > 0 and down.ci[1] < 0 and up.verdict == down.verdict == flat.verdict == st.WITHIN_NOISE
    assert (up.n_instances, up.n_cases, up.seed_sd) == (6, 12, pytest.approx(0.02))
    assert (up.seeds_disagree, down.seeds_disagree, flat.seeds_disagree) == (False, False, True)  # .02 vs |diff|


def test_compare_instances_alone_a_setting_is_better():
    diffs, values = three_settings()
    row = st.compare_instances({"up": diffs["up"]}, {"up": values["up"]}, resamples=500)["up"]
    assert row.p_holm == pytest.approx(2 / 64) and row.verdict == st.BETTER
    assert row.ci == st.hierarchical_bootstrap_ci(diffs["up"], 500)


def test_compare_instances_with_too_few_instances_is_undetermined():
    d = grid({(str(f), 0): [0.1, 0.2] for f in range(5)})  # 5 instances: no p
    row = st.compare_instances({"x": d}, {"x": {(str(f), 0): 0.8 for f in range(5)}}, resamples=200)["x"]
    assert row.p is None and row.p_holm is None and row.seed_sd is None
    # each fold mean is .1, .15 or .2: the interval lies in [.1, .2] around the mean .15
    assert row.verdict == st.UNDETERMINED and 0.1 <= row.ci[0] < 0.15 < row.ci[1] <= 0.2


def test_compare_instances_needs_the_same_settings():
    diffs, values = three_settings()
    with pytest.raises(ValueError, match="must name the same settings"):
        st.compare_instances(diffs, {"up": values["up"]}, resamples=200)
