"""Is a setting better than the reference, or within seed noise? The statistics of ``compare``.

Pure functions of numbers (numpy and scipy only): no nnU-Net, no files, no printing.

Data model. A setting (a trainer) is trained on several folds, each with one or more seeds; an
*instance* is one ``(fold, seed)`` pair: ``fold`` a string such as ``"0"``, ``seed`` an int, or ``None``
for a run without a fixed seed. A seed fixes weight initialisation, data order and augmentation, so two
settings trained with the same seed see the same batches (common random numbers). nnU-Net scores every
validation case of the fold, and the two settings are matched on ``(fold, seed, case)``; cases and seeds
are crossed (every seed of a fold is scored on the same cases, :func:`crossed_cases`):

* paired per-case differences of a setting against its reference,
  ``{(fold, seed): {case: x_fsc - r_fsc}}`` (:func:`hierarchical_bootstrap_ci`, :func:`instance_means`);
* per-instance summary values of one setting (its mean Dice over the cases), ``{(fold, seed): x_fs}``
  (:func:`seed_sd`).

What answers the question, per setting (:func:`compare_instances`, one :class:`InstanceComparison`):
the mean difference (:func:`hierarchical_mean`), a hierarchical percentile bootstrap confidence interval
(:func:`hierarchical_bootstrap_ci`), the two-sided Wilcoxon signed-rank p over the per-instance mean
differences (:func:`wilcoxon_over_instances`), Holm's adjustment across the settings compared with one
reference (:func:`holm`), a verdict (:func:`verdict`), the seed-to-seed standard deviation
(:func:`seed_sd`) and a flag when the seeds disagree by more than the difference (:func:`seeds_disagree`).
For planning a grid: :func:`minimal_detectable_difference`, :func:`planned_mdd` and
:func:`crn_variance_ratio` (what matching the seeds gains).

The single-seed statistics of per-case differences pooled over folds (:func:`bootstrap_ci`,
:func:`wilcoxon_p`) live here as well, with the constants they use.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nnunet_polydice.experiments.instance import Instance

__all__ = ["DEFAULT_BOOTSTRAP", "DEFAULT_SEED", "MIN_CASES", "MIN_INSTANCES", "ZERO_METHOD",
           "MAX_DRAWS", "BETTER", "WORSE", "WITHIN_NOISE", "UNDETERMINED", "InstanceComparison",
           "bootstrap_ci", "wilcoxon_p", "crossed_cases", "hierarchical_mean", "hierarchical_bootstrap_means",
           "hierarchical_bootstrap_ci", "instance_means", "wilcoxon_over_instances", "holm", "seed_sd", "pooled_sd",
           "verdict", "seeds_disagree", "minimal_detectable_difference", "planned_mdd", "crn_variance_ratio",
           "compare_instances"]

#: Bootstrap resamples of a confidence interval, unless given.
DEFAULT_BOOTSTRAP = 10000
#: Seed of numpy.random.default_rng for the bootstrap, unless given.
DEFAULT_SEED = 0
#: Fewest paired cases for a CI, and fewest non-zero differences for a Wilcoxon p (with 5 the smallest
#: possible two-sided p is 2/2^5 = 0.0625: nothing could be significant at 0.05).
MIN_CASES = 6
#: Fewest non-zero per-instance differences for a Wilcoxon p over instances: with n of them the smallest
#: possible two-sided p is 2/2^n, 0.0625 for n = 5 and 0.03125 for n = 6, so 6 are needed for p < 0.05.
MIN_INSTANCES = 6
#: How the Wilcoxon test treats zero differences (scipy's zero_method): dropped before ranking.
ZERO_METHOD = "wilcox"
#: Most random draws a bootstrap holds in memory at once (about 8 MiB of float64 per array).
MAX_DRAWS = 2**20

BETTER = "better"
WORSE = "worse"
WITHIN_NOISE = "within noise"
UNDETERMINED = "undetermined (too few instances)"



# ------------------------------------------------------------------------------------------ checks

def _check_level(level: float, what: str = "the confidence level") -> float:
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise ValueError(f"{what} must be a number strictly between 0 and 1 (got {level!r}), e.g. 0.95.")
    return float(level)


def _check_count(value, what: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ValueError(f"{what} must be an integer of at least {least} (got {value!r}).")
    return int(value)


def _finite(values, what: str) -> np.ndarray:
    """``values`` as a 1-d float array without NaN or infinity."""
    a = np.asarray(list(values), dtype=float).ravel()
    if not np.isfinite(a).all():
        raise ValueError(f"{what} must be finite numbers; found NaN or infinity in {a.tolist()}.")
    return a


def _check_instance(key) -> None:
    if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)
            and (key[1] is None or (isinstance(key[1], numbers.Integral) and not isinstance(key[1], bool)))):
        raise ValueError(f"an instance must be a (fold, seed) pair: fold a string, seed an int or None (got {key!r}).")


def _instance_order(key) -> tuple:
    """Sort key of an instance: :attr:`Instance.sort_key` (the one order of runs)."""
    return Instance.of(key).sort_key


# -------------------------------------------------------------------------------------- bootstrap

def _chunked(resamples: int, width: int, draw: Callable[[int], np.ndarray], chunk: int | None = None) -> np.ndarray:
    """The ``resamples`` statistics that ``draw(m)`` returns ``m`` at a time, with ``m * width`` at most
    :data:`MAX_DRAWS` (``chunk`` resamples at a time when given): memory bounded for any ``resamples``."""
    step = max(1, MAX_DRAWS // max(1, width)) if chunk is None else _check_count(chunk, "the chunk size")
    out = np.empty(resamples)
    for start in range(0, resamples, step):
        m = min(step, resamples - start)
        out[start:start + m] = draw(m)
    return out


def _percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    """The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (``numpy.percentile``, linear interpolation)."""
    low, high = np.percentile(draws, [50.0 * (1 - level), 50.0 * (1 + level)])
    return float(low), float(high)


def bootstrap_ci(diffs: Sequence[float], resamples: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``diffs`` (one seed: cases pooled over folds).

    ``resamples`` times, n values are drawn with replacement from the n differences (indices from
    ``numpy.random.default_rng(seed).integers(0, n)``, at most :data:`MAX_DRAWS` indices at a time) and their
    mean ``m_b`` is taken; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
    ``m_b`` (``numpy.percentile``, linear interpolation): the 2.5th and 97.5th percentiles for level 0.95.
    Equal inputs and seed give equal intervals. All differences equal to c give ``(c, c)``; differences
    ``+-c`` in equal numbers give an interval around 0.

    Raises:
        ValueError: without differences, with NaN or infinite ones, with fewer than one resample, or with
            ``level`` outside (0, 1).
    """
    d = _finite(diffs, "the differences")
    if d.size == 0:
        raise ValueError("a bootstrap needs at least one difference.")
    resamples = _check_count(resamples, "the number of bootstrap resamples")
    level = _check_level(level)
    rng = np.random.default_rng(seed)
    means = _chunked(resamples, d.size, lambda m: d[rng.integers(0, d.size, size=(m, d.size))].mean(axis=1))
    return _percentile_interval(means, level)


