"""Facts about the loss modules (nnunet_polydice.loss.modules).

Expected values come from hand computations (in the comments) or from ``reference_loss`` below, a
plain-numpy transcription of SPEC.md section 1.1 that forms FP and FN directly
(``FP = sum m p (1 - g)``, ``FN = sum m (1 - p) g``) and sums explicit powers, sharing nothing with
the code under test.
"""

import itertools
import math
import shutil

import numpy as np
import pytest
import torch

from nnunet_polydice import FocalTverskyLoss, PolyDiceLoss, PolyTverskyLoss, TverskyLoss
from nnunet_polydice.loss import settings as defaults
from nnunet_polydice.loss.modules import OverlapIndexLoss


def softmax1(x):
    return torch.softmax(x, 1)


def reference_loss(probs, target, mask=None, *, batch_dice=False, do_bg=True, smooth=1e-5, index="dice",
                   alpha=0.5, beta=0.5, K=1, epsilon=0.0, eps_terms=(), gamma=None):
    """SPEC 1.1 in numpy, float64."""
    p = np.asarray(probs, dtype=np.float64)
    B, C = p.shape[:2]
    t = np.asarray(target)
    if t.shape == p.shape:
        g = t.astype(np.float64)
    else:
        labels = t.reshape((B, *p.shape[2:]))
        g = np.stack([labels == c for c in range(C)], axis=1).astype(np.float64)
    m = np.ones((B, 1, *p.shape[2:])) if mask is None else np.asarray(mask, dtype=np.float64)
    axes = tuple(range(2, p.ndim))
    if batch_dice:
        axes = (0, *axes)
    tp = (m * p * g).sum(axes)
    fp = (m * p * (1 - g)).sum(axes)
    fn = (m * (1 - p) * g).sum(axes)
    if not do_bg:
        tp, fp, fn = tp[..., 1:], fp[..., 1:], fn[..., 1:]
    if index == "dice":
        idx = (2 * tp + smooth) / np.maximum(2 * tp + fp + fn + smooth, 1e-8)
    else:
        idx = (tp + smooth) / np.maximum(tp + alpha * fp + beta * fn + smooth, 1e-8)
    u = 1 - idx
    eps = [epsilon, *eps_terms]
    if gamma is not None:
        per_class = u ** gamma
    elif K == math.inf:
        per_class = -np.log(idx) + sum(e * u ** j for j, e in enumerate(eps, start=1))
    else:
        eps += [0.0] * (K - len(eps))
        per_class = sum((1 / j + eps[j - 1]) * u ** j for j in range(1, K + 1))
    return float(per_class.mean())


def random_case(shape=(2, 3, 5, 4), seed=0, masked=False):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g, dtype=torch.float64)
    labels = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=g)
    mask = (torch.rand((shape[0], 1, *shape[2:]), generator=g) > 0.25) if masked else None
    return logits, labels, mask


# --------------------------------------------------------------------------------------------------
# hand-computed values

# one sample, 2 classes, 4 pixels, smooth = 0: labels [1, 1, 0, 0], p(class 1) = [1, 1, 1, 0]
#   class 1: TP 2, FP 1, FN 0 -> D = 4/5, u = 1/5
#   class 0: p = [0, 0, 0, 1]: TP 1, FP 0, FN 1 -> D = 2/3, u = 1/3
#   L = (L(1/3) + L(1/5)) / 2 with L(u) = sum_j u^j / j + eps u
#   K=1: (1/3 + 1/5)/2;  K=2: (1/3 + 1/18 + 1/5 + 1/50)/2;  K=3: adds (1/81 + 1/375)/2
#   K=inf: (ln 3/2 + ln 5/4)/2;  eps adds eps (1/3 + 1/5)/2 = eps * 4/15
HAND_PROBS = [[[0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0]]]
HAND_LABELS = [[[1, 1, 0, 0]]]
HAND_BASE = {
    1: (1 / 3 + 1 / 5) / 2,
    2: (1 / 3 + 1 / 18 + 1 / 5 + 1 / 50) / 2,
    3: (1 / 3 + 1 / 18 + 1 / 81 + 1 / 5 + 1 / 50 + 1 / 375) / 2,
    math.inf: (math.log(3 / 2) + math.log(5 / 4)) / 2,
}


