"""Poly Dice, Poly Tversky, Tversky and focal-Tversky losses with nnU-Net's Dice-class contract.

Every class here can be given to nnU-Net wherever it takes a Dice class, e.g.
``DC_and_CE_loss({'batch_dice': True, 'smooth': 1e-5, 'do_bg': False, 'ddp': False, 'K': 3,
'epsilon': 1.0}, {}, weight_ce=1, weight_dice=1, ignore_label=None, dice_class=PolyDiceLoss)`` or
``DC_and_BCE_loss({}, {...}, use_ignore_label=True, dice_class=PolyDiceLoss)``: the constructor takes
``apply_nonlin, batch_dice, do_bg, smooth, ddp`` like ``nnunetv2.training.loss.dice.
MemoryEfficientSoftDiceLoss`` (plus the loss's own keyword-only settings), and
``forward(x, y, loss_mask=None)`` takes the same inputs.

One difference on purpose: these return the loss ``L >= 0`` (0 for a perfect prediction, up to
smoothing), where ``MemoryEfficientSoftDiceLoss`` returns ``-D``. nnU-Net only adds
``weight_dice * dc_loss`` to the cross-entropy, so a constant offset changes nothing in training.

Source: the loss is the project's reading of H. Aizawa, "Polynomial Dice Loss for Medical Image
Segmentation", arXiv 2606.23373 (ICANN 2026), of which only the abstract is available: a Taylor
expansion of the Dice loss with a truncation order K and a perturbed leading coefficient epsilon,
built here on the template of PolyLoss (Z. Leng et al., "PolyLoss: A Polynomial Expansion
Perspective of Classification Loss Functions", ICLR 2022), which expands
``-log(P) = sum_j (1/j)(1 - P)^j`` and perturbs its first coefficient. Why this reading: the README,
"How we read the paper".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional

import torch
import torch.distributed as dist
from nnunetv2.utilities.ddp_allgather import AllGatherGrad
from torch import nn

from nnunet_polydice.loss.functional import (
    _check_do_bg,
    _poly_of_index,
    dice_index_from_sums,
    focal_power,
    overlap_sums,
    tversky_index,
)
from nnunet_polydice.loss.settings import (
    DEFAULT_EPSILON,
    DEFAULT_K,
    FOCAL_GAMMA,
    SMOOTH,
    TVERSKY_ALPHA,
    TVERSKY_BETA,
    coefficients,
    validate_gamma,
    validate_poly,
    validate_smooth,
    validate_tversky,
)

__all__ = ["OverlapIndexLoss", "PolyDiceLoss", "PolyTverskyLoss", "TverskyLoss", "FocalTverskyLoss"]


def _check_flag(name: str, value) -> bool:
    if value not in (True, False):  # also refuses strings such as "False", which bool() would make True
        raise ValueError(f"{name} must be True or False (got {value!r}).")
    return bool(value)


class OverlapIndexLoss(nn.Module):
    """Base class: per-class sums, masking, one-hot and batch Dice; subclasses pick index and transform.

    ``forward`` computes, for each class ``c`` (and each sample unless ``batch_dice``)::

        TP = sum m p g,  sum_pred = sum m p,  sum_gt = sum m g     (float32 sums, see overlap_sums)
        FP = sum_pred - TP,  FN = sum_gt - TP
        L  = mean over classes (and samples) of  transform(index(TP, sum_pred, sum_gt))

    Subclasses implement :meth:`index` (``(TP, sum_pred, sum_gt) -> index in [0, 1]``, with
    ``FP = sum_pred - TP`` and ``FN = sum_gt - TP``) and :meth:`transform` (``index -> per-class
    loss``); the transform is applied to each class **before** the mean. Without background
    (``do_bg=False``) channel 0 is dropped from the per-class losses just before the mean.

    Args:
        apply_nonlin: applied to the network output first (nnU-Net passes softmax over channels or
            sigmoid); None if ``x`` already holds probabilities.
        batch_dice: sum over the batch as well (one index per class), as nnU-Net plans it.
        do_bg: include channel 0 (nnU-Net: False for label maps, True for regions).
        smooth: ``s >= 0`` added to numerator and denominator of the index (nnU-Net uses 1e-5).
        ddp: with ``batch_dice``, gather the sums over all ranks with nnU-Net's ``AllGatherGrad``
            when ``torch.distributed`` is initialised (ignored otherwise, so ``ddp=True`` is safe in a
            single process).

    Raises:
        ValueError: for a bad argument (at construction) or shapes that do not fit (in ``forward``).
    """

    def __init__(
        self,
        apply_nonlin: Optional[Callable] = None,
        batch_dice: bool = False,
        do_bg: bool = True,
        smooth: float = SMOOTH,
        ddp: bool = True,
    ):
        super().__init__()
        if apply_nonlin is not None and not callable(apply_nonlin):
            raise ValueError(f"apply_nonlin must be a callable or None (got {apply_nonlin!r}).")
        self.apply_nonlin = apply_nonlin
        self.batch_dice = _check_flag("batch_dice", batch_dice)
        self.do_bg = _check_flag("do_bg", do_bg)
        self.ddp = _check_flag("ddp", ddp)
        self.smooth = validate_smooth(smooth)

    def index(self, tp: torch.Tensor, sum_pred: torch.Tensor, sum_gt: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def transform(self, index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def statistics(self, x: torch.Tensor, y: torch.Tensor, loss_mask: Optional[torch.Tensor] = None):
        """``(TP, sum_pred, sum_gt)`` of every channel (background included), float32 (float64 for
        float64 input), shape ``(B, C)``, or ``(C,)`` with batch Dice (gathered over DDP ranks)."""
        tp, sum_pred, sum_gt = overlap_sums(x, y, loss_mask, do_bg=True, batch=self.batch_dice)
        if self.batch_dice and self.ddp and dist.is_available() and dist.is_initialized():
            # one collective for the three sums; AllGatherGrad returns (world_size, 3, C)
            tp, sum_pred, sum_gt = AllGatherGrad.apply(torch.stack((tp, sum_pred, sum_gt))).sum(0).unbind(0)
        return tp, sum_pred, sum_gt

    def forward(self, x: torch.Tensor, y: torch.Tensor, loss_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Loss of network output ``x`` ``(B, C, *spatial)`` against ``y``.

        Args:
            x: network output (logits if ``apply_nonlin`` is set, else probabilities).
            y: label map ``(B, 1, *spatial)`` or ``(B, *spatial)``, or one-hot/region target of
                ``x``'s shape (nnU-Net passes regions with the ignore channel already removed).
            loss_mask: optional ``(B, 1, *spatial)`` (or ``x``'s shape) mask, True/1 where the loss
                is computed (nnU-Net: False on the ignore label).

        Returns:
            A scalar float32 tensor (float64 for float64 input).
        """
        _check_do_bg(x.shape, self.do_bg)
        if self.apply_nonlin is not None:
            x = self.apply_nonlin(x)
        per_class = self.transform(self.index(*self.statistics(x, y, loss_mask)))
        if not self.do_bg:
            per_class = per_class[..., 1:]
        return per_class.mean()

    def extra_repr(self) -> str:
        return f"batch_dice={self.batch_dice}, do_bg={self.do_bg}, smooth={self.smooth}, ddp={self.ddp}"