def crossed_cases(diffs_by_instance: Mapping) -> tuple[dict, int]:
    """The paired differences restricted, fold by fold, to the cases that every seed of the fold has:
    ``(restricted, left_out)``.

    Every seed of a fold is scored on the same validation cases (cases and seeds are crossed), so the
    bootstrap draws one set of cases per fold and uses it for all of the fold's seeds; a case that one seed
    lacks (a NaN value, a class absent from that case's reference) cannot be part of that draw. ``left_out``
    counts the values dropped, summed over the instances; a fold whose seeds have no case in common is
    dropped whole (all its values counted). The order of folds, seeds and cases does not matter.

    Raises:
        ValueError: no instance, a key that is not ``(fold, seed)``, an instance without cases, or a value
            that is NaN or infinite.
    """
    if not diffs_by_instance:
        raise ValueError("no paired differences: at least one (fold, seed) instance with one case is needed.")
    for key in diffs_by_instance:
        _check_instance(key)
    folds: dict[str, list] = {}
    for key in sorted(diffs_by_instance, key=_instance_order):
        cases = diffs_by_instance[key]
        if not cases:
            raise ValueError(f"instance {key!r} has no paired case.")
        _finite(cases.values(), f"the differences of {key!r}")
        folds.setdefault(key[0], []).append(key)
    restricted, left_out = {}, 0
    for keys in folds.values():
        common = set.intersection(*(set(diffs_by_instance[k]) for k in keys))
        for k in keys:
            left_out += len(diffs_by_instance[k]) - len(common)
            if common:
                restricted[k] = {c: diffs_by_instance[k][c] for c in sorted(common)}
    return restricted, left_out