@pytest.mark.parametrize("K", [1, 2, 3, math.inf])
@pytest.mark.parametrize("epsilon", [-0.5, 0.0, 0.5, 1.0, 2.0])
def test_poly_dice_hand_values(K, epsilon):
    loss = PolyDiceLoss(smooth=0.0, K=K, epsilon=epsilon)
    value = loss(torch.tensor(HAND_PROBS, dtype=torch.float64), torch.tensor(HAND_LABELS))
    assert value.item() == pytest.approx(HAND_BASE[K] + epsilon * 4 / 15, rel=1e-6)


def test_polynomial_is_applied_per_class_before_the_mean():
    value = PolyDiceLoss(smooth=0.0, K=2, epsilon=0.0)(torch.tensor(HAND_PROBS), torch.tensor(HAND_LABELS))
    mean_u = 4 / 15
    assert value.item() == pytest.approx(HAND_BASE[2], rel=1e-6)
    assert abs(value.item() - (mean_u + mean_u ** 2 / 2)) > 1e-3   # the polynomial of the mean differs


# Second sample, predicted perfectly: labels [0, 0, 0, 1], p(class 1) = [0, 0, 0, 1]
#   per sample: sample 2 has u = 0 for both classes
#   batch Dice, class 1: TP 2 + 1, FP 1, FN 0 -> D = 6/7, u = 1/7; class 0: TP 1 + 3, FP 0, FN 1 -> D = 8/9, u = 1/9
# Mask [1, 0, 1, 1] on sample 1: class 1: TP 1, FP 1, FN 0 -> u = 1/3; class 0: TP 1, FP 0, FN 1 -> u = 1/3
@pytest.mark.parametrize("batch_dice, do_bg, masked, expected_u", [
    (False, True, False, [1 / 3, 1 / 5, 0.0, 0.0]),
    (True, True, False, [1 / 9, 1 / 7]),
    (False, False, False, [1 / 5, 0.0]),
    (True, False, False, [1 / 7]),
    (False, True, True, [1 / 3, 1 / 3, 0.0, 0.0]),
    # batch + mask: class 0: TP 1 + 3, FP 0, FN 1 -> u = 1/9; class 1: TP 1 + 1, FP 1, FN 0 -> u = 1/5
    (True, True, True, [1 / 9, 1 / 5]),
])
@pytest.mark.parametrize("K", [1, 2, math.inf])
def test_batch_dice_do_bg_and_mask_hand_values(batch_dice, do_bg, masked, expected_u, K):
    probs = torch.tensor([HAND_PROBS[0], [[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]])
    labels = torch.tensor([HAND_LABELS[0], [[0, 0, 0, 1]]])
    mask = torch.tensor([[[1, 0, 1, 1]], [[1, 1, 1, 1]]], dtype=torch.bool) if masked else None
    value = PolyDiceLoss(batch_dice=batch_dice, do_bg=do_bg, smooth=0.0, K=K, epsilon=0.0)(probs, labels, mask)
    if K == math.inf:
        expected = np.mean([-math.log(1 - u) for u in expected_u])
    else:
        expected = np.mean([sum(u ** j / j for j in range(1, K + 1)) for u in expected_u])
    assert value.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_worst_prediction_hand_values():
    # every pixel wrong, smooth = 0: D = 0, u = 1 for both classes -> H_K + eps (harmonic numbers)
    probs = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]])
    labels = torch.tensor([[[1, 1, 0, 0]]])
    for K, harmonic in ((1, 1.0), (2, 1.5), (3, 11 / 6)):
        assert PolyDiceLoss(smooth=0.0, K=K, epsilon=0.5)(probs, labels).item() == pytest.approx(harmonic + 0.5)
    # K = inf with nnU-Net's smoothing: TP 0, FP 2, FN 2 -> D = s / (4 + s), loss = ln((4 + s)/s) + eps (1 - D)
    s = 1e-5
    expected = math.log((4 + s) / s) + 0.5 * (1 - s / (4 + s))
    assert PolyDiceLoss(smooth=s, K=math.inf, epsilon=0.5)(probs, labels).item() == pytest.approx(expected, rel=1e-5)


# Tversky, alpha 0.3, beta 0.7, smooth 0, on HAND_PROBS:
#   class 1: TP 2, FP 1, FN 0 -> T = 2 / 2.3, u = 0.3 / 2.3;  class 0: TP 1, FP 0, FN 1 -> T = 1 / 1.7, u = 0.7 / 1.7
U_TV = (0.3 / 2.3, 0.7 / 1.7)


