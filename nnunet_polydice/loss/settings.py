"""Default hyper-parameters and argument validation for the Poly Dice family of losses.

Plain Python on purpose: no torch, no nnunetv2. The trainer-name parser and the command line import
this module to check a name such as ``nnUNetTrainerPolyDice_K3_eps1`` before torch is loaded, and the
loss classes in :mod:`nnunet_polydice.loss.modules` validate their constructor arguments with the same
functions, so a bad setting fails the same way (a :class:`ValueError` whose message names the
argument, the value given and what is allowed) wherever it is given.

Constants
---------
``DEFAULT_K`` and ``DEFAULT_EPSILON`` are the truncation order and leading-coefficient perturbation
used when none is given: K = 2, epsilon = 1, kept after the project's ablation on the Colin27/AAL
slices (README, "Numbers we measured"). The loss classes and the trainers read them from here, so this
is the one place to change them.

``SMOOTH`` is nnU-Net's smoothing term (the ``smooth`` its trainers pass to the Dice loss).
``TVERSKY_ALPHA``/``TVERSKY_BETA`` (0.3/0.7) and ``FOCAL_GAMMA`` (0.75) are the usual settings of the
Tversky and focal-Tversky baselines.

The Poly-N rule (per-term perturbations)
----------------------------------------
The loss of one class is the polynomial ``L(u) = sum_j c_j u^j`` in ``u = 1 - D`` with coefficients
``c_j = 1/j + eps_j``. ``epsilon`` is ``eps_1`` (the leading coefficient, as in Poly-1 of PolyLoss)
and ``eps_terms`` lists the perturbations of the *following* terms::

    eps_terms = (eps_2, eps_3, ..., eps_{n+1})        c_1 = 1 + epsilon,  c_j = 1/j + eps_terms[j - 2]

Terms not listed are unperturbed (``eps_j = 0``). With a finite ``K`` there are only ``K - 1`` terms
after the first, so ``len(eps_terms) <= K - 1`` (a longer tuple would perturb terms that do not
exist and is refused rather than silently cut). With ``K = inf`` any finite number of terms may be
perturbed: the loss is ``-log(D) + epsilon*u + sum_j eps_j u^j``.

Monotonicity: ``dL/du = sum_j j c_j u^(j-1)`` must not be negative on ``[0, 1]``, otherwise the loss
could rise as the Dice rises. The rule enforced is ``c_j >= 0`` for every ``j`` (so ``epsilon >= -1``
and ``eps_j >= -1/j``): it is sufficient, easy to state and to check by hand, and it refuses a few
settings that would still be monotone (a small negative ``c_2`` offset by a large ``c_1``), on
purpose. At least one coefficient must be positive: ``K=1`` with ``epsilon=-1`` (or any setting whose
coefficients are all zero) is a loss that is identically zero and is refused.
"""

from __future__ import annotations

import math
import numbers

__all__ = [
    "DEFAULT_K",
    "DEFAULT_EPSILON",
    "SMOOTH",
    "TVERSKY_ALPHA",
    "TVERSKY_BETA",
    "FOCAL_GAMMA",
    "MAX_K",
    "validate_poly",
    "coefficients",
    "validate_tversky",
    "validate_gamma",
    "validate_smooth",
]

#: Truncation order of the polynomial when none is given (kept after the ablation).
DEFAULT_K = 2
#: Perturbation of the leading coefficient when none is given (kept after the ablation).
DEFAULT_EPSILON = 1.0
#: nnU-Net's smoothing term for the soft Dice (its trainers pass ``smooth=1e-5``).
SMOOTH = 1e-5
#: Tversky weight of the false positives (the usual choice).
TVERSKY_ALPHA = 0.3
#: Tversky weight of the false negatives (the usual choice).
TVERSKY_BETA = 0.7
#: Exponent of the focal-Tversky loss (the usual choice).
FOCAL_GAMMA = 0.75
#: Largest finite truncation order accepted. The series is evaluated term by term, so a larger K
#: only costs time; the full series is ``K=inf`` (computed in closed form as ``-log D``).
MAX_K = 1000