def _fold_tables(diffs_by_instance: Mapping) -> list[np.ndarray]:
    """Per fold (sorted), the S_f x n_f matrix of its differences: seeds (sorted) by the cases common to all
    of them (:func:`crossed_cases`, sorted).

    Raises:
        ValueError: as :func:`crossed_cases`, or no fold whose seeds share a case.
    """
    restricted, _ = crossed_cases(diffs_by_instance)
    if not restricted:
        raise ValueError("no paired differences: in no fold do the seeds have a case in common.")
    folds: dict[str, list] = {}
    for key, cases in restricted.items():
        folds.setdefault(key[0], []).append([float(v) for v in cases.values()])
    return [np.array(rows) for rows in folds.values()]


def hierarchical_mean(diffs_by_instance: Mapping) -> float:
    """The mean paired difference, each fold weighing the same, within a fold each seed and each case::

        d_bar = (1/F) sum_f (1/S_f) sum_s (1/n_f) sum_c d_fsc

    (F folds, S_f seeds of fold f, n_f the cases common to all of them, :func:`crossed_cases`): the statistic
    of :func:`hierarchical_bootstrap_ci` on the data themselves.

    Raises:
        ValueError: as :func:`hierarchical_bootstrap_ci`.
    """
    return float(np.mean([values.mean() for values in _fold_tables(diffs_by_instance)]))


def _counts(u: np.ndarray, k: int) -> np.ndarray:
    """Per row of the uniforms ``u`` (m x k), how often each of 0..k-1 is drawn by ``floor(u * k)``, divided by
    k: the weights of a draw of k out of k with replacement (m x k, rows summing to 1)."""
    m = u.shape[0]
    pick = np.minimum((u * k).astype(np.intp), k - 1)
    return np.bincount((np.arange(m)[:, None] * k + pick).ravel(), minlength=m * k).reshape(m, k) / k


def _resampled_means(tables: list[np.ndarray], u: np.ndarray) -> np.ndarray:
    """The statistic of :func:`hierarchical_bootstrap_ci` for each row of the uniforms ``u`` (m x width): per
    fold, S_f columns draw the seeds and then n_f columns the cases, ``floor(u * S_f)`` and ``floor(u * n_f)``;
    the fold's statistic is ``w_s . D . w_c``, the weights of the draws (:func:`_counts`) around its matrix."""
    total, col = np.zeros(u.shape[0]), 0
    for values in tables:
        seeds, cases = values.shape
        w_seed = _counts(u[:, col:col + seeds], seeds)
        w_case = _counts(u[:, col + seeds:col + seeds + cases], cases)
        col += seeds + cases
        seed_mix = sum(w_seed[:, i, None] * values[i] for i in range(seeds))  # elementwise: the same in any chunk
        total += (seed_mix * w_case).sum(axis=1)
    return total / len(tables)


