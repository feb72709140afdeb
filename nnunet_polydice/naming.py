"""Trainer names: one grammar from a name to a loss setting and back.

Pure Python, no torch and no nnunetv2, so that names can be checked (by the command line, the sweep
tool and nnU-Net's trainer lookup) before anything heavy is imported.

Grammar (``<...>`` are placeholders, ``[...]`` optional)::

    name      := <family> [<params>] [_<E>ep<I>it]
               | <nnU-Net trainer> _<E>ep<I>it
    params    := _K<K>_eps<NUM>                       (PolyDice, PolyDiceCE)
               | _K<K>_eps<NUM>_a<NUM>_b<NUM>         (PolyTversky, PolyTverskyCE)
               | _a<NUM>_b<NUM>                       (Tversky, TverskyCE)
               | _a<NUM>_b<NUM>_g<NUM>                (FocalTversky, FocalTverskyCE)
    K         := a positive integer without leading zeros, or ``inf``
    NUM       := the shortest decimal form of the value, ``p`` for the decimal point and a leading
                 ``m`` for the minus sign: 1 -> ``1``, 0.5 -> ``0p5``, -0.5 -> ``m0p5``, 1.25 -> ``1p25``

A family name without parameters uses the documented defaults (``defaults.py``); with parameters,
all of the family's parameters are given, so that a name means the same setting in every release.
Another spelling of the same number (``eps1p0``, ``K03``) is refused with the canonical name, because
nnU-Net keys its results folders by trainer name and two names for one setting would split them.

The schedule suffix ``_<E>ep<I>it`` (E epochs of I training iterations, I/5 validation iterations,
at least 1) turns any of these, and any trainer nnU-Net itself ships (``nnUNetTrainer_20ep50it``),
into a short-schedule variant for CPU budgets, demos and tests.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal

from . import defaults

SUFFIX_SCHEDULE = re.compile(r"_(\d+)ep(\d+)it$")
_NUM = r"m?\d+(?:p\d+)?"
_K = r"\d+|inf"


class InvalidTrainerName(ValueError):
    """A name of one of our families that does not follow the grammar or names a disallowed setting."""


@dataclass(frozen=True)
class Family:
    name: str
    loss: str  # polydice | polytversky | tversky | focaltversky
    compound: bool  # True: replaces only the Dice term of nnU-Net's CE+Dice / BCE+Dice
    params: tuple[str, ...]
    summary: str

    @property
    def pattern(self) -> str:
        return "".join(f"_{p}<{'K' if p == 'K' else 'NUM'}>" for p in self.params)


_PARAM_REGEX = {"K": _K, "eps": _NUM, "a": _NUM, "b": _NUM, "g": _NUM}

_FAMILY_LIST = [
    Family("nnUNetTrainerPolyDice", "polydice", False, ("K", "eps"), "Poly Dice alone (the paper's setting)"),
    Family("nnUNetTrainerPolyDiceCE", "polydice", True, ("K", "eps"), "CE (or BCE) + Poly Dice"),
    Family("nnUNetTrainerPolyTversky", "polytversky", False, ("K", "eps", "a", "b"), "Poly Tversky alone"),
    Family("nnUNetTrainerPolyTverskyCE", "polytversky", True, ("K", "eps", "a", "b"), "CE (or BCE) + Poly Tversky"),
    Family("nnUNetTrainerTversky", "tversky", False, ("a", "b"), "Tversky loss 1 - T alone (baseline)"),
    Family("nnUNetTrainerTverskyCE", "tversky", True, ("a", "b"), "CE (or BCE) + Tversky loss (baseline)"),
    Family("nnUNetTrainerFocalTversky", "focaltversky", False, ("a", "b", "g"),
           "focal Tversky (1 - T)^gamma alone (baseline)"),
    Family("nnUNetTrainerFocalTverskyCE", "focaltversky", True, ("a", "b", "g"),
           "CE (or BCE) + focal Tversky (baseline)"),
]
FAMILIES: dict[str, Family] = {f.name: f for f in _FAMILY_LIST}

# The documented grid of ready settings (catalogue and entry points), for both Poly Dice families.
READY_K = (1, 2, 3, math.inf)
READY_EPSILON = (-0.5, 0.0, 0.5, 1.0, 2.0)


def format_number(value: float) -> str:
    """Canonical name token of a number: shortest decimal form, ``p`` for '.', ``m`` for '-'."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"only finite numbers have a name token (got {value!r}).")
    text = format(Decimal(repr(value)).normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text.replace("-", "m").replace(".", "p")


def parse_number(token: str) -> float:
    return float(token.replace("m", "-").replace("p", "."))


def format_k(K) -> str:
    return "inf" if K == math.inf else str(int(K))


@dataclass(frozen=True)
class TrainerSpec:
    """What a trainer name means. ``family`` is None for a short-schedule variant of an nnU-Net trainer."""

    base: str
    family: Family | None = None
    K: float | int | None = None
    epsilon: float | None = None
    alpha: float | None = None
    beta: float | None = None
    gamma: float | None = None
    explicit: bool = False  # parameters spelled out in the name (False: family defaults)
    epochs: int | None = None
    iterations: int | None = None

    @property
    def name(self) -> str:
        parts = [self.base]
        if self.family is not None and self.explicit:
            values = {"K": self.K, "eps": self.epsilon, "a": self.alpha, "b": self.beta, "g": self.gamma}
            for p in self.family.params:
                parts.append(f"{p}{format_k(values[p]) if p == 'K' else format_number(values[p])}")
        name = "_".join(parts)
        if self.epochs is not None:
            name += f"_{self.epochs}ep{self.iterations}it"
        return name

    @property
    def family_name(self) -> str | None:
        return None if self.family is None else self.family.name

    def loss_kwargs(self) -> dict:
        """Keyword arguments of the loss class (``nnunet_polydice.losses``) beyond nnU-Net's Dice ones."""
        if self.family is None:
            return {}
        kw = {"K": self.K, "epsilon": self.epsilon, "alpha": self.alpha, "beta": self.beta, "gamma": self.gamma}
        wanted = {"polydice": ("K", "epsilon"), "polytversky": ("K", "epsilon", "alpha", "beta"),
                  "tversky": ("alpha", "beta"), "focaltversky": ("alpha", "beta", "gamma")}[self.family.loss]
        return {k: kw[k] for k in wanted}

    def formula(self) -> str:
        if self.family is None:
            return f"loss of {self.base}"
        f = self.family
        k = format_k(self.K) if self.K is not None else None
        if f.loss in ("polydice", "polytversky"):
            u = "1-D" if f.loss == "polydice" else f"1-T(a={self.alpha:g},b={self.beta:g})"
            series = "-log(1-u)" if self.K == math.inf else ("u" if self.K == 1 else f"sum_j=1..{k} u^j/j")
            eps = "" if self.epsilon == 0 else f" {'+' if self.epsilon > 0 else '-'} {abs(self.epsilon):g}*u"
            core = f"{series}{eps}, u={u}"
        elif f.loss == "tversky":
            core = f"1 - T(a={self.alpha:g},b={self.beta:g})"
        else:
            core = f"(1 - T(a={self.alpha:g},b={self.beta:g}))^{self.gamma:g}"
        return ("CE + " if f.compound else "") + core


def _defaults_for(family: Family) -> dict:
    values = {}
    if "K" in family.params:
        values.update(K=defaults.DEFAULT_K, epsilon=float(defaults.DEFAULT_EPSILON))
    if "a" in family.params:
        values.update(alpha=defaults.TVERSKY_ALPHA, beta=defaults.TVERSKY_BETA)
    if "g" in family.params:
        values.update(gamma=defaults.FOCAL_GAMMA)
    return values


def _family_of(name: str) -> tuple[Family | None, str]:
    """The longest family name that ``name`` is, or starts with followed by '_'; and the rest."""
    for fam in sorted(FAMILIES.values(), key=lambda f: -len(f.name)):
        if name == fam.name:
            return fam, ""
        if name.startswith(fam.name + "_"):
            return fam, name[len(fam.name):]
    return None, name


def _allowed_sentence(family: Family) -> str:
    example = {"nnUNetTrainerPolyDice": "_K3_eps0p5", "nnUNetTrainerPolyDiceCE": "_Kinf_epsm0p5",
               "nnUNetTrainerPolyTversky": "_K2_eps1_a0p3_b0p7", "nnUNetTrainerPolyTverskyCE": "_K2_eps1_a0p3_b0p7",
               "nnUNetTrainerTversky": "_a0p3_b0p7", "nnUNetTrainerTverskyCE": "_a0p3_b0p7",
               "nnUNetTrainerFocalTversky": "_a0p3_b0p7_g0p75",
               "nnUNetTrainerFocalTverskyCE": "_a0p3_b0p7_g0p75"}[family.name]
    return (f"Allowed: {family.name} (defaults) or {family.name}{family.pattern}, optionally followed by "
            f"_<epochs>ep<iterations>it, e.g. {family.name}{example}; K is a positive integer or inf, NUM is "
            f"a number written with p for the decimal point and m for a minus sign.")


def parse_trainer_name(name: str) -> TrainerSpec | None:
    """Parse a trainer name.

    Returns None when the name is not one of ours (so nnU-Net's lookup can go on elsewhere), a
    TrainerSpec when it is, and raises InvalidTrainerName when it starts like one of our families
    but is malformed, non-canonical or names a disallowed setting.
    """
    schedule = SUFFIX_SCHEDULE.search(name)
    epochs = iterations = None
    core = name
    if schedule:
        epochs, iterations = int(schedule.group(1)), int(schedule.group(2))
        core = name[: schedule.start()]
    family, rest = _family_of(core)
    if schedule and (epochs < 1 or iterations < 1 or schedule.group(1).startswith("0")
                     or schedule.group(2).startswith("0")):
        raise InvalidTrainerName(
            f"Trainer name {name!r}: the schedule suffix _<epochs>ep<iterations>it needs positive integers "
            f"without leading zeros (got {schedule.group(0)!r}), e.g. _20ep50it.")
    if family is None:
        if schedule is None or not core.isidentifier() or "__" in core:
            return None
        return TrainerSpec(base=core, epochs=epochs, iterations=iterations)

    if rest == "":
        spec = TrainerSpec(base=family.name, family=family, epochs=epochs, iterations=iterations,
                           **_defaults_for(family))
        return spec

    regex = "".join(f"_{p}({_PARAM_REGEX[p]})" for p in family.params)
    m = re.fullmatch(regex, rest)
    if m is None:
        raise InvalidTrainerName(f"Trainer name {name!r} is not a valid {family.name} name. "
                                 + _allowed_sentence(family))
    tokens = dict(zip(family.params, m.groups()))
    values = {}
    for p, tok in tokens.items():
        values[p] = math.inf if (p == "K" and tok == "inf") else (int(tok) if p == "K" else parse_number(tok))
    # canonical spelling
    canonical_tokens = {p: (format_k(v) if p == "K" else format_number(v)) for p, v in values.items()}
    if canonical_tokens != tokens:
        canonical = family.name + "".join(f"_{p}{canonical_tokens[p]}" for p in family.params)
        if epochs is not None:
            canonical += f"_{epochs}ep{iterations}it"
        raise InvalidTrainerName(
            f"Trainer name {name!r} spells a number in a non-canonical way; the canonical name of this "
            f"setting is {canonical!r} (numbers are written in their shortest decimal form).")
    kwargs = {}
    try:
        if "K" in values:
            K, eps, _ = defaults.validate_poly(values["K"], values["eps"])
            kwargs.update(K=K, epsilon=eps)
        if "a" in values:
            defaults.validate_tversky(values["a"], values["b"])
            kwargs.update(alpha=values["a"], beta=values["b"])
        if "g" in values:
            defaults.validate_gamma(values["g"])
            kwargs.update(gamma=values["g"])
    except ValueError as err:
        raise InvalidTrainerName(f"Trainer name {name!r} names a disallowed setting: {err} "
                                 + _allowed_sentence(family)) from None
    return TrainerSpec(base=family.name, family=family, explicit=True, epochs=epochs, iterations=iterations,
                       **kwargs)


def trainer_name(family: str, *, K=None, epsilon=None, alpha=None, beta=None, gamma=None,
                 epochs: int | None = None, iterations: int | None = None) -> str:
    """Canonical name of a setting (all of the family's parameters must be given, or none)."""
    fam = FAMILIES[family]
    given = {"K": K, "eps": epsilon, "a": alpha, "b": beta, "g": gamma}
    parts = [fam.name]
    if any(given[p] is not None for p in fam.params):
        missing = [p for p in fam.params if given[p] is None]
        if missing:
            raise ValueError(f"{family} needs all of {fam.params} or none (missing {missing}).")
        for p in fam.params:
            parts.append(f"{p}{format_k(given[p]) if p == 'K' else format_number(given[p])}")
    name = "_".join(parts)
    if epochs is not None:
        name += f"_{epochs}ep{iterations}it"
    spec = parse_trainer_name(name)  # validates
    return spec.name


def ready_grid() -> list[str]:
    """The documented grid of ready settings: both Poly Dice families x READY_K x READY_EPSILON."""
    names = []
    for fam in ("nnUNetTrainerPolyDice", "nnUNetTrainerPolyDiceCE"):
        for K in READY_K:
            for eps in READY_EPSILON:
                names.append(trainer_name(fam, K=K, epsilon=eps))
    return names


def catalogue_names() -> list[str]:
    """Every name in the catalogue: the family names (defaults) and the ready grid."""
    return list(FAMILIES) + ready_grid()