def _is_real(value) -> bool:
    """True for int/float-like numbers (numpy scalars included), False for bool and everything else."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _normalise_K(K):
    """Return K as a positive ``int`` or ``math.inf``; raise ValueError otherwise."""
    message = f"K must be a positive integer or inf (got {K!r})."
    if isinstance(K, bool):
        raise ValueError(message)
    if isinstance(K, str):
        text = K.strip().lower()
        if text in ("inf", "infinity", "+inf"):
            return math.inf
        if text.isascii() and text.isdigit():  # int() would read other scripts' digits ('３' as 3)
            if len(text.lstrip("0")) > len(str(MAX_K)):  # and refuse over 4300 digits naming no K
                raise ValueError(f"K must be a positive integer no larger than {MAX_K}, or inf for the full series "
                                 f"(got a number of {len(text)} digits).")
            K = int(text)
        else:
            raise ValueError(message)
    if isinstance(K, numbers.Integral):
        K = int(K)
    elif isinstance(K, numbers.Real):
        K = float(K)
        if math.isinf(K) and K > 0:
            return math.inf
        if not math.isfinite(K) or not K.is_integer():
            raise ValueError(message)
        K = int(K)
    else:
        raise ValueError(message)
    if K < 1:
        raise ValueError(message)
    if K > MAX_K:
        raise ValueError(
            f"K must be a positive integer no larger than {MAX_K}, or inf for the full series (got {K})."
        )
    return K


def validate_poly(K, epsilon, eps_terms=None):
    """Check the polynomial's settings and return them normalised.

    Args:
        K: truncation order, a positive integer (``1 <= K <= MAX_K``) or infinity (``math.inf``,
            ``float('inf')`` or the string ``'inf'``). Integral floats (``3.0``) and digit strings
            (``'3'``) are accepted; ``bool``, zero, negatives, non-integral numbers and nan are not.
        epsilon: perturbation ``eps_1`` of the leading coefficient, finite and ``>= -1``.
        eps_terms: optional sequence ``(eps_2, eps_3, ...)`` perturbing the following terms (see the
            module docstring); each finite and ``>= -1/j``; at most ``K - 1`` of them when K is finite.

    Returns:
        ``(K, epsilon, eps_terms)`` with K an ``int`` or ``math.inf``, epsilon a ``float`` and
        eps_terms a tuple of floats (empty when None was given).

    Raises:
        ValueError: with a sentence naming the argument, the value given and what is allowed.
    """
    K = _normalise_K(K)

    if not _is_real(epsilon) or not math.isfinite(float(epsilon)):
        raise ValueError(f"epsilon must be a finite number >= -1 (got {epsilon!r}).")
    epsilon = float(epsilon)
    if epsilon < -1.0:
        raise ValueError(
            f"epsilon must be >= -1 so that the loss falls as the Dice rises (got {epsilon!r})."
        )

    if eps_terms is None:
        terms = ()
    else:
        if isinstance(eps_terms, (str, bytes)) or not hasattr(eps_terms, "__iter__"):
            raise ValueError(
                f"eps_terms must be a sequence of numbers (eps_2, eps_3, ...) or None (got {eps_terms!r})."
            )
        terms = tuple(eps_terms)
        for offset, value in enumerate(terms):
            j = offset + 2
            if not _is_real(value) or not math.isfinite(float(value)):
                raise ValueError(
                    f"eps_terms must hold finite numbers; eps_terms[{offset}] (eps_{j}) is {value!r}."
                )
            if float(value) < -1.0 / j:
                raise ValueError(
                    f"eps_terms[{offset}] (eps_{j}) must be >= -1/{j} so that the coefficient 1/{j} + eps_{j} "
                    f"is not negative and the loss falls as the Dice rises (got {float(value)!r})."
                )
        terms = tuple(float(value) for value in terms)
        if K != math.inf and len(terms) > K - 1:
            raise ValueError(
                f"eps_terms must have at most K - 1 = {K - 1} entries (eps_2..eps_K) for K={K} "
                f"(got {len(terms)})."
            )

    if K != math.inf:
        if all(c == 0.0 for c in coefficients(K, epsilon, terms)):
            raise ValueError(
                f"K={K} with epsilon={epsilon!r} and eps_terms={terms!r} gives a loss that is identically zero; "
                "at least one coefficient 1/j + eps_j must be positive (for K=1, epsilon must be > -1)."
            )
    return K, epsilon, terms


def coefficients(K, epsilon: float, eps_terms: tuple = ()) -> tuple:
    """The coefficients of the polynomial, for settings already validated by :func:`validate_poly`.

    For finite K: ``(c_1, ..., c_K)`` with ``c_j = 1/j + eps_j`` (``eps_1 = epsilon``), the loss being
    ``sum_j c_j u^j``. For ``K = inf``: the perturbations ``(eps_1, eps_2, ...)`` without trailing
    zeros (empty when there is none), the polynomial added to ``-log(D)``.
    """
    perturbation = (float(epsilon), *eps_terms)
    if K != math.inf:
        return tuple(1.0 / j + (perturbation[j - 1] if j <= len(perturbation) else 0.0) for j in range(1, K + 1))
    n = len(perturbation)
    while n and perturbation[n - 1] == 0.0:
        n -= 1
    return perturbation[:n]


def validate_tversky(alpha, beta):
    """Check the Tversky weights and return them as floats.

    ``alpha`` weighs the false positives and ``beta`` the false negatives; both must be finite and
    ``>= 0`` with ``alpha + beta > 0`` (``alpha = beta = 0.5`` is the Dice).

    Raises:
        ValueError: with a sentence naming the argument, the value given and what is allowed.
    """
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not _is_real(value) or not math.isfinite(float(value)) or float(value) < 0.0:
            raise ValueError(f"{name} must be a finite number >= 0 (got {value!r}).")
    alpha, beta = float(alpha), float(beta)
    if alpha + beta <= 0.0:
        raise ValueError(
            f"alpha + beta must be > 0, otherwise the Tversky index is 1 for every prediction "
            f"(got alpha={alpha!r}, beta={beta!r})."
        )
    return alpha, beta


def validate_gamma(gamma):
    """Check the focal-Tversky exponent (finite and ``> 0``) and return it as a float.

    Raises:
        ValueError: with a sentence naming the argument, the value given and what is allowed.
    """
    if not _is_real(gamma) or not math.isfinite(float(gamma)) or float(gamma) <= 0.0:
        raise ValueError(f"gamma must be a finite number > 0 (got {gamma!r}).")
    return float(gamma)


def validate_smooth(smooth):
    """Check the smoothing term (finite and ``>= 0``) and return it as a float.

    Raises:
        ValueError: with a sentence naming the argument, the value given and what is allowed.
    """
    if not _is_real(smooth) or not math.isfinite(float(smooth)) or float(smooth) < 0.0:
        raise ValueError(f"smooth must be a finite number >= 0 (got {smooth!r}).")
    return float(smooth)