def hierarchical_bootstrap_means(diffs_by_instance: Mapping, resamples: int = DEFAULT_BOOTSTRAP,
                                 seed: int = DEFAULT_SEED, *, chunk: int | None = None) -> np.ndarray:
    """The ``resamples`` bootstrap statistics behind :func:`hierarchical_bootstrap_ci`, in draw order.

    Every resample uses a fixed number of uniforms, ``sum_f (S_f + n_f)``, drawn as rows of
    ``numpy.random.default_rng(seed).random``; so the result does not depend on ``chunk`` (resamples drawn
    at a time; by default as many as keep :data:`MAX_DRAWS` uniforms in memory).

    Raises:
        ValueError: as :func:`hierarchical_bootstrap_ci`, or a chunk size below 1.
    """
    tables = _fold_tables(diffs_by_instance)
    resamples = _check_count(resamples, "the number of bootstrap resamples")
    width = sum(values.shape[0] + values.shape[1] for values in tables)
    rng = np.random.default_rng(seed)
    return _chunked(resamples, width, lambda m: _resampled_means(tables, rng.random((m, width))), chunk)


def hierarchical_bootstrap_ci(diffs_by_instance: Mapping, resamples: int = DEFAULT_BOOTSTRAP,
                              seed: int = DEFAULT_SEED, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean paired difference over folds, seeds and cases.

    Cases and seeds are crossed: every seed of a fold is scored on the same validation cases, so a case that
    is hard for one seed tends to be hard for all. Folds are strata and kept fixed. In each resample, within
    each fold f, its S_f seeds are drawn with replacement (S_f draws) and, once for the whole fold, its n_f
    cases (n_f draws); every drawn seed is scored on the same drawn cases. The statistic is the mean over
    folds of the mean over the drawn (seed, case) pairs::

        m_b = (1/F) sum_f (1/S_f) sum_{j=1..S_f} (1/n_f) sum_{k=1..n_f} d_{f s_j c_k}

    with ``s_j`` the drawn seeds and ``c_k`` the drawn cases. Only the cases common to all seeds of a fold
    take part (:func:`crossed_cases`, which says how many values that leaves out). The interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the ``m_b`` (``numpy.percentile``, linear
    interpolation), around the point estimate :func:`hierarchical_mean`. With one seed per fold it reduces
    to resampling cases within folds (stratified by fold; fold means averaged with equal weight, unlike
    :func:`bootstrap_ci`, which pools the cases of all folds). Deterministic given ``seed``; vectorised, a
    bounded number of resamples at a time (:func:`hierarchical_bootstrap_means`).

    A case effect shared by the seeds of a fold moves all of them together in a resample, so it is counted
    once per fold (drawing cases afresh for every seed would average it away over the seeds and understate
    case-to-case uncertainty): the interval describes seed noise plus case noise on these folds' cases.

    Raises:
        ValueError: no instance, a key that is not ``(fold, seed)``, an instance without cases, a NaN or
            infinite difference, no fold whose seeds share a case, fewer than one resample, or ``level``
            outside (0, 1).
    """
    level = _check_level(level)
    return _percentile_interval(hierarchical_bootstrap_means(diffs_by_instance, resamples, seed), level)


# ---------------------------------------------------------------------------------------- Wilcoxon

def wilcoxon_p(diffs: Sequence[float], zero_method: str = ZERO_METHOD,
               min_nonzero: int = MIN_CASES) -> tuple[float | None, str | None]:
    """Two-sided Wilcoxon signed-rank p of paired differences: ``(p, None)``, or ``(None, reason)``.

    The differences are rounded to 12 decimals first, so that float noise (``0.3 - 0.2`` against ``0.1``)
    neither breaks a tie nor turns a zero difference into a non-zero one. Then
    ``scipy.stats.wilcoxon(d, zero_method=zero_method, alternative='two-sided')``: the ``|d_i|`` are ranked
    (ties share their mean rank) and ``W+`` sums the ranks of the positive ``d_i``; under the null every
    sign pattern is equally likely. With ``zero_method='wilcox'`` the zero differences are dropped before
    ranking ('zsplit' would rank them and give half their rank to each side). scipy's default method:
    the exact distribution of ``W+`` for at most 50 differences without ties or zeros, an exhaustive
    sign-flip permutation for at most 13 with ties or zeros, else the normal approximation with
    continuity correction. Example: 6 positive differences of distinct sizes are the most extreme of the
    2^6 sign patterns on one side: p = 2 / 64 = 0.03125.

    Not available: all differences zero, or fewer than ``min_nonzero`` non-zero ones (with n non-zero
    differences the smallest possible two-sided p is 2 / 2^n, 0.0625 for n = 5).

    Raises:
        ValueError: a NaN or infinite difference.
    """
    from scipy.stats import wilcoxon

    d = [round(float(v), 12) + 0.0 for v in _finite(diffs, "the differences")]
    nonzero = sum(v != 0 for v in d)
    if d and nonzero == 0:
        return None, "all differences are zero"
    if nonzero < min_nonzero:
        return None, f"only {nonzero} non-zero differences"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(wilcoxon(d, zero_method=zero_method, alternative="two-sided").pvalue)
    return p, None


def instance_means(diffs_by_instance: Mapping) -> dict:
    """``{(fold, seed): (1/n_fs) sum_c d_fsc}``: the mean paired difference of each instance over its cases.

    Raises:
        ValueError: as :func:`hierarchical_bootstrap_ci`.
    """
    _fold_tables(diffs_by_instance)  # validates
    return {key: float(np.mean(list(cases.values()))) for key, cases in diffs_by_instance.items()}


def wilcoxon_over_instances(instance_diffs: Mapping) -> float | None:
    """Two-sided Wilcoxon signed-rank p over the per-instance mean differences ``{(fold, seed): d_fs}``.

    Each ``(fold, seed)`` counts as one paired observation (as from :func:`instance_means`); the test asks
    whether the differences lean to one side more than seed-to-seed noise on these validation cases would
    make them. :func:`wilcoxon_p` with ``zero_method='wilcox'``: differences that are zero after rounding to
    12 decimals are dropped before ranking, and do not count towards the minimum.

    Returns:
        The p, or None with fewer than :data:`MIN_INSTANCES` (6) non-zero instance differences: with n of
        them the smallest possible two-sided p is 2 / 2^n (0.0625 for 5, 0.03125 for 6), so below 6 no
        outcome could reach p < 0.05.

    Raises:
        ValueError: a key that is not ``(fold, seed)``, or a NaN or infinite difference.
    """
    for key in instance_diffs:
        _check_instance(key)
    return wilcoxon_p(list(instance_diffs.values()), ZERO_METHOD, MIN_INSTANCES)[0]


# ------------------------------------------------------------------------------ multiple comparisons

def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values, in the order given; None entries pass through.

    With the m non-None p sorted ascending, ``p_(1) <= ... <= p_(m)``::

        p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))

    so the adjusted values keep the order of the raw ones (monotone) and never exceed 1. Rejecting where
    ``p~ < alpha`` keeps the family-wise error rate at alpha. Example: ``[0.01, 0.04, 0.03]`` gives
    ``[0.03, 0.06, 0.06]`` (3 x 0.01; 2 x 0.03; max(0.06, 1 x 0.04)).

    Raises:
        ValueError: a p that is NaN or outside [0, 1].
    """
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    for p, _ in present:
        if not (isinstance(p, numbers.Real) and 0 <= p <= 1):
            raise ValueError(f"a p-value must be a number in [0, 1] or None (got {p!r}).")
    out: list[float | None] = list(pvalues)
    running = 0.0
    for j, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (len(present) - j) * float(p)))
        out[i] = running
    return out


