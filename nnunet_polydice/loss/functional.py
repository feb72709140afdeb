"""The math of the Poly Dice family as small, stateless torch functions.

The loss modules in :mod:`nnunet_polydice.loss.modules` only wire these together:

1. :func:`overlap_sums` turns probabilities and a target into per-class sums (nnU-Net's
   memory-efficient way: ``TP = sum m p g``, ``sum_pred = sum m p``, ``sum_gt = sum m g``; then
   ``FP = sum_pred - TP`` and ``FN = sum_gt - TP`` without any full-size FP/FN tensor);
2. :func:`soft_dice_index` / :func:`dice_index_from_sums` or :func:`tversky_index` turns them into
   an overlap index;
3. :func:`poly_loss` (from the index) / :func:`poly_series` (from ``u = 1 - index``), or
   :func:`focal_power`, turns it into a per-class loss, which the module then averages.

Definitions (the project's reading of Aizawa, "Polynomial Dice Loss for Medical
Image Segmentation", arXiv 2606.23373, following PolyLoss, Leng et al., ICLR 2022)::

    D_c = (2 TP + s) / max(2 TP + FP + FN + s, 1e-8)                 soft Dice, s = 1e-5
    T_c = (TP + s) / max(TP + alpha FP + beta FN + s, 1e-8)          Tversky
    u_c = 1 - D_c   (or 1 - T_c)
    L_c = sum_{j=1..K} (1/j + eps_j) u_c^j                           K = 1, 2, 3, ...
    L_c = -log(D_c) + sum_j eps_j u_c^j                              K = inf (the full series)

with ``eps_1 = epsilon`` and ``(eps_2, eps_3, ...) = eps_terms`` (see :mod:`nnunet_polydice.loss.settings`
for the rule and its checks). Why this reading: the README, "How we read the paper".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import torch

from nnunet_polydice.loss.settings import SMOOTH, coefficients, validate_gamma, validate_poly

__all__ = [
    "soft_dice_index",
    "dice_index_from_sums",
    "tversky_index",
    "poly_coefficients",
    "poly_series",
    "poly_loss",
    "focal_power",
    "overlap_sums",
    "check_shapes",
]

#: Floor of the denominators (nnU-Net's convention).
DENOMINATOR_FLOOR = 1e-8


def soft_dice_index(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, smooth: float = SMOOTH) -> torch.Tensor:
    """Soft Dice index per entry: ``D = (2 TP + s) / max(2 TP + FP + FN + s, 1e-8)``.

    This is nnU-Net's convention (``MemoryEfficientSoftDiceLoss`` with ``smooth = s``). With ``s > 0``,
    ``D >= s / (FP + FN + s) > 0``, and a class absent from both prediction and target has ``D = 1``.
    With ``s = 0`` such a class has ``D = 0`` (the 1e-8 floor keeps it finite).

    Args:
        tp, fp, fn: per-class sums of true positives, false positives and false negatives (any
            broadcastable shapes, typically ``(B, C)`` or ``(C,)`` in float32).
        smooth: ``s >= 0``, added to numerator and denominator.
    """
    return (2.0 * tp + smooth) / (2.0 * tp + fp + fn + smooth).clamp_min(DENOMINATOR_FLOOR)


def dice_index_from_sums(
    tp: torch.Tensor, sum_pred: torch.Tensor, sum_gt: torch.Tensor, smooth: float = SMOOTH
) -> torch.Tensor:
    """:func:`soft_dice_index` from the sums of :func:`overlap_sums`, in nnU-Net's own form.

    ``2 TP + FP + FN = sum_pred + sum_gt``, so ``D = (2 TP + s) / max(sum_pred + sum_gt + s, 1e-8)``:
    the formula of nnU-Net's ``MemoryEfficientSoftDiceLoss``, with fewer operations (and rounding)
    than forming FP and FN first. Sums of probabilities and masks are not negative, so with
    ``s >= 1e-8`` the floor cannot bind and is skipped (one operation less forward, three backward).
    """
    denominator = sum_pred + sum_gt + smooth
    if smooth < DENOMINATOR_FLOOR:
        denominator = denominator.clamp_min(DENOMINATOR_FLOOR)
    return (2.0 * tp + smooth) / denominator


def tversky_index(
    tp: torch.Tensor,
    fp: torch.Tensor,
    fn: torch.Tensor,
    alpha: float,
    beta: float,
    smooth: float = SMOOTH,
) -> torch.Tensor:
    """Tversky index per entry: ``T = (TP + s) / max(TP + alpha FP + beta FN + s, 1e-8)``.

    ``alpha = beta = 0.5`` gives the soft Dice of :func:`soft_dice_index` (same smoothing up to a
    factor 2 in ``s``: ``(TP + s)/(TP + FP/2 + FN/2 + s)`` equals ``(2TP + 2s)/(2TP + FP + FN + 2s)``,
    so ``smooth = s/2`` reproduces a Dice smoothed with ``s`` exactly; the losses keep the project's
    definition and pass the same ``s`` to both, a difference of order ``s``).
    ``beta > alpha`` penalises false negatives more (the usual choice is 0.3 / 0.7).

    Args:
        tp, fp, fn: per-class sums (see :func:`soft_dice_index`).
        alpha: weight of the false positives, ``>= 0``.
        beta: weight of the false negatives, ``>= 0``.
        smooth: ``s >= 0``.
    """
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth).clamp_min(DENOMINATOR_FLOOR)


# --------------------------------------------------------------------------------------------------
# the polynomial


def poly_coefficients(K, epsilon: float = 0.0, eps_terms: Optional[Sequence[float]] = None) -> tuple[float, ...]:
    """The coefficients of the polynomial part of the loss, after validation.

    For finite K: ``(c_1, ..., c_K)`` with ``c_j = 1/j + eps_j``, the loss being ``sum_j c_j u^j``.
    For ``K = inf``: ``(eps_1, eps_2, ...)`` without trailing zeros (empty when there is no
    perturbation), the polynomial added to ``-log(D)``.

    Raises:
        ValueError: for settings refused by :func:`nnunet_polydice.loss.settings.validate_poly`.
    """
    return coefficients(*validate_poly(K, epsilon, eps_terms))


def _scaled(u: torch.Tensor, c: float) -> torch.Tensor:
    return u if c == 1.0 else u * c


def _polynomial(u: torch.Tensor, coefficients: Sequence[float]) -> torch.Tensor:
    """``sum_{j=1..n} c_j u^j`` by Horner's scheme ``u (c_1 + u (c_2 + ... + u (c_{n-1} + u c_n)))``.

    One pass from the innermost coefficient outwards, no list of powers; multiplications by 1 and
    additions of 0 are skipped. The loss is a handful of operations on ``(B, C)`` tensors, so their
    number (forward and backward) is what it costs: 3 for ``K = 2``, none for ``K = 1, epsilon = 0``.
    """
    acc = _scaled(u, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        if c != 0.0:
            acc = acc + c
        acc = acc * u
    return acc


def _poly_of_index(index: torch.Tensor, K, coefficients: Sequence[float]) -> torch.Tensor:
    """The loss from the index, with coefficients from :func:`poly_coefficients` (no validation)."""
    return _series(lambda: 1.0 - index, K, coefficients,
                   lambda: -torch.log(index.clamp_min(torch.finfo(index.dtype).tiny)))


def _series(u, K, coefficients: Sequence[float], log_term) -> torch.Tensor:
    """``sum_j c_j u^j`` for finite K; ``log_term() + sum_j eps_j u^j`` for K = inf (``u`` is a callable, so
    that ``1 - index`` is only formed where the polynomial needs it)."""
    if K != math.inf:
        return _polynomial(u(), coefficients)
    loss = log_term()
    return loss + _polynomial(u(), coefficients) if coefficients else loss


def poly_series(
    u: torch.Tensor,
    K,
    epsilon: float = 0.0,
    eps_terms: Optional[Sequence[float]] = None,
) -> torch.Tensor:
    """The polynomial of ``u = 1 - D`` elementwise (the per-class Poly Dice loss).

    ::

        L(u) = sum_{j=1..K} (1/j + eps_j) u^j          K finite (Horner's scheme, one pass)
        L(u) = -log(1 - u) + sum_j eps_j u^j            K = inf

    with ``eps_1 = epsilon`` and ``(eps_2, eps_3, ...) = eps_terms``. Special cases: ``K=1, epsilon=0``
    is ``u`` (the soft Dice loss); ``K=inf, epsilon=0`` is ``-log(1 - u)`` (the log-Dice loss), the
    limit of the truncated sums, which increase with K towards it for ``u`` in ``[0, 1)``. The
    derivative (no ``eps_terms``) is ``1 + epsilon + u + u^2 + ... + u^(K-1)``, which is
    ``>= 0`` on ``[0, 1]`` whenever ``epsilon >= -1``.

    For ``K = inf``, ``-log1p(-u)`` is used with ``u`` clamped to the largest number below 1 of its
    dtype, so the value stays finite at ``u = 1`` (at most about 16.6 in float32, 36.7 in float64, and
    a zero gradient there). When the index itself is at hand, :func:`poly_loss` is more accurate near
    ``u = 1``, where ``u`` has lost the digits of ``1 - u``.

    Raises:
        ValueError: for settings refused by :func:`nnunet_polydice.loss.settings.validate_poly`.
    """
    K, epsilon, eps_terms = validate_poly(K, epsilon, eps_terms)
    below_one = 1.0 - torch.finfo(u.dtype).eps / 2.0
    return _series(lambda: u, K, coefficients(K, epsilon, eps_terms), lambda: -torch.log1p(-u.clamp_max(below_one)))


def poly_loss(
    index: torch.Tensor,
    K,
    epsilon: float = 0.0,
    eps_terms: Optional[Sequence[float]] = None,
) -> torch.Tensor:
    """:func:`poly_series` of ``u = 1 - index``, taking the logarithm of the index itself for K = inf.

    ::

        L = sum_{j=1..K} (1/j + eps_j) (1 - index)^j        K finite
        L = -log(index) + sum_j eps_j (1 - index)^j          K = inf

    For ``K = inf`` the index is floored at the smallest positive normal number of its dtype (about
    1.2e-38 in float32), so the loss stays finite (at most about 87.3 in float32) with a zero gradient
    below that floor. With nnU-Net's smoothing ``s = 1e-5`` the Dice never gets there
    (``D >= s / (FP + FN + s)``); with ``s = 0`` a class with no true positive has ``D = 0`` and
    takes the floor value.

    Raises:
        ValueError: for settings refused by :func:`nnunet_polydice.loss.settings.validate_poly`.
    """
    K, epsilon, eps_terms = validate_poly(K, epsilon, eps_terms)
    return _poly_of_index(index, K, coefficients(K, epsilon, eps_terms))


def focal_power(u: torch.Tensor, gamma: float) -> torch.Tensor:
    """``u^gamma`` elementwise with a finite gradient everywhere (the focal-Tversky transform).

    For ``gamma < 1`` the derivative ``gamma u^(gamma - 1)`` is infinite at ``u = 0`` (a perfect
    prediction). Entries with ``u <= eps`` (the machine epsilon of the dtype, 1.2e-7 in float32,
    below which ``u = 1 - T`` is rounding noise anyway) therefore give the value 0 and a zero
    gradient; above it the value and the gradient are exact (the gradient is then at most
    ``gamma eps^(gamma - 1)``). Negative ``u`` (an index a rounding error above 1) also gives 0.

    Raises:
        ValueError: if gamma is not finite and > 0.
    """
    gamma = validate_gamma(gamma)
    if gamma >= 1.0:
        return u.clamp_min(0.0).pow(gamma)
    floor = torch.finfo(u.dtype).eps
    return torch.where(u > floor, u.clamp_min(floor).pow(gamma), torch.zeros_like(u))


# --------------------------------------------------------------------------------------------------
# sums and shapes


def _check_do_bg(shape, do_bg: bool) -> None:
    if not do_bg and shape[1] < 2:
        raise ValueError(
            f"do_bg=False drops channel 0, so the prediction needs at least 2 channels (got shape {tuple(shape)})."
        )


def check_shapes(
    probs: torch.Tensor, target: torch.Tensor, loss_mask: Optional[torch.Tensor] = None, do_bg: bool = True
) -> bool:
    """Check the shapes of a prediction, its target and mask (host-side, no device sync).

    Accepted, with ``probs`` of shape ``(B, C, *spatial)`` and at least one spatial axis:

    - ``target`` of shape ``(B, 1, *spatial)`` or ``(B, *spatial)``: a label map with values in
      ``0..C-1`` (checked later by :func:`overlap_sums`, on its small per-class sums);
    - ``target`` of shape ``(B, C, *spatial)``: one-hot or region target (bool, or numbers used as
      they are, so soft targets keep their values). When ``C == 1`` a target of that shape is
      taken as the region target, as nnU-Net does.
    - ``loss_mask`` of shape ``(B, 1, *spatial)`` (one mask for all channels) or ``(B, C, *spatial)``,
      1/True where the loss is computed and 0/False where it is not (e.g. the ignore label).

    Returns:
        True when ``target`` is a label map, False when it is one-hot/region.

    Raises:
        ValueError: naming the argument and the shapes given, also for an empty prediction (a size 0
            anywhere: no sample, channel or voxel).
    """
    shape = tuple(probs.shape)
    if probs.ndim < 3:
        raise ValueError(
            f"The prediction must have shape (B, C, *spatial) with at least one spatial axis (got shape {shape})."
        )
    if 0 in shape:
        raise ValueError(
            f"The prediction is empty (shape {shape}): the loss needs at least one sample, one channel and one "
            f"voxel (B >= 1, C >= 1 and every spatial size >= 1); an empty batch has no Dice."
        )
    _check_do_bg(shape, do_bg)
    target_shape = tuple(target.shape)
    if target_shape == shape:
        is_label_map = False
    elif target_shape == (shape[0], *shape[2:]) or target_shape == (shape[0], 1, *shape[2:]):
        is_label_map = True
    else:
        raise ValueError(
            f"The target must be a label map of shape (B, 1, *spatial) or (B, *spatial), or a one-hot/region "
            f"target of the prediction's shape {shape} (got target shape {target_shape})."
        )
    if loss_mask is not None:
        mask_shape = tuple(loss_mask.shape)
        if mask_shape != (shape[0], 1, *shape[2:]) and mask_shape != shape:
            raise ValueError(
                f"loss_mask must have shape (B, 1, *spatial) = {(shape[0], 1, *shape[2:])} or the prediction's "
                f"shape {shape} (got shape {mask_shape})."
            )
    return is_label_map


def _one_hot_dtype(probs: torch.Tensor) -> torch.dtype:
    """dtype of the one-hot target and of bool masks: the probabilities' dtype, on every device.

    Measured with ``benchmarks/bench_loss.py --onehot bool|float``: a bool one-hot (one byte per voxel
    and class) was 25% slower forward + backward on the CPU, whose kernels copy a bool operand to
    float first, and 3 to 8% slower on an H200 (fp16 autocast, nnU-Net's shapes), though it lowered
    the peak memory of ``DC_and_CE_loss`` by 15% there. With the probabilities' dtype the loss matches
    nnU-Net's ``MemoryEfficientSoftDiceLoss`` in time and peak memory on both.
    """
    return probs.dtype


#: float32 counts whole numbers exactly up to 2**24; a target's sums over more voxels are accumulated
#: in float64, so that the label check of :func:`overlap_sums` stays exact.
EXACT_FLOAT32_COUNT = 2 ** 24


def _check_labels(target, onehot, mask, sum_gt, voxels: int, axes) -> None:
    """Refuse a label map with a value that is no class number ``0..C-1`` where the loss is computed.

    The one-hot is made by comparing the labels with the class numbers, so such a voxel (a label
    ``>= C``, negative, fractional or NaN) is 0 in every channel: the per-class sums ``sum_gt`` (made
    anyway) then add up to fewer voxels than the sums cover. The check compares those small
    ``(B, C)`` or ``(C,)`` sums with the voxel count (the mask's sum under a one-channel mask): one
    reduction over the classes, no pass over the full tensors (under a per-channel mask every voxel
    is checked, with one more reduction, of the one-hot).

    How it fails: on CPU tensors in eager mode, a :class:`ValueError` that shows the bad values (the
    host reads one boolean, about 10 microseconds). On a GPU, and under ``torch.compile`` on any
    device, the same condition goes to ``torch._assert_async``: no host sync and no graph break
    (``fullgraph=True`` still compiles); compiled on the CPU it raises a RuntimeError with the
    sentence, on CUDA it is a device-side assertion, as nnU-Net's own Dice gives (its ``scatter_``).
    """
    if mask is None:
        expected, labelled = voxels, sum_gt.sum(-1)
    elif mask.shape[1] == 1:
        expected, labelled = mask.sum(axes, dtype=sum_gt.dtype).squeeze(-1), sum_gt.sum(-1)
    else:
        expected, labelled = voxels, onehot.sum(axes, dtype=sum_gt.dtype).sum(-1)
    ok = ((expected - labelled) < 0.5).all()   # counts of whole voxels: a shortfall is at least 1
    num_classes = onehot.shape[1]
    if sum_gt.device.type == "cpu" and not torch.compiler.is_compiling():
        if not bool(ok):
            raise _label_error(target, mask, num_classes)
    else:
        torch._assert_async(ok, _labels_allowed(num_classes, "The target label map holds a value that is not a "
                                                             "class number where the loss is computed; "))


def _compare_dtype_labels(target: torch.Tensor) -> torch.Tensor:
    """The label map in a dtype the comparison with the class numbers is fast in.

    Comparing int64 (or int32) labels, the dtype of ``torch.randint`` and of most code outside nnU-Net, costs
    three times a float32 or int16 comparison on the CPU (each class reads the 8-byte labels again): the loss
    took 1.26-1.28x the time of nnU-Net's ``MemoryEfficientSoftDiceLoss`` on them. One conversion to float32
    (a pass over the one-channel map, 1/C of the one-hot) brings it back (``benchmarks/bench_loss.py
    --label-dtypes``). float32 holds every whole number up to 2**24 exactly and rounds larger ones to larger
    ones, so a label is a class number after the conversion exactly when it was one before (the label check
    stays exact). Bool maps become uint8; others (uint8, int16, float) are compared as they are.
    """
    if target.dtype == torch.bool:
        return target.to(torch.uint8)
    if target.dtype in (torch.int64, torch.int32):
        return target.to(torch.float32)
    return target


def _check_onehot(target: torch.Tensor) -> None:
    """Refuse a one-hot or region target (not bool) with a value outside [0, 1] (or NaN): the overlap sums of
    such a target are no Dice (a value of 5 gave a loss of 4340, a negative one a loss below 0). One reduction
    (``aminmax``) over the target, made only for non-bool one-hot targets (nnU-Net passes label maps); a
    ValueError on CPU tensors in eager mode, an asynchronous assertion on a GPU or under ``torch.compile``
    (as :func:`_check_labels`)."""
    low, high = torch.aminmax(target)
    ok = (low >= 0) & (high <= 1)   # false for NaN too
    what = "a one-hot or region target (same shape as the prediction) may hold only values from 0 to 1"
    if target.device.type == "cpu" and not torch.compiler.is_compiling():
        if not bool(ok):
            raise ValueError(f"{what} (soft targets included); this one holds values from {low.item():g} to "
                             f"{high.item():g}. Give a label map of class numbers, or a one-hot/region target of "
                             f"0 and 1.")
    else:
        torch._assert_async(ok, f"{what}; this one holds a value outside [0, 1] (or NaN).")


def _labels_allowed(num_classes: int, what: str) -> str:
    return (f"{what}with {num_classes} prediction channels a label map may hold only the whole numbers "
            f"0..{num_classes - 1} there (mask other voxels out with loss_mask, as nnU-Net does with its ignore "
            f"label).")


def _label_error(target: torch.Tensor, mask: Optional[torch.Tensor], num_classes: int) -> ValueError:
    """The sentence for a label map with values that are no class number (only on the error path)."""
    values = target.double()
    if mask is not None and mask.shape[1] == 1:
        values = values[mask.expand_as(values) != 0]
    values = values.flatten()
    bad = values[~((values >= 0) & (values < num_classes) & (values == values.round()))]
    shown = ", ".join(f"{v:g}" for v in bad.unique()[:5].tolist())
    return ValueError(_labels_allowed(num_classes, f"The target label map holds {bad.numel()} value(s) that are "
                                                   f"not a class number where the loss is computed (e.g. {shown}); "))


def overlap_sums(
    probs: torch.Tensor,
    target: torch.Tensor,
    loss_mask: Optional[torch.Tensor] = None,
    do_bg: bool = True,
    batch: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class sums ``(TP, sum_pred, sum_gt)``, the way nnU-Net's memory-efficient Dice does.

    ::

        TP = sum m p g        sum_pred = sum m p        sum_gt = sum m g
        FP = sum_pred - TP    FN = sum_gt - TP          (never formed as full-size tensors)

    Sums run over the spatial axes, and also over the batch when ``batch`` is true (batch Dice).
    The one-hot target is built under ``torch.no_grad`` by comparing the label map with the class
    numbers in one pass (no int64 copy, no zero fill, no scatter), in the probabilities' dtype (see
    ``_one_hot_dtype`` for why not bool). The products are accumulated in float32
    (``sum(..., dtype=float32)``), also under autocast with half-precision ``probs``; float64
    ``probs`` are accumulated in float64.
    With ``do_bg=False`` the sums of all channels are computed and channel 0 is dropped from the
    small ``(B, C)`` results: slicing ``probs[:, 1:]`` instead would cost a full-size zero-filled
    gradient in the backward pass, more than the extra channel's sums. (This function is over 80 lines only with
    this docstring: its code is kept in one piece so that each memory decision stays beside its reason.)

    Args:
        probs: ``(B, C, *spatial)`` probabilities (after softmax/sigmoid), any float dtype.
        target: label map or one-hot/region target, see :func:`check_shapes`. Bool region targets
            are converted like the one-hot; other one-hot targets are used as they are (soft
            targets keep their values).
        loss_mask: optional validity mask, see :func:`check_shapes`.
        do_bg: keep channel 0; if False it is left out of all three results.
        batch: also sum over the batch axis.

    Returns:
        ``(tp, sum_pred, sum_gt)``, each float32 (float64 for float64 ``probs``) of shape ``(B, C')``
        (``(C',)`` when ``batch``), ``C' = C`` or ``C - 1`` without background. Only ``tp`` and
        ``sum_pred`` carry gradients.

    Raises:
        ValueError: on shapes that do not fit together or an empty prediction (see :func:`check_shapes`),
            on a one-hot or region target (not bool) with a value outside [0, 1] or NaN (one ``aminmax``
            over it; an asynchronous assertion on a GPU or under ``torch.compile``), and on a label map
            with a value that is no class number ``0..C-1`` (larger, negative, fractional or NaN) where
            the loss is computed (everywhere, or where a one-channel ``loss_mask`` is non-zero). That
            check reads the small per-class sums (no extra pass over the full-size tensors); on a GPU or
            under ``torch.compile`` it is an asynchronous assertion instead of a ValueError, without a host
            sync (see ``_check_labels``).
    """
    is_label_map = check_shapes(probs, target, loss_mask, do_bg)
    acc = torch.float64 if probs.dtype == torch.float64 else torch.float32   # accumulator dtype
    axes = tuple(range(2, probs.ndim))
    if batch:
        axes = (0, *axes)

    with torch.no_grad():
        onehot_dtype = _one_hot_dtype(probs)
        if is_label_map:
            if target.ndim != probs.ndim:
                target = target.unsqueeze(1)
            labels = _compare_dtype_labels(target)
            classes = torch.arange(probs.shape[1], device=target.device, dtype=labels.dtype)
            classes = classes.view(1, -1, *([1] * (probs.ndim - 2)))
            # compare straight into the one-hot's dtype: one pass, no bool intermediate to convert
            gt = torch.eq(labels, classes, out=torch.empty(probs.shape, dtype=onehot_dtype, device=target.device))
        else:
            gt = target.detach()
            if gt.dtype == torch.bool:
                gt = gt.to(onehot_dtype)
            else:
                _check_onehot(gt)
        onehot, mask = gt, None
        if loss_mask is not None:
            mask = loss_mask.detach()
            if mask.dtype == torch.bool:
                mask = mask.to(onehot_dtype)
            gt = gt * mask
        voxels = math.prod(probs.shape[2:]) * (probs.shape[0] if batch else 1)   # per sum
        sum_gt = gt.sum(axes, dtype=torch.float64 if voxels > EXACT_FLOAT32_COUNT else acc)
        if is_label_map:
            _check_labels(target, onehot, mask, sum_gt, voxels, axes)
        sum_gt = sum_gt.to(acc)

    tp = (probs * gt).sum(axes, dtype=acc)
    sum_pred = probs.sum(axes, dtype=acc) if mask is None else (probs * mask).sum(axes, dtype=acc)
    if not do_bg:
        tp, sum_pred, sum_gt = tp[..., 1:], sum_pred[..., 1:], sum_gt[..., 1:]
    return tp, sum_pred, sum_gt
