"""Facts about the pure functions (nnunet_polydice.loss.functional) and the validators (defaults).

Expected numbers are worked out by hand (shown in the comments) or with plain Python/numpy written
here, never with the code under test.
"""

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_polydice.loss import settings as defaults
from nnunet_polydice.loss.functional import (
    check_shapes,
    dice_index_from_sums,
    focal_power,
    overlap_sums,
    poly_coefficients,
    poly_loss,
    poly_series,
    soft_dice_index,
    tversky_index,
)
from nnunet_polydice.loss.settings import validate_gamma, validate_poly, validate_smooth, validate_tversky

REPO = Path(__file__).resolve().parents[1]
LN2 = math.log(2.0)


def t64(*values):
    return torch.tensor(values, dtype=torch.float64)


# --------------------------------------------------------------------------------------------------
# defaults: constants and import cost


def test_constants():
    assert (defaults.SMOOTH, defaults.TVERSKY_ALPHA, defaults.TVERSKY_BETA, defaults.FOCAL_GAMMA) == (
        1e-5, 0.3, 0.7, 0.75)
    validate_poly(defaults.DEFAULT_K, defaults.DEFAULT_EPSILON)  # the defaults are themselves valid


def test_package_and_defaults_do_not_import_torch():
    code = ("import sys, nnunet_polydice, nnunet_polydice.loss.settings; "
            "assert nnunet_polydice.__file__.startswith(sys.argv[1]), nnunet_polydice.__file__; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "NNUNET_POLYDICE_NO_HOOK": "1"}
    result = subprocess.run([sys.executable, "-c", code, str(REPO)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------------
# validators


@pytest.mark.parametrize("K, expected", [
    (1, 1), (3, 3), (3.0, 3), (np.int64(4), 4), ("5", 5), (defaults.MAX_K, defaults.MAX_K),
    (math.inf, math.inf), (float("inf"), math.inf), ("inf", math.inf), (" INF ", math.inf), ("infinity", math.inf),
])
def test_validate_poly_normalises_K(K, expected):
    got, eps, terms = validate_poly(K, 0.5)
    assert got == expected and type(got) is type(expected)
    assert eps == 0.5 and terms == ()


@pytest.mark.parametrize("K", [0, -1, 2.5, float("nan"), -math.inf, True, False, "abc", "2.5", None, [3], "-1"])
def test_validate_poly_refuses_bad_K(K):
    with pytest.raises(ValueError, match=r"^K must be a positive integer or inf \(got .*\)\.$"):
        validate_poly(K, 0.0)


def test_validate_poly_refuses_huge_K_and_points_to_inf():
    with pytest.raises(ValueError, match=r"K must be a positive integer no larger than 1000, or inf .*\(got 1001\)"):
        validate_poly(defaults.MAX_K + 1, 0.0)


@pytest.mark.parametrize("epsilon, message", [
    (-1.5, r"epsilon must be >= -1 so that the loss falls as the Dice rises \(got -1.5\)\."),
    (float("nan"), r"epsilon must be a finite number >= -1 \(got nan\)\."),
    (math.inf, r"epsilon must be a finite number >= -1 \(got inf\)\."),
    ("0.5", r"epsilon must be a finite number >= -1 \(got '0.5'\)\."),
    (None, r"epsilon must be a finite number >= -1 \(got None\)\."),
    (True, r"epsilon must be a finite number >= -1 \(got True\)\."),
])
def test_validate_poly_refuses_bad_epsilon(epsilon, message):
    with pytest.raises(ValueError, match=message):
        validate_poly(2, epsilon)


@pytest.mark.parametrize("K, epsilon, eps_terms", [
    (1, -1, None),            # c_1 = 0
    (1, -1.0, ()),
    (2, -1, (-0.5,)),         # c_1 = c_2 = 0
    (3, -1, (-0.5, -1 / 3)),
])
def test_validate_poly_refuses_identically_zero_loss(K, epsilon, eps_terms):
    with pytest.raises(ValueError, match=r"gives a loss that is identically zero; at least one coefficient"):
        validate_poly(K, epsilon, eps_terms)


@pytest.mark.parametrize("K, epsilon, eps_terms, expected", [
    (2, -1, None, (2, -1.0, ())),                     # c = (0, 1/2): allowed, the loss is u^2/2
    (math.inf, -1, None, (math.inf, -1.0, ())),       # -log D - u, derivative u/(1-u) >= 0
    (3, 1, [0.5, -0.2], (3, 1.0, (0.5, -0.2))),
    (3, 0, (np.float32(0.25),), (3, 0.0, (0.25,))),
    (math.inf, 0, (0.1, 0.2, 0.3, 0.4, 0.5), (math.inf, 0.0, (0.1, 0.2, 0.3, 0.4, 0.5))),
    (2, 0, (-0.5,), (2, 0.0, (-0.5,))),               # c_2 = 0 is the boundary, allowed
])
def test_validate_poly_accepts_poly_n(K, epsilon, eps_terms, expected):
    assert validate_poly(K, epsilon, eps_terms) == expected


@pytest.mark.parametrize("K, eps_terms, message", [
    (3, (-0.6,), r"eps_terms\[0\] \(eps_2\) must be >= -1/2 .*\(got -0.6\)\."),
    (4, (0.0, -0.4), r"eps_terms\[1\] \(eps_3\) must be >= -1/3 .*\(got -0.4\)\."),
    (3, (float("nan"),), r"eps_terms must hold finite numbers; eps_terms\[0\] \(eps_2\) is nan\."),
    (3, (0.1, "x"), r"eps_terms must hold finite numbers; eps_terms\[1\] \(eps_3\) is 'x'\."),
    (3, "0.1", r"eps_terms must be a sequence of numbers \(eps_2, eps_3, \.\.\.\) or None \(got '0.1'\)\."),
    (3, 0.1, r"eps_terms must be a sequence of numbers .* \(got 0.1\)\."),
    (2, (0.1, 0.2), r"eps_terms must have at most K - 1 = 1 entries \(eps_2\.\.eps_K\) for K=2 \(got 2\)\."),
    (1, (0.1,), r"eps_terms must have at most K - 1 = 0 entries .* for K=1 \(got 1\)\."),
])
def test_validate_poly_refuses_bad_eps_terms(K, eps_terms, message):
    with pytest.raises(ValueError, match=message):
        validate_poly(K, 0.0, eps_terms)


@pytest.mark.parametrize("alpha, beta, message", [
    (-0.1, 0.7, r"alpha must be a finite number >= 0 \(got -0.1\)\."),
    (float("nan"), 0.7, r"alpha must be a finite number >= 0 \(got nan\)\."),
    (0.3, math.inf, r"beta must be a finite number >= 0 \(got inf\)\."),
    (0.3, "0.7", r"beta must be a finite number >= 0 \(got '0.7'\)\."),
    (0, 0, r"alpha \+ beta must be > 0, .*\(got alpha=0.0, beta=0.0\)\."),
])
def test_validate_tversky_refuses(alpha, beta, message):
    with pytest.raises(ValueError, match=message):
        validate_tversky(alpha, beta)


def test_validate_tversky_gamma_smooth_accept():
    assert validate_tversky(0, 1) == (0.0, 1.0)
    assert validate_gamma(2) == 2.0
    assert validate_smooth(0) == 0.0 and validate_smooth(1e-5) == 1e-5


@pytest.mark.parametrize("gamma", [0, -1, float("nan"), math.inf, None, True])
def test_validate_gamma_refuses(gamma):
    with pytest.raises(ValueError, match=r"^gamma must be a finite number > 0 \(got .*\)\.$"):
        validate_gamma(gamma)


@pytest.mark.parametrize("smooth", [-1e-5, float("nan"), math.inf, None, "1e-5"])
def test_validate_smooth_refuses(smooth):
    with pytest.raises(ValueError, match=r"^smooth must be a finite number >= 0 \(got .*\)\.$"):
        validate_smooth(smooth)


# --------------------------------------------------------------------------------------------------
# indices


@pytest.mark.parametrize("tp, fp, fn, smooth, expected", [
    (2.0, 1.0, 0.0, 0.0, 4 / 5),          # 2*2 / (4 + 1)
    (2.0, 1.0, 0.0, 1.0, 5 / 6),          # (4 + 1) / (5 + 1)
    (1.0, 0.0, 1.0, 0.0, 2 / 3),
    (0.0, 0.0, 0.0, 1e-5, 1.0),           # empty class, empty prediction: s / s
    (0.0, 0.0, 0.0, 0.0, 0.0),            # 0 / max(0, 1e-8)
    (0.0, 3.0, 1.0, 1e-5, 1e-5 / (4 + 1e-5)),
])
def test_soft_dice_index_hand_values(tp, fp, fn, smooth, expected):
    got = soft_dice_index(t64(tp), t64(fp), t64(fn), smooth)
    assert got.item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("tp, fp, fn, alpha, beta, smooth, expected", [
    (2.0, 1.0, 2.0, 0.3, 0.7, 0.0, 2 / 3.7),       # 2 / (2 + 0.3 + 1.4)
    (2.0, 1.0, 2.0, 0.7, 0.3, 0.0, 2 / 3.3),
    (2.0, 1.0, 2.0, 0.0, 1.0, 0.0, 0.5),           # alpha=0, beta=1: recall TP / (TP + FN)
    (2.0, 1.0, 2.0, 1.0, 1.0, 0.0, 0.4),           # alpha=beta=1: Jaccard 2 / 5
    (0.0, 0.0, 0.0, 0.3, 0.7, 1e-5, 1.0),
])
def test_tversky_index_hand_values(tp, fp, fn, alpha, beta, smooth, expected):
    got = tversky_index(t64(tp), t64(fp), t64(fn), alpha, beta, smooth)
    assert got.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("smooth", [0.0, 1e-5, 1.0])
def test_dice_from_sums_is_soft_dice(smooth):
    g = torch.Generator().manual_seed(1)
    tp, fp, fn = (torch.rand(20, generator=g, dtype=torch.float64) * 10 for _ in range(3))
    # sum_pred = TP + FP, sum_gt = TP + FN
    torch.testing.assert_close(dice_index_from_sums(tp, tp + fp, tp + fn, smooth), soft_dice_index(tp, fp, fn, smooth))
    zero = t64(0.0)
    assert dice_index_from_sums(zero, zero, zero, smooth).item() == (1.0 if smooth else 0.0)


def test_tversky_half_half_is_dice_with_half_smoothing():
    g = torch.Generator().manual_seed(0)
    tp, fp, fn = (torch.rand(20, generator=g, dtype=torch.float64) * 10 for _ in range(3))
    torch.testing.assert_close(tversky_index(tp, fp, fn, 0.5, 0.5, 0.5e-5), soft_dice_index(tp, fp, fn, 1e-5))


# --------------------------------------------------------------------------------------------------
# the polynomial

# per-class loss at u = 1/2 and u = 1/5 for epsilon = 0 (by hand):
#   u = 1/2: K=1: .5, K=2: .5 + .125 = .625, K=3: .625 + .125/3, K=4: + .0625/4, K=inf: ln 2
#   u = 1/5: K=1: .2, K=2: .2 + .02 = .22, K=3: .22 + .008/3, K=inf: -ln .8
HAND_SERIES = {
    0.5: {1: 0.5, 2: 0.625, 3: 0.625 + 0.125 / 3, 4: 0.625 + 0.125 / 3 + 0.015625, math.inf: LN2},
    0.2: {1: 0.2, 2: 0.22, 3: 0.22 + 0.008 / 3, math.inf: -math.log(0.8)},
}


@pytest.mark.parametrize("u, K", [(u, K) for u, table in HAND_SERIES.items() for K in table])
@pytest.mark.parametrize("epsilon", [-1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
def test_poly_series_hand_values(u, K, epsilon):
    if K == 1 and epsilon == -1.0:
        return  # refused setting, see test_validate_poly_refuses_identically_zero_loss
    expected = HAND_SERIES[u][K] + epsilon * u
    assert poly_series(t64(u), K, epsilon).item() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert poly_loss(t64(1 - u), K, epsilon).item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("K, epsilon, eps_terms, u, expected", [
    # c = (1 + 1, 1/2 + 1/2, 1/3 - 1/5): 2*.5 + 1*.25 + (2/15)*.125
    (3, 1.0, (0.5, -0.2), 0.5, 1.0 + 0.25 + (2 / 15) * 0.125),
    # only eps_2 given for K=4: c = (1, 1/2 + 1, 1/3, 1/4)
    (4, 0.0, (1.0,), 0.5, 0.5 + 1.5 * 0.25 + 0.125 / 3 + 0.0625 / 4),
    # K = inf: ln 2 + eps_1 u + eps_2 u^2 + eps_3 u^3
    (math.inf, 0.5, (0.5, 0.0, 1.0), 0.5, LN2 + 0.25 + 0.125 + 0.0625),
    (math.inf, 0.0, (0.5,), 0.5, LN2 + 0.125),
])
def test_poly_n_hand_values(K, epsilon, eps_terms, u, expected):
    assert poly_series(t64(u), K, epsilon, eps_terms).item() == pytest.approx(expected, rel=1e-12)
    assert poly_loss(t64(1 - u), K, epsilon, eps_terms).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("K, epsilon, eps_terms, expected", [
    (1, 0.0, None, (1.0,)),
    (2, 1.0, None, (2.0, 0.5)),
    (3, 1.0, (0.5,), (2.0, 1.0, 1 / 3)),
    (3, -1.0, (-0.5, 0.0), (0.0, 0.0, 1 / 3)),
    ("inf", 0.0, None, ()),                             # no polynomial beside -log D
    (math.inf, 0.5, (0.0, 0.2, 0.0), (0.5, 0.0, 0.2)),  # eps_1, eps_2, eps_3; trailing zero dropped
])
def test_poly_coefficients(K, epsilon, eps_terms, expected):
    assert poly_coefficients(K, epsilon, eps_terms) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("K", [1, 2, 5, 17])
def test_poly_series_matches_sum_of_powers(K):
    rng = np.random.default_rng(K)
    u = rng.uniform(0, 1, size=50)
    eps = [0.7, *(rng.uniform(-1, 1, size=K - 1) / np.arange(2, K + 1))]   # eps_j >= -1/j
    expected = sum((1 / j + eps[j - 1]) * u ** j for j in range(1, K + 1))
    got = poly_series(torch.from_numpy(u), K, eps[0], eps[1:]).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("K", [1, 2, 3, 6])
@pytest.mark.parametrize("epsilon", [-1.0, 0.0, 0.5, 2.0])
def test_derivative_is_one_plus_epsilon_plus_powers(K, epsilon):
    if K == 1 and epsilon == -1.0:
        return  # refused setting
    u = torch.tensor([0.0, 0.3, 0.9, 1.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(poly_series(u, K, epsilon).sum(), u)
    x = u.detach().numpy()
    expected = 1 + epsilon + sum(x ** j for j in range(1, K))   # 1 + eps + u + ... + u^(K-1)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-12)
    assert (grad >= 0).all()


def test_log_dice_derivative_is_one_over_index():
    index = torch.tensor([1e-3, 0.25, 0.5, 1.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(poly_loss(index, math.inf, 0.5).sum(), index)
    # d/dD [-log D + 0.5 (1 - D)] = -1/D - 0.5
    np.testing.assert_allclose(grad.numpy(), -1 / index.detach().numpy() - 0.5, rtol=1e-12)


@pytest.mark.parametrize("u", [0.0, 0.3, 0.7, 0.95])
def test_truncated_series_increase_to_log_dice(u):
    values = [poly_series(t64(u), K).item() for K in range(1, 61)]
    limit = -math.log(1 - u)
    assert all(b >= a for a, b in zip(values, values[1:]))      # monotone in K
    assert all(v <= limit + 1e-15 for v in values)              # from below
    # remainder of the series after K terms is at most u^(K+1) / ((K+1)(1-u))
    assert limit - values[-1] <= u ** 61 / (61 * (1 - u)) + 1e-15
    assert poly_series(t64(u), math.inf).item() == pytest.approx(limit, rel=1e-14, abs=1e-300)


def test_log_dice_stays_finite_at_the_ends():
    # poly_series at u = 1: u is clamped to the largest float32 below 1, 1 - 2^-24
    u = torch.tensor([1.0, 1.5], dtype=torch.float32, requires_grad=True)
    value = poly_series(u, math.inf)
    assert torch.allclose(value, torch.full((2,), 24 * LN2))
    value.sum().backward()
    assert torch.isfinite(u.grad).all()
    # poly_loss takes the log of the index, which keeps the digits that 1 - u has lost
    index = torch.tensor([1e-12, 0.0], dtype=torch.float32, requires_grad=True)
    value = poly_loss(index, math.inf)
    expected = [-math.log(np.float32(1e-12)), -math.log(np.finfo(np.float32).tiny)]   # 27.63, 87.34
    np.testing.assert_allclose(value.detach().numpy(), expected, rtol=1e-6)
    value.sum().backward()
    assert torch.isfinite(index.grad).all()


def test_poly_functions_validate():
    with pytest.raises(ValueError, match=r"K must be a positive integer or inf \(got 0\)\."):
        poly_series(t64(0.5), 0)
    with pytest.raises(ValueError, match=r"identically zero"):
        poly_loss(t64(0.5), 1, -1.0)


# --------------------------------------------------------------------------------------------------
# focal power


@pytest.mark.parametrize("u, gamma, value, grad", [
    (0.25, 0.5, 0.5, 1.0),               # 0.25^.5; .5 * 0.25^-.5 = 1
    (0.3, 2.0, 0.09, 0.6),
    (0.5, 1.0, 0.5, 1.0),
    (0.0, 0.75, 0.0, 0.0),               # infinite derivative at 0 replaced by 0
    (1e-9, 0.75, 1e-9 ** 0.75, 0.75 * 1e-9 ** -0.25),   # above float64 eps: exact, large finite gradient
])
def test_focal_power_values_and_gradients(u, gamma, value, grad):
    x = t64(u).requires_grad_()
    out = focal_power(x, gamma)
    out.backward()
    assert out.item() == pytest.approx(value, rel=1e-12, abs=1e-300)
    assert x.grad.item() == pytest.approx(grad, rel=1e-12, abs=1e-300)


def test_focal_power_float32_floor():
    x = torch.tensor([0.0, 1e-8, -1e-7, 0.25], requires_grad=True)
    out = focal_power(x, 0.75)
    out.sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), [0, 0, 0, 0.25 ** 0.75], rtol=1e-6)
    assert torch.isfinite(x.grad).all() and x.grad[:3].eq(0).all()


# --------------------------------------------------------------------------------------------------
# sums and shapes

# one sample, 2 classes, 4 pixels: labels [1, 1, 0, 0], p(class 1) = [.9, .6, .2, .1]
#   class 1: TP = .9 + .6 = 1.5, sum_pred = 1.8, sum_gt = 2
#   class 0: p = [.1, .4, .8, .9]: TP = .8 + .9 = 1.7, sum_pred = 2.2, sum_gt = 2
#   mask [1, 0, 1, 1]: class 1: TP .9, sum_pred 1.2, sum_gt 1; class 0: TP 1.7, sum_pred 1.8, sum_gt 2
P1 = [0.9, 0.6, 0.2, 0.1]
LABELS = [1, 1, 0, 0]


def _probs():
    p1 = torch.tensor(P1, dtype=torch.float64)
    return torch.stack((1 - p1, p1)).unsqueeze(0)          # (1, 2, 4)


@pytest.mark.parametrize("target", [
    torch.tensor([[LABELS]], dtype=torch.int16),                       # (B, 1, X)
    torch.tensor([LABELS], dtype=torch.int64),                         # (B, X)
    torch.tensor([[LABELS]], dtype=torch.float32),                     # float label map
    torch.tensor([LABELS], dtype=torch.bool),                          # bool label map, 2 classes
    torch.tensor([[[0, 0, 1, 1], LABELS]], dtype=torch.bool),          # one-hot bool (B, C, X)
    torch.tensor([[[0, 0, 1, 1], LABELS]], dtype=torch.float32),       # one-hot float
])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("do_bg", [True, False])
def test_overlap_sums_hand_values(target, masked, do_bg):
    mask = torch.tensor([[[1, 0, 1, 1]]], dtype=torch.bool) if masked else None
    tp, sum_pred, sum_gt = overlap_sums(_probs(), target, mask, do_bg=do_bg)
    if masked:
        expected = ([[1.7, 0.9]], [[1.8, 1.2]], [[2.0, 1.0]])
    else:
        expected = ([[1.7, 1.5]], [[2.2, 1.8]], [[2.0, 2.0]])
    if not do_bg:
        expected = tuple([row[1:] for row in e] for e in expected)
    for got, want in zip((tp, sum_pred, sum_gt), expected):
        assert got.dtype == torch.float64   # float64 probs accumulate in float64
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    assert not tp.requires_grad  # no grad asked for here


def test_overlap_sums_batch_and_float_mask_and_soft_target():
    probs = torch.cat((_probs(), _probs()))                        # (2, 2, 4)
    labels = torch.tensor([LABELS, [0, 0, 0, 0]])
    tp, sum_pred, sum_gt = overlap_sums(probs, labels, batch=True)
    # class 1: TP 1.5 + 0, sum_pred 1.8 * 2, sum_gt 2 + 0; class 0: TP 1.7 + 2.2, sum_pred 2.2 * 2, sum_gt 2 + 4
    np.testing.assert_allclose(tp.numpy(), [3.9, 1.5], rtol=1e-6)
    np.testing.assert_allclose(sum_pred.numpy(), [4.4, 3.6], rtol=1e-6)
    np.testing.assert_allclose(sum_gt.numpy(), [6.0, 2.0], rtol=1e-6)
    # a float mask weighs pixels; a soft region target keeps its values
    soft = torch.tensor([[[0.0, 0.0, 1.0, 1.0], [0.5, 1.0, 0.0, 0.0]]])
    weights = torch.tensor([[[1.0, 0.5, 1.0, 1.0]]])
    tp, sum_pred, sum_gt = overlap_sums(_probs(), soft, weights)
    # class 1: TP = .9*.5 + .6*1*.5 = .75, sum_pred = .9 + .3 + .2 + .1 = 1.5, sum_gt = .5 + .5 = 1
    np.testing.assert_allclose(tp.numpy(), [[1.7, 0.75]], rtol=1e-6)
    np.testing.assert_allclose(sum_pred.numpy(), [[0.1 + 0.2 + 0.8 + 0.9, 1.5]], rtol=1e-6)
    np.testing.assert_allclose(sum_gt.numpy(), [[2.0, 1.0]], rtol=1e-6)


def test_overlap_sums_gradient_flows_to_probs_only():
    probs = _probs().requires_grad_()
    target = torch.tensor([[[0.0, 0.0, 1.0, 1.0], LABELS]], requires_grad=True)
    tp, sum_pred, sum_gt = overlap_sums(probs, target)
    assert tp.requires_grad and sum_pred.requires_grad and not sum_gt.requires_grad
    (tp.sum() + sum_pred.sum()).backward()
    assert target.grad is None
    np.testing.assert_allclose(probs.grad.numpy(), [[[1, 1, 2, 2], [2, 2, 1, 1]]])


def test_overlap_sums_half_precision_accumulates_in_float32():
    probs = torch.full((1, 2, 4096), 0.5, dtype=torch.bfloat16)
    labels = torch.zeros(1, 1, 4096, dtype=torch.int16)
    tp, sum_pred, sum_gt = overlap_sums(probs, labels)
    assert tp.dtype == sum_pred.dtype == sum_gt.dtype == torch.float32
    # a bf16 accumulator would stall at 256 (its spacing there is 2 > .5); float32 gets 2048 exactly
    np.testing.assert_array_equal(sum_pred.numpy(), [[2048.0, 2048.0]])
    np.testing.assert_array_equal(tp.numpy(), [[2048.0, 0.0]])


@pytest.mark.parametrize("probs_shape, target_shape, mask_shape, do_bg, message", [
    ((2, 3), (2, 3), None, True,
     r"The prediction must have shape \(B, C, \*spatial\) with at least one spatial axis \(got shape \(2, 3\)\)\."),
    ((2, 3, 4, 4), (2, 1, 4, 5), None, True,
     r"The target must be a label map .* of the prediction's shape \(2, 3, 4, 4\) "
     r"\(got target shape \(2, 1, 4, 5\)\)\."),
    ((2, 3, 4, 4), (2, 2, 4, 4), None, True, r"got target shape \(2, 2, 4, 4\)"),
    ((2, 3, 4, 4), (1, 4, 4), None, True, r"got target shape \(1, 4, 4\)"),
    ((2, 3, 4, 4), (2, 4, 4), (2, 4, 4), True,
     r"loss_mask must have shape \(B, 1, \*spatial\) = \(2, 1, 4, 4\) or the prediction's shape \(2, 3, 4, 4\) "
     r"\(got shape \(2, 4, 4\)\)\."),
    ((2, 3, 4, 4), (2, 4, 4), (2, 2, 4, 4), True, r"loss_mask must have shape"),
    ((2, 1, 4, 4), (2, 1, 4, 4), None, False,
     r"do_bg=False drops channel 0, so the prediction needs at least 2 channels \(got shape \(2, 1, 4, 4\)\)\."),
])
def test_bad_shapes_raise(probs_shape, target_shape, mask_shape, do_bg, message):
    probs = torch.rand(probs_shape)
    target = torch.zeros(target_shape)
    mask = None if mask_shape is None else torch.ones(mask_shape, dtype=torch.bool)
    with pytest.raises(ValueError, match=message):
        overlap_sums(probs, target, mask, do_bg=do_bg)


def test_check_shapes_tells_label_map_from_one_hot():
    probs = torch.rand(2, 3, 4, 4)
    assert check_shapes(probs, torch.zeros(2, 1, 4, 4)) is True
    assert check_shapes(probs, torch.zeros(2, 4, 4)) is True
    assert check_shapes(probs, torch.zeros(2, 3, 4, 4)) is False
    # one channel: a target of the same shape is a region target, as in nnU-Net
    assert check_shapes(torch.rand(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)) is False


# --------------------------------------------------------------------------------------------------
# label values and empty inputs: refused with a sentence (nnU-Net's own Dice raises in scatter_)


@pytest.mark.parametrize("bad, shown", [(2, "2"), (-1, "-1"), (0.5, "0.5"), (float("nan"), "nan")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [False, True])
def test_label_map_values_that_are_no_class_number_are_refused(bad, shown, dtype, batch):
    # 2 classes: only 0 and 1 name a class; 2 (>= C), -1, 0.5 and NaN match none of them
    labels = torch.tensor([[[1, 1, 0, bad]]], dtype=dtype)
    with pytest.raises(ValueError, match=rf"holds 1 value\(s\) that are not a class number where the loss is "
                                         rf"computed \(e\.g\. {shown}\); with 2 prediction channels a label map "
                                         rf"may hold only the whole numbers 0\.\.1 there"):
        overlap_sums(_probs(), labels, batch=batch)


@pytest.mark.parametrize("dtype", [torch.int16, torch.int64, torch.uint8])
def test_integer_label_maps_out_of_range_are_refused(dtype):
    labels = torch.tensor([[[1, 1, 0, 200 if dtype == torch.uint8 else 7]]], dtype=dtype)
    with pytest.raises(ValueError, match=r"\(e\.g\. (200|7)\)"):
        overlap_sums(_probs(), labels)
    if dtype != torch.uint8:
        labels[..., -1] = -3
        with pytest.raises(ValueError, match=r"\(e\.g\. -3\)"):
            overlap_sums(_probs(), labels)


def test_bad_labels_under_a_zero_mask_are_not_looked_at():
    # pixel 2 holds 7 but its mask is 0: the sums are the masked hand values of test_overlap_sums_hand_values
    labels = torch.tensor([[[1, 7, 0, 0]]], dtype=torch.int16)
    mask = torch.tensor([[[1, 0, 1, 1]]], dtype=torch.bool)
    tp, sum_pred, sum_gt = overlap_sums(_probs(), labels, mask)
    np.testing.assert_allclose(tp.numpy(), [[1.7, 0.9]], rtol=1e-6)
    np.testing.assert_allclose(sum_pred.numpy(), [[1.8, 1.2]], rtol=1e-6)
    np.testing.assert_allclose(sum_gt.numpy(), [[2.0, 1.0]], rtol=1e-6)
    # where the mask is 1 the same value is refused; a per-channel mask checks every voxel
    with pytest.raises(ValueError, match=r"\(e\.g\. 7\)"):
        overlap_sums(_probs(), labels, torch.ones(1, 1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(e\.g\. 7\)"):
        overlap_sums(_probs(), labels, mask.expand(1, 2, 4))


def test_label_check_counts_exactly_beyond_float32_whole_numbers():
    # 2**24 + 1 voxels of class 0: float32 sums 2**24 + 1 ones to 2**24, which would look like one unlabelled
    # voxel; the target's sums are then accumulated in float64, so a valid map passes and one bad voxel is caught
    n = 2 ** 24 + 1
    probs = torch.ones(1, 1, n)
    labels = torch.zeros(1, n, dtype=torch.uint8)
    _, _, sum_gt = overlap_sums(probs, labels)
    assert sum_gt.dtype == torch.float32 and sum_gt.item() == float(2 ** 24)   # n rounded to float32
    labels[0, 12345] = 1
    with pytest.raises(ValueError, match=r"holds 1 value\(s\) .*\(e\.g\. 1\)"):
        overlap_sums(probs, labels)


@pytest.mark.parametrize("probs_shape, target_shape", [
    ((0, 2, 4), (0, 1, 4)),        # B = 0
    ((1, 2, 0), (1, 1, 0)),        # zero spatial size
    ((2, 2, 4, 0), (2, 4, 0)),
    ((1, 0, 4), (1, 0, 4)),        # no channel
])
def test_empty_prediction_is_refused(probs_shape, target_shape):
    with pytest.raises(ValueError, match=rf"The prediction is empty \(shape {re.escape(str(probs_shape))}\): the "
                                         r"loss needs at least one sample, one channel and one voxel"):
        overlap_sums(torch.rand(probs_shape), torch.zeros(target_shape))


@pytest.mark.parametrize("value", [5.0, -1.0, 1.5, -1e-3, float("nan"), float("inf")])
def test_one_hot_or_region_targets_outside_0_1_are_refused(value):
    probs = torch.full((2, 3, 4, 4), 1 / 3)
    target = torch.zeros(2, 3, 4, 4)
    target[0, 1, 2, 2] = value
    with pytest.raises(ValueError, match=r"one-hot or region target .* may hold only values from 0 to 1"):
        overlap_sums(probs, target)
    with pytest.raises(ValueError, match=r"only values from 0 to 1"):
        overlap_sums(probs, target.to(torch.float64).to(probs.dtype), loss_mask=torch.ones(2, 1, 4, 4))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64, torch.float32, torch.bool])
def test_label_dtypes_give_the_same_sums(dtype):
    probs = torch.softmax(torch.randn(2, 2, 5, 5, generator=torch.Generator().manual_seed(0)), 1)
    labels = torch.randint(0, 2, (2, 1, 5, 5), generator=torch.Generator().manual_seed(1))
    expected = overlap_sums(probs, labels.to(torch.int16))
    for got, want in zip(overlap_sums(probs, labels.to(dtype)), expected):
        assert torch.equal(got, want)


@pytest.mark.parametrize("bad", [2**24 + 1, 2**31 - 1, -(2**40), 3])
def test_int64_labels_beyond_float32_precision_stay_refused(bad):
    labels = torch.zeros(1, 1, 4, 4, dtype=torch.int64)
    labels[0, 0, 1, 1] = bad
    with pytest.raises(ValueError, match=r"holds 1 value\(s\) that are not a class number"):
        overlap_sums(torch.full((1, 3, 4, 4), 1 / 3), labels)