# ---------------------------------------------------------------------------------------- seed noise

def seed_sd(values_by_instance: Mapping) -> float | None:
    """The seed-to-seed standard deviation of one setting (its noise floor): pooled within-fold sd::

        sd = sqrt( sum_f sum_s (x_fs - mean_f)^2 / sum_f (n_f - 1) )

    over the instances ``{(fold, seed): x_fs}`` (e.g. mean Dice over cases), ``mean_f`` the mean of fold f
    over its ``n_f`` seeds; differences between folds do not count. A run without a fixed seed (seed None)
    is one more run of its fold. Folds with one seed add nothing to either sum.

    Returns:
        The sd, or None when no fold has two seeds.

    Raises:
        ValueError: a key that is not ``(fold, seed)``, or a NaN or infinite value.
    """
    folds: dict[str, list[float]] = {}
    for key, value in values_by_instance.items():
        _check_instance(key)
        folds.setdefault(key[0], []).append(value)
    return pooled_sd({f"fold {fold!r}": values for fold, values in folds.items()})[0]


def pooled_sd(groups: Mapping) -> tuple[float | None, int]:
    """The pooled within-group standard deviation and its degrees of freedom::

        sd = sqrt( sum_g sum_i (x_gi - mean_g)^2 / sum_g (n_g - 1) )

    over ``{group name: values}``; a group of one value adds nothing to either sum. The one formula of
    :func:`seed_sd` (groups: the folds of one setting) and of the tuner's noise over all settings (groups: the
    (setting, fold) pairs).

    Returns:
        ``(sd, dof)``, or ``(None, 0)`` when no group has two values.

    Raises:
        ValueError: a NaN or infinite value (naming its group).
    """
    squares, dof = 0.0, 0
    for name, values in groups.items():
        x = _finite(values, f"the values of {name}")
        squares += float(((x - x.mean()) ** 2).sum())
        dof += x.size - 1
    return (math.sqrt(squares / dof), dof) if dof else (None, 0)