class _PolySettings:
    """Read-only K, epsilon, eps_terms and coefficients: they are validated and turned into the
    polynomial's coefficients once, at construction, so changing them afterwards is refused rather
    than silently ignored (build a new loss instead)."""

    def _set_poly(self, K, epsilon, eps_terms) -> None:
        self._poly = validate_poly(K, epsilon, eps_terms)
        self._coefficients = coefficients(*self._poly)

    def transform(self, index):
        return _poly_of_index(index, self.K, self._coefficients)

    @property
    def K(self):
        return self._poly[0]

    @property
    def epsilon(self) -> float:
        return self._poly[1]

    @property
    def eps_terms(self) -> tuple:
        return self._poly[2]

    @property
    def coefficients(self) -> tuple:
        return self._coefficients


class PolyDiceLoss(_PolySettings, OverlapIndexLoss):
    """Polynomial Dice loss: a truncated (or full) Taylor series of ``-log D`` in ``u = 1 - D``.

    For each class (and each sample unless ``batch_dice``)::

        D_c = (2 TP + s) / max(2 TP + FP + FN + s, 1e-8),      u_c = 1 - D_c
        L_c = sum_{j=1..K} (1/j) u_c^j + epsilon u_c          K = 1, 2, 3, ...
        L_c = -log(D_c)                + epsilon u_c          K = inf
        L   = mean over classes (and samples) of L_c

    The polynomial is applied to each class's ``u_c`` and *then* averaged. Special cases:
    ``K=1, epsilon=0`` is the soft Dice loss ``1 - D`` (nnU-Net's ``MemoryEfficientSoftDiceLoss``
    plus 1, identical gradients); ``K=inf, epsilon=0`` is the log-Dice loss ``-log D``, which the
    truncated sums approach from below as K grows. ``dL_c/du_c = 1 + epsilon + u + ... + u^(K-1)``, so
    the loss falls as the Dice rises when ``epsilon >= -1``; larger K and epsilon put more weight on
    classes with a poor Dice (small or missed structures). Minimum: 0 for a perfect prediction (up to
    the smoothing).

    Poly-N: ``eps_terms = (eps_2, eps_3, ...)`` adds ``eps_j u_c^j`` to the following terms
    (coefficients ``1/j + eps_j``, each ``>= 0``); see :mod:`nnunet_polydice.loss.settings`.

    This is the project's reading of Aizawa, arXiv 2606.23373 (whose full text is not available),
    following PolyLoss (Leng et al., ICLR 2022); see the README, "How we read the paper".

    Args:
        apply_nonlin, batch_dice, do_bg, smooth, ddp: as nnU-Net's Dice classes
            (see :class:`OverlapIndexLoss`).
        K: truncation order, a positive integer (at most ``MAX_K``) or ``math.inf`` / ``'inf'``.
        epsilon: perturbation of the leading coefficient, finite and ``>= -1``
            (``K=1`` with ``epsilon=-1`` is identically zero and refused).
        eps_terms: optional perturbations ``(eps_2, ..., )`` of the following terms.

    Attributes:
        K, epsilon, eps_terms: the settings, normalised by ``validate_poly`` (K an int or math.inf,
            eps_terms a tuple).
        coefficients: the polynomial's coefficients (``poly_coefficients``). All four are
            read-only, fixed at construction.

    Raises:
        ValueError: with a sentence naming the bad argument and what is allowed.
    """

    def __init__(self, apply_nonlin: Optional[Callable] = None, batch_dice: bool = False, do_bg: bool = True,
                 smooth: float = SMOOTH, ddp: bool = True, *,
                 K=DEFAULT_K, epsilon: float = DEFAULT_EPSILON, eps_terms: Optional[Sequence[float]] = None):
        super().__init__(apply_nonlin, batch_dice, do_bg, smooth, ddp)
        self._set_poly(K, epsilon, eps_terms)

    def index(self, tp, sum_pred, sum_gt):
        return dice_index_from_sums(tp, sum_pred, sum_gt, self.smooth)

    def extra_repr(self) -> str:
        terms = f", eps_terms={self.eps_terms}" if self.eps_terms else ""
        return f"K={self.K}, epsilon={self.epsilon}{terms}, " + super().extra_repr()


