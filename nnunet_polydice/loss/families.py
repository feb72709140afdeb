"""The loss families of nnunet-polydice, declared once.

Plain Python (no torch): the trainer-name grammar, the catalogue, the sweep grids, ``plot-shape`` and
the trainers all read this table, so a family's name tokens, loss class, keywords, defaults and
formula are written here and nowhere else.

A *loss kind* is one loss class with its settings; a *family* is a kind used either alone (pure: it
replaces nnU-Net's whole CE+Dice) or as the Dice term of nnU-Net's compound (``...CE``: CE, or BCE
for region-based labels, stays)::

    kind          class             settings (name token = keyword)          per-class loss
    polydice      PolyDiceLoss      K, eps = epsilon                        sum_{j<=K} u^j/j + eps u,  u = 1 - D
    polytversky   PolyTverskyLoss   K, eps = epsilon, a = alpha, b = beta   the same over u = 1 - T
    tversky       TverskyLoss       a = alpha, b = beta                     1 - T
    focaltversky  FocalTverskyLoss  a = alpha, b = beta, g = gamma          (1 - T)^gamma

with ``K = inf`` meaning the full series ``-log D + eps u``, D the soft Dice and T the Tversky index
(``nnunet_polydice.loss.functional``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nnunet_polydice.loss import settings

__all__ = ["Parameter", "PARAMETERS", "LossKind", "LOSS_KINDS", "Family", "FAMILIES", "format_k"]


def format_k(K) -> str:
    """``'inf'`` for the full series, else the integer."""
    return "inf" if K == math.inf else str(int(K))


@dataclass(frozen=True)
class Parameter:
    """One setting: its token in trainer names, its keyword in the loss class, its default."""

    token: str
    keyword: str
    default: object
    example: object  # a value used in the sentences that say what is allowed


PARAMETERS: dict[str, Parameter] = {p.token: p for p in (
    Parameter("K", "K", settings.DEFAULT_K, 3),
    Parameter("eps", "epsilon", settings.DEFAULT_EPSILON, 0.5),
    Parameter("a", "alpha", settings.TVERSKY_ALPHA, 0.3),
    Parameter("b", "beta", settings.TVERSKY_BETA, 0.7),
    Parameter("g", "gamma", settings.FOCAL_GAMMA, 0.75),
)}


@dataclass(frozen=True)
class LossKind:
    """A loss class of :mod:`nnunet_polydice.loss.modules` and the settings it takes beyond nnU-Net's."""

    key: str
    loss_class: str
    tokens: tuple[str, ...]
    index: str  # "D" (soft Dice) or "T" (Tversky index)

    @property
    def keywords(self) -> tuple[str, ...]:
        return tuple(PARAMETERS[t].keyword for t in self.tokens)

    @property
    def is_poly(self) -> bool:
        return "K" in self.tokens

    def defaults(self) -> dict:
        """The default keyword arguments of this kind."""
        return {PARAMETERS[t].keyword: PARAMETERS[t].default for t in self.tokens}

    def validate(self, kwargs: dict) -> dict:
        """Check a full set of keyword arguments and return them normalised (K an int or inf).

        Raises:
            ValueError: a sentence naming the setting, the value and what is allowed.
        """
        missing = [k for k in self.keywords if k not in kwargs]
        extra = [k for k in kwargs if k not in self.keywords]
        if missing or extra:
            raise ValueError(f"{self.loss_class} takes the settings {', '.join(self.keywords)} "
                             f"(missing: {missing or 'none'}; unknown: {extra or 'none'}).")
        out = {}
        if self.is_poly:
            out["K"], out["epsilon"], _ = settings.validate_poly(kwargs["K"], kwargs["epsilon"])
        if "alpha" in self.keywords:
            out["alpha"], out["beta"] = settings.validate_tversky(kwargs["alpha"], kwargs["beta"])
        if "gamma" in self.keywords:
            out["gamma"] = settings.validate_gamma(kwargs["gamma"])
        return {k: out[k] for k in self.keywords}

    def formula(self, kwargs: dict) -> str:
        """The per-class loss in one line, e.g. ``sum_j=1..2 u^j/j + 1*u, u=1-D``."""
        index = "D" if self.index == "D" else f"T(a={kwargs['alpha']:g},b={kwargs['beta']:g})"
        if self.is_poly:
            K, eps = kwargs["K"], kwargs["epsilon"]
            series = "-log(1-u)" if K == math.inf else ("u" if K == 1 else f"sum_j=1..{format_k(K)} u^j/j")
            perturbation = "" if eps == 0 else f" {'+' if eps > 0 else '-'} {abs(eps):g}*u"
            return f"{series}{perturbation}, u=1-{index}"
        if "gamma" in kwargs:
            return f"(1 - {index})^{kwargs['gamma']:g}"
        return f"1 - {index}"

    def shape(self, kwargs: dict) -> tuple:
        """``(K, epsilon, gamma)`` of the per-class loss as a function of ``u = 1 - index``:
        ``gamma`` is None for the polynomial kinds (the Tversky loss is the polynomial K=1, eps=0)."""
        if self.is_poly:
            return kwargs["K"], kwargs["epsilon"], None
        return 1, 0.0, kwargs.get("gamma")


LOSS_KINDS: dict[str, LossKind] = {k.key: k for k in (
    LossKind("polydice", "PolyDiceLoss", ("K", "eps"), "D"),
    LossKind("polytversky", "PolyTverskyLoss", ("K", "eps", "a", "b"), "T"),
    LossKind("tversky", "TverskyLoss", ("a", "b"), "T"),
    LossKind("focaltversky", "FocalTverskyLoss", ("a", "b", "g"), "T"),
)}


@dataclass(frozen=True)
class Family:
    """A trainer family: a loss kind used alone (``compound=False``) or as the Dice term of nnU-Net's
    CE+Dice / BCE+Dice (``compound=True``)."""

    name: str
    loss: LossKind
    compound: bool
    summary: str

    @property
    def params(self) -> tuple[str, ...]:
        """The name tokens of the family's settings, in the order they are written in a name."""
        return self.loss.tokens

    @property
    def pattern(self) -> str:
        return "".join(f"_{p}<{'K' if p == 'K' else 'NUM'}>" for p in self.params)


def _families():
    described = {
        "polydice": ("PolyDice", "Poly Dice"),
        "polytversky": ("PolyTversky", "Poly Tversky"),
        "tversky": ("Tversky", "Tversky loss 1 - T"),
        "focaltversky": ("FocalTversky", "focal Tversky (1 - T)^gamma"),
    }
    for key, (stem, words) in described.items():
        baseline = "" if LOSS_KINDS[key].is_poly else " (baseline)"
        pure = " (the paper's setting)" if key == "polydice" else ""
        yield Family(f"nnUNetTrainer{stem}", LOSS_KINDS[key], False, f"{words} alone{pure}{baseline}")
        yield Family(f"nnUNetTrainer{stem}CE", LOSS_KINDS[key], True, f"CE (or BCE) + {words}{baseline}")


FAMILIES: dict[str, Family] = {f.name: f for f in _families()}