def seeds_disagree(seed_sd_value: float | None, mean_difference: float | None) -> bool:
    """True when the setting's seeds disagree by more than its distance to the reference:
    ``seed_sd > |mean difference|``. False when either is unknown (None).

    Raises:
        ValueError: a negative or NaN standard deviation, or a NaN difference.
    """
    if seed_sd_value is None or mean_difference is None:
        return False
    if not seed_sd_value >= 0 or math.isnan(mean_difference):
        raise ValueError(f"need a standard deviation >= 0 and a difference that is a number "
                         f"(got {seed_sd_value!r} and {mean_difference!r}).")
    return seed_sd_value > abs(mean_difference)


# ------------------------------------------------------------------------------------------- verdict

def verdict(ci: tuple[float, float] | None, p_adjusted: float | None, alpha: float = 0.05) -> str:
    """One word for a row, from the confidence interval of the mean difference and the adjusted p.

    * :data:`BETTER`: the CI lies wholly above 0 (``low > 0``) **and** ``p_adjusted < alpha``;
    * :data:`WORSE`: the CI lies wholly below 0 (``high < 0``) **and** ``p_adjusted < alpha``;
    * :data:`UNDETERMINED`: no p (fewer than :data:`MIN_INSTANCES` non-zero instance differences) or no CI:
      the data cannot tell, which is not the same as "within noise", whatever the CI says;
    * :data:`WITHIN_NOISE`: otherwise (the CI contains 0, or the test is not significant).

    Raises:
        ValueError: ``alpha`` outside (0, 1), or a CI whose low end is above its high end.
    """
    alpha = _check_level(alpha, "alpha")
    if ci is None or p_adjusted is None:
        return UNDETERMINED
    low, high = ci
    if low > high:
        raise ValueError(f"a confidence interval must be (low, high) with low <= high (got {ci!r}).")
    if p_adjusted < alpha and low > 0:
        return BETTER
    if p_adjusted < alpha and high < 0:
        return WORSE
    return WITHIN_NOISE