class _TverskyIndex:
    """The Tversky index from nnU-Net's sums (FP = sum_pred - TP, FN = sum_gt - TP), for the classes
    that carry ``alpha`` and ``beta``."""

    def _set_tversky(self, alpha, beta) -> None:
        self.alpha, self.beta = validate_tversky(alpha, beta)

    def index(self, tp, sum_pred, sum_gt):
        return tversky_index(tp, sum_pred - tp, sum_gt - tp, self.alpha, self.beta, self.smooth)


class PolyTverskyLoss(_PolySettings, _TverskyIndex, OverlapIndexLoss):
    """Polynomial Tversky loss: the polynomial of :class:`PolyDiceLoss` over ``u_c = 1 - T_c``.

    ::

        T_c = (TP + s) / max(TP + alpha FP + beta FN + s, 1e-8),   u_c = 1 - T_c
        L_c = sum_{j=1..K} (1/j + eps_j) u_c^j      (K = inf: -log(T_c) + sum_j eps_j u_c^j)
        L   = mean over classes (and samples) of L_c

    ``alpha = beta = 0.5`` gives :class:`PolyDiceLoss` (exactly so with half its ``smooth``).
    ``beta > alpha`` weighs missed foreground more than false alarms (default 0.3 / 0.7).
    Project's reading of Aizawa, arXiv 2606.23373, which compares against Tversky-based losses.

    Args:
        apply_nonlin, batch_dice, do_bg, smooth, ddp: see :class:`OverlapIndexLoss`.
        K, epsilon, eps_terms: see :class:`PolyDiceLoss`.
        alpha: weight of the false positives, finite, ``>= 0``.
        beta: weight of the false negatives, finite, ``>= 0``; ``alpha + beta > 0``.

    Raises:
        ValueError: with a sentence naming the bad argument and what is allowed.
    """

    def __init__(self, apply_nonlin: Optional[Callable] = None, batch_dice: bool = False, do_bg: bool = True,
                 smooth: float = SMOOTH, ddp: bool = True, *,
                 K=DEFAULT_K, epsilon: float = DEFAULT_EPSILON, eps_terms: Optional[Sequence[float]] = None,
                 alpha: float = TVERSKY_ALPHA, beta: float = TVERSKY_BETA):
        super().__init__(apply_nonlin, batch_dice, do_bg, smooth, ddp)
        self._set_poly(K, epsilon, eps_terms)
        self._set_tversky(alpha, beta)

    def extra_repr(self) -> str:
        terms = f", eps_terms={self.eps_terms}" if self.eps_terms else ""
        return (
            f"K={self.K}, epsilon={self.epsilon}{terms}, alpha={self.alpha}, beta={self.beta}, "
            + super().extra_repr()
        )