@pytest.mark.parametrize("make, expected", [
    (lambda: TverskyLoss(smooth=0.0), (U_TV[0] + U_TV[1]) / 2),
    (lambda: TverskyLoss(smooth=0.0, alpha=0.7, beta=0.3), (0.7 / 2.7 + 0.3 / 1.3) / 2),
    (lambda: FocalTverskyLoss(smooth=0.0), (U_TV[0] ** 0.75 + U_TV[1] ** 0.75) / 2),
    (lambda: FocalTverskyLoss(smooth=0.0, gamma=2.0), (U_TV[0] ** 2 + U_TV[1] ** 2) / 2),
    (lambda: PolyTverskyLoss(smooth=0.0, K=2, epsilon=1.0), sum(2 * u + u * u / 2 for u in U_TV) / 2),
    (lambda: PolyTverskyLoss(smooth=0.0, K=math.inf, epsilon=0.0), -(math.log(2 / 2.3) + math.log(1 / 1.7)) / 2),
])
def test_tversky_family_hand_values(make, expected):
    value = make()(torch.tensor(HAND_PROBS, dtype=torch.float64), torch.tensor(HAND_LABELS))
    assert value.item() == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------------------------------
# against the numpy reference


@pytest.mark.parametrize("K", [1, 2, 3, math.inf])
@pytest.mark.parametrize("epsilon", [-0.5, 0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("batch_dice, do_bg, masked", list(itertools.product([False, True], repeat=3)))
def test_poly_dice_matches_reference(K, epsilon, batch_dice, do_bg, masked):
    logits, labels, mask = random_case(masked=masked)
    probs = torch.softmax(logits, 1)
    loss = PolyDiceLoss(batch_dice=batch_dice, do_bg=do_bg, K=K, epsilon=epsilon)
    expected = reference_loss(probs, labels, mask, batch_dice=batch_dice, do_bg=do_bg, K=K, epsilon=epsilon)
    assert loss(probs, labels, mask).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("K, epsilon, eps_terms", [
    (3, 1.0, (0.5, -0.2)), (4, -1.0, (0.0, 1.0)), (math.inf, 0.5, (-0.3, 0.2))])
@pytest.mark.parametrize("alpha, beta", [(0.3, 0.7), (0.7, 0.3), (0.5, 0.5)])
@pytest.mark.parametrize("batch_dice, do_bg, masked", [(False, True, False), (True, False, True)])
def test_poly_tversky_and_poly_n_match_reference(K, epsilon, eps_terms, alpha, beta, batch_dice, do_bg, masked):
    logits, labels, mask = random_case(seed=1, masked=masked)
    probs = torch.softmax(logits, 1)
    common = dict(batch_dice=batch_dice, do_bg=do_bg, K=K, epsilon=epsilon, eps_terms=eps_terms)
    value = PolyTverskyLoss(alpha=alpha, beta=beta, **common)(probs, labels, mask)
    expected = reference_loss(probs, labels, mask, index="tversky", alpha=alpha, beta=beta, **common)
    assert value.item() == pytest.approx(expected, rel=1e-6)
    value = PolyDiceLoss(**common)(probs, labels, mask)
    assert value.item() == pytest.approx(reference_loss(probs, labels, mask, **common), rel=1e-6)


@pytest.mark.parametrize("gamma", [None, 0.5, 0.75, 2.0])
@pytest.mark.parametrize("batch_dice, do_bg, masked", [(False, True, False), (True, False, True), (False, False, True)])
def test_tversky_and_focal_tversky_match_reference(gamma, batch_dice, do_bg, masked):
    logits, labels, mask = random_case(seed=2, masked=masked)
    probs = torch.softmax(logits, 1)
    common = dict(batch_dice=batch_dice, do_bg=do_bg)
    loss = TverskyLoss(**common) if gamma is None else FocalTverskyLoss(gamma=gamma, **common)
    expected = reference_loss(probs, labels, mask, index="tversky", alpha=0.3, beta=0.7, gamma=gamma or 1.0, **common)
    assert loss(probs, labels, mask).item() == pytest.approx(expected, rel=1e-6)


def test_target_formats_give_the_same_loss_and_gradient():
    logits, labels, mask = random_case(masked=True)
    one_hot = torch.cat([labels == c for c in range(3)], 1)
    targets = [labels, labels[:, 0], labels.to(torch.int16), labels.float(), one_hot, one_hot.float()]
    results = []
    for target in targets:
        x = logits.clone().requires_grad_()
        value = PolyDiceLoss(softmax1, K=3, epsilon=1.0)(x, target, mask)
        value.backward()
        results.append((value.detach(), x.grad))
    for value, grad in results[1:]:
        torch.testing.assert_close(value, results[0][0])
        torch.testing.assert_close(grad, results[0][1])


# --------------------------------------------------------------------------------------------------
# special cases and limits


@pytest.mark.parametrize("make", [
    lambda: PolyDiceLoss(K=1, epsilon=0.0), lambda: PolyDiceLoss(K=3, epsilon=2.0),
    lambda: PolyDiceLoss(K=math.inf, epsilon=-1.0), lambda: PolyDiceLoss(K=2, epsilon=-1.0, eps_terms=(1.0,)),
    lambda: PolyTverskyLoss(K=math.inf, epsilon=1.0), lambda: TverskyLoss(), lambda: FocalTverskyLoss(),
])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_perfect_prediction_is_the_minimum_zero(make, batch_dice):
    labels = torch.tensor([[[0, 1, 1, 0]], [[0, 0, 0, 0]]])              # class 2 absent everywhere
    probs = torch.cat([labels == c for c in range(3)], 1).float()       # perfect one-hot prediction
    loss = make()
    loss.batch_dice = batch_dice
    # with s > 0 every index is exactly (x + s)/(x + s) = 1, also for the absent class
    assert loss(probs, labels).item() == pytest.approx(0.0, abs=1e-6)


def test_k1_eps0_is_one_minus_dice_and_kinf_eps0_is_minus_log_dice():
    logits, labels, mask = random_case(masked=True)
    probs = torch.softmax(logits, 1)
    per_class = []   # per-sample, per-class Dice from the reference (K=1 of a single class = 1 - D)
    for b in range(2):
        for c in range(3):
            p = probs[b:b + 1, [c]]
            g = (labels[b:b + 1] == c).float()
            per_class.append(1 - reference_loss(p, g, mask[b:b + 1]))
    per_class = np.asarray(per_class)
    assert PolyDiceLoss(K=1, epsilon=0.0)(probs, labels, mask).item() == pytest.approx(1 - per_class.mean(), rel=1e-9)
    assert PolyDiceLoss(K=math.inf, epsilon=0.0)(probs, labels, mask).item() == pytest.approx(
        np.mean(-np.log(per_class)), rel=1e-9)


def test_truncated_losses_increase_towards_log_dice():
    logits, labels, mask = random_case(masked=True)
    probs = torch.softmax(logits, 1)
    values = [PolyDiceLoss(K=K, epsilon=0.0)(probs, labels, mask).item() for K in range(1, 41)]
    limit = PolyDiceLoss(K=math.inf, epsilon=0.0)(probs, labels, mask).item()
    assert all(b > a for a, b in zip(values, values[1:]))
    assert values[-1] < limit
    assert limit - values[-1] < 1e-6
    assert PolyDiceLoss(K=defaults.MAX_K, epsilon=0.0)(probs, labels, mask).item() == pytest.approx(limit, rel=1e-12)


def test_poly_tversky_half_half_is_poly_dice():
    logits, labels, mask = random_case(masked=True)
    for K, eps in ((1, 0.0), (3, 1.0), (math.inf, 0.5)):
        grads = []
        for loss in (PolyDiceLoss(softmax1, smooth=1e-5, K=K, epsilon=eps),
                     PolyTverskyLoss(softmax1, smooth=0.5e-5, K=K, epsilon=eps, alpha=0.5, beta=0.5)):
            x = logits.clone().requires_grad_()
            value = loss(x, labels, mask)
            value.backward()
            grads.append((value.detach(), x.grad))
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-14)
        same_smooth = PolyTverskyLoss(softmax1, K=K, epsilon=eps, alpha=0.5, beta=0.5)(logits, labels, mask)
        assert same_smooth.item() == pytest.approx(grads[0][0].item(), rel=1e-5)   # differs at order s


def test_tversky_is_poly_tversky_k1_and_focal_gamma1_is_tversky():
    logits, labels, mask = random_case(masked=True)
    values = [loss(logits, labels, mask).item() for loss in (
        TverskyLoss(softmax1), PolyTverskyLoss(softmax1, K=1, epsilon=0.0), FocalTverskyLoss(softmax1, gamma=1.0))]
    assert values[1] == pytest.approx(values[0], rel=1e-12)
    assert values[2] == pytest.approx(values[0], rel=1e-12)


# --------------------------------------------------------------------------------------------------
# monotone in the Dice: interpolating the prediction toward the target never raises the loss

MONOTONE_SETTINGS = (
    [("dice", dict(K=K, epsilon=e)) for K in (1, 2, 3, 5, math.inf) for e in (-1.0, -0.5, 0.0, 1.0, 2.0)
     if not (K == 1 and e == -1.0)]
    + [("dice", dict(K=3, epsilon=-1.0, eps_terms=(-0.5, 0.0))),
       ("dice", dict(K=math.inf, epsilon=-1.0, eps_terms=(-0.5,))),
       ("dice", dict(K=4, epsilon=0.0, eps_terms=(1.0, -1 / 3, 2.0)))]
    + [("poly_tversky", dict(K=K, epsilon=e)) for K in (2, math.inf) for e in (-1.0, 1.0)]
    + [("tversky", {}), ("focal", dict(gamma=0.5)), ("focal", dict(gamma=0.75)), ("focal", dict(gamma=2.0))]
)
CLASSES = {"dice": PolyDiceLoss, "poly_tversky": PolyTverskyLoss, "tversky": TverskyLoss, "focal": FocalTverskyLoss}


@pytest.mark.parametrize("family, kwargs", MONOTONE_SETTINGS, ids=lambda v: str(v))
@pytest.mark.parametrize("batch_dice, do_bg, masked", [(False, True, False), (True, False, True)])
def test_loss_falls_as_prediction_moves_to_target(family, kwargs, batch_dice, do_bg, masked):
    logits, labels, mask = random_case(shape=(2, 3, 6, 6), seed=3, masked=masked)
    start = torch.softmax(2 * logits, 1)
    goal = torch.cat([labels == c for c in range(3)], 1).double()
    loss = CLASSES[family](batch_dice=batch_dice, do_bg=do_bg, **kwargs)
    values = [loss((1 - t) * start + t * goal, labels, mask).item() for t in np.linspace(0, 1, 21)]
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:])), values
    assert values[0] > values[-1] and values[-1] == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------------------------------