# ------------------------------------------------------------------------------------------- planning

def minimal_detectable_difference(sd_instance_diff: float, n_instances: int, alpha: float = 0.05,
                                  power: float = 0.8) -> float:
    """The smallest true mean difference that a two-sided paired test over n instances detects with the
    given power, in the normal approximation::

        MDD = (z_{1 - alpha/2} + z_{power}) * sd / sqrt(n)

    (``scipy.stats.norm.ppf``; 2.8016 * sd / sqrt(n) for alpha 0.05 and power 0.8), ``sd`` the standard
    deviation of one instance's paired mean difference. The normal approximation is optimistic for a few
    instances (a t or Wilcoxon test needs somewhat more).

    Raises:
        ValueError: ``sd`` negative or not finite, ``n_instances`` below 1, ``alpha`` or ``power`` outside (0, 1).
    """
    from scipy.stats import norm

    if isinstance(sd_instance_diff, bool) or not (isinstance(sd_instance_diff, numbers.Real)
                                                  and math.isfinite(sd_instance_diff) and sd_instance_diff >= 0):
        raise ValueError(f"the standard deviation must be a finite number >= 0 (got {sd_instance_diff!r}).")
    n = _check_count(n_instances, "the number of instances")
    z = norm.ppf(1 - _check_level(alpha, "alpha") / 2) + norm.ppf(_check_level(power, "the power"))
    return float(z * sd_instance_diff / math.sqrt(n))


def planned_mdd(seed_sd: float, n_folds: int, n_seeds: int, correlation: float = 0.0, alpha: float = 0.05,
                power: float = 0.8) -> float:
    """:func:`minimal_detectable_difference` for a planned grid of ``n_folds x n_seeds`` instances::

        sd_diff = sqrt(2 (1 - rho)) * seed_sd,    MDD = (z_{1 - alpha/2} + z_{power}) * sd_diff / sqrt(F S)

    Assumptions: both settings have the same seed-to-seed sd (:func:`seed_sd`); the instances are
    independent (fold differences cancel in the paired difference); ``rho`` is the correlation of the two
    settings' results on the same instance, what common random numbers gain (0: independent seeds; an
    estimate is ``1 - ``:func:`crn_variance_ratio`); the normal approximation of
    :func:`minimal_detectable_difference`.

    Raises:
        ValueError: ``seed_sd`` negative or not finite, fewer than one fold or seed, ``correlation``
            outside [-1, 1], ``alpha`` or ``power`` outside (0, 1).
    """
    if isinstance(correlation, bool) or not (isinstance(correlation, numbers.Real) and -1 <= correlation <= 1):
        raise ValueError(f"the correlation must be a number in [-1, 1] (got {correlation!r}).")
    if isinstance(seed_sd, bool) or not (isinstance(seed_sd, numbers.Real) and math.isfinite(seed_sd)
                                         and seed_sd >= 0):
        raise ValueError(f"the seed standard deviation must be a finite number >= 0 (got {seed_sd!r}).")
    n = _check_count(n_folds, "the number of folds") * _check_count(n_seeds, "the number of seeds")
    return minimal_detectable_difference(math.sqrt(2 * (1 - correlation)) * seed_sd, n, alpha, power)