class TverskyLoss(_TverskyIndex, OverlapIndexLoss):
    """Tversky loss (baseline): ``L = mean over classes (and samples) of 1 - T_c``.

    ::

        T_c = (TP + s) / max(TP + alpha FP + beta FN + s, 1e-8)

    Salehi et al., "Tversky loss function for image segmentation using 3D fully convolutional deep
    networks", MLMI 2017. Defaults alpha = 0.3, beta = 0.7; alpha = beta = 0.5 is the soft Dice loss.
    Equals ``PolyTverskyLoss(K=1, epsilon=0)``.

    Args:
        apply_nonlin, batch_dice, do_bg, smooth, ddp: see :class:`OverlapIndexLoss`.
        alpha, beta: see :class:`PolyTverskyLoss`.

    Raises:
        ValueError: with a sentence naming the bad argument and what is allowed.
    """

    def __init__(self, apply_nonlin: Optional[Callable] = None, batch_dice: bool = False, do_bg: bool = True,
                 smooth: float = SMOOTH, ddp: bool = True, *,
                 alpha: float = TVERSKY_ALPHA, beta: float = TVERSKY_BETA):
        super().__init__(apply_nonlin, batch_dice, do_bg, smooth, ddp)
        self._set_tversky(alpha, beta)

    def transform(self, index):
        return 1.0 - index

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, " + super().extra_repr()


class FocalTverskyLoss(_TverskyIndex, OverlapIndexLoss):
    """Focal Tversky loss (baseline): ``L = mean over classes (and samples) of (1 - T_c)^gamma``.

    ::

        T_c = (TP + s) / max(TP + alpha FP + beta FN + s, 1e-8)

    Abraham and Khan, "A novel focal Tversky loss function with improved attention U-Net for lesion
    segmentation", ISBI 2019 (their exponent ``1/gamma`` with gamma = 4/3 is our ``gamma = 0.75``).
    For ``gamma < 1`` the derivative is infinite at a perfect prediction; classes with
    ``1 - T_c <= eps`` (machine epsilon) contribute 0 and no gradient (see
    :func:`nnunet_polydice.loss.functional.focal_power`).

    Args:
        apply_nonlin, batch_dice, do_bg, smooth, ddp: see :class:`OverlapIndexLoss`.
        alpha, beta: see :class:`PolyTverskyLoss`.
        gamma: exponent, finite and ``> 0`` (default 0.75).

    Raises:
        ValueError: with a sentence naming the bad argument and what is allowed.
    """

    def __init__(self, apply_nonlin: Optional[Callable] = None, batch_dice: bool = False, do_bg: bool = True,
                 smooth: float = SMOOTH, ddp: bool = True, *,
                 alpha: float = TVERSKY_ALPHA, beta: float = TVERSKY_BETA, gamma: float = FOCAL_GAMMA):
        super().__init__(apply_nonlin, batch_dice, do_bg, smooth, ddp)
        self._set_tversky(alpha, beta)
        self.gamma = validate_gamma(gamma)

    def transform(self, index):
        return focal_power(1.0 - index, self.gamma)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, " + super().extra_repr()