# gradients, precision, compile


@pytest.mark.parametrize("make", [
    lambda **kw: PolyDiceLoss(softmax1, K=3, epsilon=1.0, **kw),
    lambda **kw: PolyDiceLoss(softmax1, K=math.inf, epsilon=0.5, eps_terms=(0.2,), **kw),
    lambda **kw: PolyTverskyLoss(softmax1, K=2, epsilon=-0.5, **kw),
    lambda **kw: TverskyLoss(softmax1, **kw),
    lambda **kw: FocalTverskyLoss(softmax1, **kw),
])
@pytest.mark.parametrize("batch_dice, do_bg", [(False, True), (True, False)])
def test_gradcheck_float64(make, batch_dice, do_bg):
    logits, labels, mask = random_case(shape=(2, 3, 3, 3), seed=4, masked=True)
    loss = make(batch_dice=batch_dice, do_bg=do_bg)
    x = logits.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: loss(v, labels, mask), (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("make", [
    lambda: PolyDiceLoss(softmax1, K=3, epsilon=1.0),
    lambda: PolyDiceLoss(softmax1, batch_dice=True, K=math.inf, epsilon=0.0),
    lambda: FocalTverskyLoss(softmax1),
])
def test_bf16_autocast_on_cpu_is_finite_and_close_to_float32(make):
    logits, labels, mask = random_case(shape=(2, 3, 32, 32), seed=5, masked=True)
    logits = logits.float()
    loss = make()
    reference = loss(logits, labels, mask)
    x = logits.to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(x, labels, mask)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert torch.isfinite(x.grad.float()).all()
    assert value.item() == pytest.approx(reference.item(), rel=1e-2)


@pytest.mark.parametrize("make", [
    lambda: PolyDiceLoss(softmax1, K=3, epsilon=1.0),
    lambda: FocalTverskyLoss(softmax1, batch_dice=True, do_bg=False),
])
def test_torch_compile_matches_eager(make):
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("torch.compile on CPU needs a C compiler and none is installed")
    logits, labels, mask = random_case(shape=(2, 3, 8, 8), seed=6, masked=True)
    logits = logits.float()
    loss = make()
    results = []
    for fn in (loss, torch.compile(loss, fullgraph=True)):   # fullgraph: no graph break, so no host sync
        x = logits.clone().requires_grad_()
        value = fn(x, labels, mask)
        value.backward()
        results.append((value.detach(), x.grad))
    torch.testing.assert_close(results[1], results[0], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# construction and bad inputs


def test_defaults_come_from_defaults_module():
    loss = PolyDiceLoss()
    assert (loss.K, loss.epsilon, loss.eps_terms) == (defaults.DEFAULT_K, defaults.DEFAULT_EPSILON, ())
    assert (loss.apply_nonlin, loss.batch_dice, loss.do_bg, loss.smooth, loss.ddp) == (None, False, True, 1e-5, True)
    tv = FocalTverskyLoss()
    assert (tv.alpha, tv.beta, tv.gamma) == (0.3, 0.7, 0.75)
    assert (PolyTverskyLoss().alpha, PolyTverskyLoss().beta) == (0.3, 0.7)
    assert PolyDiceLoss(K="inf").K == math.inf
    assert "K=3, epsilon=0.5, eps_terms=(0.1,)" in repr(PolyDiceLoss(K=3, epsilon=0.5, eps_terms=[0.1]))


def test_poly_settings_are_read_only():
    loss = PolyDiceLoss(K=3, epsilon=0.5)
    assert loss.coefficients == pytest.approx((1.5, 0.5, 1 / 3))
    for name in ("K", "epsilon", "eps_terms", "coefficients"):
        with pytest.raises(AttributeError):
            setattr(loss, name, 1)


def test_nnunet_positional_order_and_subclassing():
    loss = PolyDiceLoss(softmax1, True, False, 1e-5, False)
    settings = (loss.apply_nonlin, loss.batch_dice, loss.do_bg, loss.smooth, loss.ddp)
    assert settings == (softmax1, True, False, 1e-5, False)
    for cls in CLASSES.values():
        assert issubclass(cls, OverlapIndexLoss) and issubclass(cls, torch.nn.Module)


def test_ddp_true_outside_a_process_group_is_plain_batch_dice():
    logits, labels, mask = random_case(masked=True)
    a = PolyDiceLoss(softmax1, batch_dice=True, ddp=True)(logits, labels, mask)
    b = PolyDiceLoss(softmax1, batch_dice=True, ddp=False)(logits, labels, mask)
    assert a.item() == b.item()


@pytest.mark.parametrize("cls, kwargs, message", [
    (PolyDiceLoss, dict(K=0), r"K must be a positive integer or inf \(got 0\)\."),
    (PolyDiceLoss, dict(K=2.5), r"K must be a positive integer or inf \(got 2.5\)\."),
    (PolyDiceLoss, dict(K=True), r"K must be a positive integer or inf \(got True\)\."),
    (PolyDiceLoss, dict(epsilon=-2), r"epsilon must be >= -1 .*\(got -2.0\)\."),
    (PolyDiceLoss, dict(K=1, epsilon=-1), r"identically zero"),
    (PolyDiceLoss, dict(K=2, eps_terms=(0.1, 0.2)), r"eps_terms must have at most K - 1 = 1 entries"),
    (PolyDiceLoss, dict(eps_terms=(-0.9,)), r"eps_terms\[0\] \(eps_2\) must be >= -1/2"),
    (PolyDiceLoss, dict(smooth=-1), r"smooth must be a finite number >= 0 \(got -1\)\."),
    (PolyDiceLoss, dict(apply_nonlin="softmax"), r"apply_nonlin must be a callable or None \(got 'softmax'\)\."),
    (PolyDiceLoss, dict(batch_dice="False"), r"batch_dice must be True or False \(got 'False'\)\."),
    (PolyDiceLoss, dict(do_bg=None), r"do_bg must be True or False \(got None\)\."),
    (PolyDiceLoss, dict(ddp=2), r"ddp must be True or False \(got 2\)\."),
    (PolyTverskyLoss, dict(alpha=-0.3), r"alpha must be a finite number >= 0 \(got -0.3\)\."),
    (PolyTverskyLoss, dict(K=-3), r"K must be a positive integer or inf \(got -3\)\."),
    (TverskyLoss, dict(alpha=0, beta=0), r"alpha \+ beta must be > 0"),
    (TverskyLoss, dict(beta=float("nan")), r"beta must be a finite number >= 0 \(got nan\)\."),
    (FocalTverskyLoss, dict(gamma=0), r"gamma must be a finite number > 0 \(got 0\)\."),
    (FocalTverskyLoss, dict(gamma=-0.75), r"gamma must be a finite number > 0 \(got -0.75\)\."),
])
def test_bad_constructor_arguments_raise_value_error(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError):
        TverskyLoss(K=3)          # Tversky has no polynomial
    with pytest.raises(TypeError):
        PolyDiceLoss(softmax1, False, True, 1e-5, True, 3)     # K is keyword-only


@pytest.mark.parametrize("x_shape, y_shape, mask_shape, message", [
    ((2, 3, 8, 8), (2, 1, 8, 7), None, r"The target must be a label map .*\(got target shape \(2, 1, 8, 7\)\)\."),
    ((2, 3, 8, 8), (2, 4, 8, 8), None, r"got target shape \(2, 4, 8, 8\)"),
    ((2, 3, 8, 8), (3, 8, 8), None, r"got target shape \(3, 8, 8\)"),
    ((2, 3, 8, 8), (2, 8, 8), (2, 1, 8, 8, 1), r"loss_mask must have shape .*\(got shape \(2, 1, 8, 8, 1\)\)\."),
    ((2, 3), (2, 3), None, r"at least one spatial axis"),
])
@pytest.mark.parametrize("cls", list(CLASSES.values()))
def test_forward_refuses_mismatched_shapes(cls, x_shape, y_shape, mask_shape, message):
    mask = None if mask_shape is None else torch.ones(mask_shape, dtype=torch.bool)
    with pytest.raises(ValueError, match=message):
        cls(softmax1)(torch.randn(x_shape), torch.zeros(y_shape), mask)


def test_do_bg_false_needs_two_channels():
    with pytest.raises(ValueError, match=r"do_bg=False drops channel 0"):
        PolyDiceLoss(torch.sigmoid, do_bg=False)(torch.randn(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))


@pytest.mark.parametrize("bad", [3, -1, 1.5])
@pytest.mark.parametrize("batch_dice", [False, True])
@pytest.mark.parametrize("cls", list(CLASSES.values()))
def test_forward_refuses_labels_that_are_no_class_number(cls, bad, batch_dice):
    # 3 channels: labels 0, 1, 2 only; nnU-Net's MemoryEfficientSoftDiceLoss raises too (in scatter_)
    labels = torch.zeros(2, 1, 4, 4)
    labels[1, 0, 2, 3] = bad
    loss = cls(softmax1, batch_dice=batch_dice, do_bg=False)
    with pytest.raises(ValueError, match=rf"\(e\.g\. {bad:g}\); with 3 prediction channels a label map may hold "
                                         r"only the whole numbers 0\.\.2 there"):
        loss(torch.randn(2, 3, 4, 4), labels)


@pytest.mark.parametrize("x_shape, y_shape", [((0, 3, 4, 4), (0, 1, 4, 4)), ((2, 3, 0, 4), (2, 1, 0, 4))])
@pytest.mark.parametrize("cls", list(CLASSES.values()))
def test_forward_refuses_an_empty_batch(cls, x_shape, y_shape):
    with pytest.raises(ValueError, match=r"The prediction is empty .* an empty batch has no Dice"):
        cls(softmax1)(torch.randn(x_shape), torch.zeros(y_shape))


def test_compiled_loss_checks_labels_without_a_graph_break():
    # under torch.compile the label check is an asynchronous assertion (no host sync, fullgraph still compiles);
    # on the CPU it raises at once with the same sentence
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("torch.compile on CPU needs a C compiler and none is installed")
    loss = torch.compile(PolyDiceLoss(softmax1, K=2, epsilon=1.0), fullgraph=True)
    labels = torch.zeros(2, 1, 4, 4)
    assert torch.isfinite(loss(torch.randn(2, 3, 4, 4), labels))
    labels[0, 0, 1, 1] = 3
    with pytest.raises(RuntimeError, match=r"not a class number where the loss is computed; with 3 prediction "
                                           r"channels a label map may hold only the whole numbers 0\.\.2"):
        loss(torch.randn(2, 3, 4, 4), labels)