def crn_variance_ratio(matched_diffs: Sequence[float], mismatched_diffs: Sequence[float]) -> float:
    """What common random numbers gain: ``var(matched) / var(mismatched)`` (sample variances, ddof = 1).

    ``matched_diffs``: setting-minus-reference differences of runs with the same seed (s0 - s0, s1 - s1,
    ...); ``mismatched_diffs``: of runs with different seeds (s0 - s1, ...). Below 1, matching the seeds
    removes noise; with equal variances of both settings the ratio is ``1 - rho``, rho the correlation
    of :func:`planned_mdd`.

    Raises:
        ValueError: fewer than two values in either, a NaN or infinite value, or mismatched differences
            with zero variance (the ratio is undefined).
    """
    matched, mismatched = _finite(matched_diffs, "the matched differences"), _finite(
        mismatched_diffs, "the mismatched differences")
    if matched.size < 2 or mismatched.size < 2:
        raise ValueError(f"a variance needs at least two differences (got {matched.size} matched and "
                         f"{mismatched.size} mismatched).")
    denominator = float(mismatched.var(ddof=1))
    if denominator == 0:
        raise ValueError("the mismatched differences are all equal: their variance is 0 and the ratio undefined.")
    return float(matched.var(ddof=1)) / denominator


# -------------------------------------------------------------------------------------------- a row

@dataclass(frozen=True)
class InstanceComparison:
    """One setting against the reference over folds x seeds (:func:`compare_instances`)."""

    setting: str
    mean_difference: float  # hierarchical_mean of the paired per-case differences
    ci: tuple[float, float]  # hierarchical_bootstrap_ci
    p: float | None  # wilcoxon_over_instances; None with too few non-zero instances
    p_holm: float | None  # Holm-adjusted across the settings compared with the same reference
    verdict: str  # BETTER, WORSE, WITHIN_NOISE or UNDETERMINED
    n_instances: int  # (fold, seed) pairs both have
    n_cases: int  # paired cases used, summed over the instances
    seed_sd: float | None  # seed-to-seed sd of the setting itself (seed_sd); None without two seeds in a fold
    seeds_disagree: bool  # seed_sd > |mean_difference|
    cases_left_out: int = 0  # paired values not common to all seeds of their fold (crossed_cases)


def compare_instances(diffs_by_setting: Mapping[str, Mapping], values_by_setting: Mapping[str, Mapping],
                      resamples: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED, level: float = 0.95,
                      alpha: float = 0.05) -> dict[str, InstanceComparison]:
    """Each setting against one reference: :class:`InstanceComparison` per setting, Holm across them.

    Args:
        diffs_by_setting: ``{setting: {(fold, seed): {case: x - r}}}``, paired on (fold, seed, case).
        values_by_setting: ``{setting: {(fold, seed): x_fs}}``, the setting's own per-instance values
            (mean Dice over cases), for :func:`seed_sd`; the same settings as ``diffs_by_setting``.
        resamples, seed, level: of :func:`hierarchical_bootstrap_ci` (the same bootstrap seed for every
            setting).
        alpha: of :func:`verdict`.

    The differences are first restricted to the cases common to all seeds of each fold (:func:`crossed_cases`;
    :attr:`InstanceComparison.cases_left_out` says how many values that drops); the mean, the CI and the
    per-instance means of the Wilcoxon test all use the restricted differences.

    Raises:
        ValueError: the two mappings name different settings, or as the functions named above.
    """
    if set(diffs_by_setting) != set(values_by_setting):
        raise ValueError(f"the differences and the values must name the same settings (got "
                         f"{sorted(diffs_by_setting)} and {sorted(values_by_setting)}).")
    crossed = {s: crossed_cases(d) for s, d in diffs_by_setting.items()}
    p = {s: wilcoxon_over_instances(instance_means(d)) if d else None for s, (d, _) in crossed.items()}
    adjusted = dict(zip(p, holm(list(p.values()))))
    rows = {}
    for setting, (diffs, left_out) in crossed.items():
        mean, ci = hierarchical_mean(diffs), hierarchical_bootstrap_ci(diffs, resamples, seed, level)
        sd = seed_sd(values_by_setting[setting])
        rows[setting] = InstanceComparison(setting, mean, ci, p[setting], adjusted[setting],
                                           verdict(ci, adjusted[setting], alpha), len(diffs),
                                           sum(len(cases) for cases in diffs.values()), sd, seeds_disagree(sd, mean),
                                           left_out)
    return rows
