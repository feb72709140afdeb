"""Trainer names: one grammar from a name to a loss setting and back.

Pure Python, no torch and no nnunetv2, so that names can be checked (by the command line, the sweep
tool and nnU-Net's trainer lookup) before anything heavy is imported.

Grammar (``<...>`` are placeholders, ``[...]`` optional)::

    name      := <family> [<params>] [_<E>ep<I>it] [_s<N>]
               | <nnU-Net trainer> _<E>ep<I>it [_s<N>]
               | <nnU-Net trainer> _s<N>
    params    := _K<K>_eps<NUM>                       (PolyDice, PolyDiceCE)
               | _K<K>_eps<NUM>_a<NUM>_b<NUM>         (PolyTversky, PolyTverskyCE)
               | _a<NUM>_b<NUM>                       (Tversky, TverskyCE)
               | _a<NUM>_b<NUM>_g<NUM>                (FocalTversky, FocalTverskyCE)
    K         := a positive integer without leading zeros, or ``inf``
    NUM       := the shortest decimal form of the value, ``p`` for the decimal point and a leading
                 ``m`` for the minus sign: 1 -> ``1``, 0.5 -> ``0p5``, -0.5 -> ``m0p5``, 1.25 -> ``1p25``

A family name without parameters uses the documented defaults (``nnunet_polydice.loss.settings``); with parameters,
all of the family's parameters are given, so that a name means the same setting in every release.
Another spelling of the same number (``eps1p0``, ``K03``) is refused with the canonical name, because
nnU-Net keys its results folders by trainer name and two names for one setting would split them.

The schedule suffix ``_<E>ep<I>it`` (E epochs of I training iterations, I/5 validation iterations,
at least 1; E at most MAX_EPOCHS and I at most MAX_ITERATIONS) turns any of these, and any trainer
nnU-Net itself ships (``nnUNetTrainer_20ep50it``), into a short-schedule variant for CPU budgets, demos
and tests. It is built by :func:`schedule_suffix` and read by :func:`split_schedule`, nowhere else.

Only the canonical ASCII spelling resolves: digits are ``0-9`` (not other Unicode digits, which
Python's ``int`` would accept) and nothing may follow the name (not even a newline), since every
other spelling would be a second results folder for the same setting.

The seed suffix ``_s<N>`` (N in 0..MAX_SEED, written without leading zeros) comes last and makes a
*seeded* run: weight initialisation, the cases, patches and augmentations the loaders draw and the validation
patches behind the pseudo Dice become functions of N alone (:mod:`nnunet_polydice.integration.seeding`). The
seed is part of the name because nnU-Net keys results folders by trainer name: each seed of a setting gets its
own folder. It is built by :func:`seed_suffix` and read by :func:`split_seed`, nowhere else. A name may carry
one seed suffix; ``_s01`` is refused with its canonical spelling ``_s1``.

The families themselves (tokens, loss classes, defaults, formulas) are declared in
:mod:`nnunet_polydice.loss.families`; this module only reads and writes names.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal

from nnunet_polydice.loss.families import FAMILIES, PARAMETERS, Family, format_k
from nnunet_polydice.loss.settings import MAX_K

__all__ = ["FAMILIES", "MAX_EPOCHS", "MAX_ITERATIONS", "MAX_SEED", "Family", "InvalidTrainerName", "TrainerSpec",
           "catalogue_names", "format_k", "format_number", "is_class_name", "parse_number", "parse_trainer_name",
           "ready_grid", "schedule_suffix", "seed_suffix", "setting_and_seed", "split_schedule", "split_seed",
           "trainer_name", "unseeded_name"]

_SCHEDULE = re.compile(r"_([0-9]+)ep([0-9]+)it\Z", re.ASCII)
_SEED = re.compile(r"_s([0-9]+)\Z", re.ASCII)
_NUM = r"m?[0-9]+(?:p[0-9]+)?"
_PARAM_REGEX = {"K": r"[0-9]+|inf", "eps": _NUM, "a": _NUM, "b": _NUM, "g": _NUM}

# The documented grid of ready settings (catalogue and entry points), for both Poly Dice families.
READY_K = (1, 2, 3, math.inf)
READY_EPSILON = (-0.5, 0.0, 0.5, 1.0, 2.0)

# Seeds of ``_s<N>`` names: what numpy's legacy seeding (and so batchgenerators' workers) accepts.
MAX_SEED = 2**32 - 1
#: Bounds of the schedule suffix ``_<E>ep<I>it`` (and of every schedule a user types): ten times nnU-Net's 1000
#: epochs, forty times its 250 iterations per epoch.
MAX_EPOCHS = 10_000
MAX_ITERATIONS = 10_000


class InvalidTrainerName(ValueError):
    """A name of one of our families that does not follow the grammar or names a disallowed setting."""


def capped_int(digits: str, cap: int) -> int:
    """``int(digits)`` for a string of ASCII digits, or ``cap + 1`` when it has more digits than ``cap`` (leading
    zeros aside): a bound check then refuses it with its own sentence, where Python would refuse to convert more
    than 4300 digits with a message that names no option."""
    significant = digits.lstrip("0")
    return cap + 1 if len(significant) > len(str(cap)) else int(digits)


def shown_number(text: str) -> str:
    """A typed number (or name) as an error message quotes it: itself, or its start and its length when long."""
    unit = "digits" if text.isdigit() else "characters"
    return text if len(text) <= 80 else f"{text[:40]}... ({len(text)} {unit})"


def schedule_suffix(epochs: int | None, iterations: int | None) -> str:
    """``_<E>ep<I>it`` for a short schedule, ``''`` for nnU-Net's own (both None)."""
    if epochs is None and iterations is None:
        return ""
    return f"_{int(epochs)}ep{int(iterations)}it"


def split_schedule(name: str, whole: str | None = None) -> tuple[str, int | None, int | None]:
    """``(core, epochs, iterations)`` of a name; ``(name, None, None)`` without a schedule suffix. ``whole``:
    the name the error quotes, when ``name`` is what is left of it without its seed suffix.

    Raises:
        InvalidTrainerName: for a suffix with zero or a leading zero (``_0ep5it``, ``_05ep5it``), or more than
            :data:`MAX_EPOCHS` epochs or :data:`MAX_ITERATIONS` iterations (``_99999999ep1it``).
    """
    m = _SCHEDULE.search(name)
    if m is None:
        return name, None, None
    shown = name if whole is None else whole
    if any(g.startswith("0") for g in m.groups()):
        raise InvalidTrainerName(
            f"Trainer name {shown!r}: the schedule suffix _<epochs>ep<iterations>it needs positive integers "
            f"without leading zeros (got {m.group(0)!r}), e.g. _20ep50it.")
    epochs, iterations = capped_int(m.group(1), MAX_EPOCHS), capped_int(m.group(2), MAX_ITERATIONS)
    if epochs > MAX_EPOCHS or iterations > MAX_ITERATIONS:
        raise InvalidTrainerName(
            f"Trainer name {shown_number(shown)!r}: the schedule suffix _<epochs>ep<iterations>it takes epochs from 1 "
            f"to {MAX_EPOCHS} and iterations from 1 to {MAX_ITERATIONS} (got {shown_number(m.group(0))!r}), e.g. "
            f"_20ep50it.")
    return name[: m.start()], epochs, iterations


def seed_suffix(seed: int | None) -> str:
    """``_s<N>`` for a seeded run, ``''`` for an unseeded one (None)."""
    if seed is None:
        return ""
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"a seed is an integer from 0 to {MAX_SEED} (got {seed}).")
    return f"_s{seed}"


def split_seed(name: str) -> tuple[str, int | None]:
    """``(rest, seed)`` of a name; ``(name, None)`` without a seed suffix.

    Raises:
        InvalidTrainerName: for a seed with a leading zero (``_s01``), past MAX_SEED, or given twice
            (``_s1_s2``); the message gives the canonical spelling or the allowed range.
    """
    m = _SEED.search(name)
    if m is None:
        return name, None
    rest, digits = name[: m.start()], m.group(1)
    seed = capped_int(digits, MAX_SEED)
    if seed > MAX_SEED:
        raise InvalidTrainerName(f"Trainer name {shown_number(name)!r}: the seed suffix _s<N> needs N from 0 to "
                                 f"{MAX_SEED} (got {shown_number(digits)}).")
    if digits != str(seed):
        raise InvalidTrainerName(f"Trainer name {name!r} spells its seed in a non-canonical way; the canonical "
                                 f"name is {rest + seed_suffix(seed)!r} (no leading zeros).")
    if _SEED.search(rest):
        raise InvalidTrainerName(f"Trainer name {name!r} has two seed suffixes; a name carries one _s<N>, at "
                                 f"its end.")
    if _SEED.search(split_schedule(rest, name)[0]):
        core, epochs, iterations = split_schedule(rest, name)
        canonical = _SEED.sub("", core) + schedule_suffix(epochs, iterations) + _SEED.search(core).group(0)
        raise InvalidTrainerName(f"Trainer name {name!r} has two seed suffixes; a name carries one _s<N>, "
                                 f"after the schedule (e.g. {canonical!r}).")
    return rest, seed


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


def _token(param: str, value) -> str:
    return format_k(value) if param == "K" else format_number(value)


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
    seed: int | None = None  # a seeded run (``_s<N>``); None: nnU-Net's own, unseeded randomness

    def _params(self, explicit: bool) -> str:
        if self.family is None or not explicit:
            return ""
        kwargs = self.loss_kwargs()
        return "".join(f"_{p}{_token(p, kwargs[PARAMETERS[p].keyword])}" for p in self.family.params)

    @property
    def name(self) -> str:
        return (self.base + self._params(self.explicit) + schedule_suffix(self.epochs, self.iterations)
                + seed_suffix(self.seed))

    @property
    def setting(self) -> str:
        """The name of the setting without its seed, parameters spelled out: one key for every name that
        trains the same loss on the same schedule (``nnUNetTrainerPolyDice`` and its explicit default name,
        any of their seeds), for grouping results into one row."""
        return self.base + self._params(True) + schedule_suffix(self.epochs, self.iterations)

    @property
    def family_name(self) -> str | None:
        return None if self.family is None else self.family.name

    def loss_kwargs(self) -> dict:
        """Keyword arguments of the family's loss class beyond nnU-Net's Dice ones (empty for nnU-Net's own)."""
        if self.family is None:
            return {}
        return {k: getattr(self, k) for k in self.family.loss.keywords}

    def formula(self) -> str:
        if self.family is None:
            return f"loss of {self.base}"
        return ("CE + " if self.family.compound else "") + self.family.loss.formula(self.loss_kwargs())


def _family_of(name: str) -> tuple[Family | None, str]:
    """The longest family name that ``name`` is, or starts with followed by '_'; and the rest."""
    for fam in sorted(FAMILIES.values(), key=lambda f: -len(f.name)):
        if name == fam.name:
            return fam, ""
        if name.startswith(fam.name + "_"):
            return fam, name[len(fam.name):]
    return None, name


def _allowed_sentence(family: Family) -> str:
    example = family.name + "".join(f"_{p}{_token(p, PARAMETERS[p].example)}" for p in family.params)
    return (f"Allowed: {family.name} (defaults) or {family.name}{family.pattern}, optionally followed by "
            f"_<epochs>ep<iterations>it and then _s<seed>, e.g. {example}; K is a positive integer or inf, NUM is "
            f"a number written with p for the decimal point and m for a minus sign; digits are ASCII 0-9 and "
            f"nothing follows the name.")


def is_class_name(text: str) -> bool:
    """An ASCII Python class name without '__' (nnU-Net separates trainer, plans and configuration by '__')."""
    return text.isascii() and text.isidentifier() and "__" not in text


def parse_trainer_name(name: str) -> TrainerSpec | None:
    """Parse a trainer name.

    Returns None when the name is not one of ours (so nnU-Net's lookup can go on elsewhere), a
    TrainerSpec when it is, and raises InvalidTrainerName when it starts like one of our families
    but is malformed, non-canonical or names a disallowed setting.
    """
    if re.search(r"_s-[0-9]+\Z", name, flags=re.ASCII):
        raise InvalidTrainerName(f"Trainer name {name!r}: the seed suffix _s<N> needs N from 0 to {MAX_SEED} "
                                 f"(a negative seed has no name).")
    if not is_class_name(name):
        family = next((f for f in sorted(FAMILIES, key=len, reverse=True) if name.startswith(f)), None)
        if family is not None:   # starts like ours, but another script's digits or a trailing newline
            raise InvalidTrainerName(f"Trainer name {name!r} is not a valid {family} name: only ASCII letters, "
                                     f"digits and single '_' may be used. " + _allowed_sentence(FAMILIES[family]))
    unseeded, seed = split_seed(name)
    core, epochs, iterations = split_schedule(unseeded, name)
    misplaced = _SEED.search(core) if epochs is not None else None
    if misplaced is not None:
        canonical = core[: misplaced.start()] + schedule_suffix(epochs, iterations) + misplaced.group(0)
        raise InvalidTrainerName(f"Trainer name {name!r} puts its seed before the schedule; the seed suffix comes "
                                 f"last: {canonical!r}.")
    family, rest = _family_of(core)
    if family is None:
        if (epochs is None and seed is None) or not is_class_name(core):
            return None
        return TrainerSpec(base=core, epochs=epochs, iterations=iterations, seed=seed)
    if rest == "":
        return TrainerSpec(base=family.name, family=family, epochs=epochs, iterations=iterations, seed=seed,
                           **family.loss.defaults())

    regex = "".join(f"_{p}({_PARAM_REGEX[p]})" for p in family.params)
    m = re.fullmatch(regex, rest, flags=re.ASCII)
    if m is None:
        raise InvalidTrainerName(f"Trainer name {name!r} is not a valid {family.name} name. "
                                 + _allowed_sentence(family))
    tokens = dict(zip(family.params, m.groups()))
    values = {p: (math.inf if tok == "inf" else capped_int(tok, MAX_K)) if p == "K" else parse_number(tok)
              for p, tok in tokens.items()}
    finite = all(math.isfinite(v) for p, v in values.items() if p != "K")
    if math.inf > values.get("K", 0) > MAX_K or not finite:
        raise InvalidTrainerName(f"Trainer name {shown_number(name)!r} is not a valid {family.name} name: K is at "
                                 f"most {MAX_K} (or inf) and every other number is finite. "
                                 + _allowed_sentence(family))
    canonical_tokens = {p: _token(p, v) for p, v in values.items()}
    if canonical_tokens != tokens:
        canonical = family.name + "".join(f"_{p}{canonical_tokens[p]}" for p in family.params)
        raise InvalidTrainerName(
            f"Trainer name {name!r} spells a number in a non-canonical way; the canonical name of this "
            f"setting is {canonical + schedule_suffix(epochs, iterations) + seed_suffix(seed)!r} (numbers are "
            f"written in their shortest decimal form).")
    try:
        kwargs = family.loss.validate({PARAMETERS[p].keyword: v for p, v in values.items()})
    except ValueError as err:
        raise InvalidTrainerName(f"Trainer name {name!r} names a disallowed setting: {err} "
                                 + _allowed_sentence(family)) from None
    return TrainerSpec(base=family.name, family=family, explicit=True, epochs=epochs, iterations=iterations,
                       seed=seed, **kwargs)


def unseeded_name(name: str) -> str:
    """``name`` without its seed suffix (``nnUNetTrainer_2ep3it_s1`` -> ``nnUNetTrainer_2ep3it``); a name whose seed
    suffix is malformed is returned as it is (its own check says what is wrong)."""
    try:
        return split_seed(name)[0]
    except InvalidTrainerName:
        return name


def setting_and_seed(name: str) -> tuple[str, int | None]:
    """``(setting, seed)`` of a trainer name (:attr:`TrainerSpec.setting`): every name that trains the same loss on
    the same schedule with the same seed has the same pair (``nnUNetTrainerPolyDice_s0`` and
    ``nnUNetTrainerPolyDice_K2_eps1_s0``); ``(name, None)`` for a name that is not ours or cannot be parsed."""
    try:
        spec = parse_trainer_name(name)
    except ValueError:
        return name, None
    return (name, None) if spec is None else (spec.setting, spec.seed)


def trainer_name(family: str, *, K=None, epsilon=None, alpha=None, beta=None, gamma=None,
                 epochs: int | None = None, iterations: int | None = None, seed: int | None = None) -> str:
    """Canonical name of a setting (all of the family's parameters must be given, or none)."""
    fam = FAMILIES[family]
    given = {"K": K, "epsilon": epsilon, "alpha": alpha, "beta": beta, "gamma": gamma}
    name = fam.name
    if any(given[k] is not None for k in fam.loss.keywords):
        missing = [k for k in fam.loss.keywords if given[k] is None]
        if missing:
            raise ValueError(f"{family} needs all of {fam.loss.keywords} or none (missing {missing}).")
        name += "".join(f"_{p}{_token(p, given[PARAMETERS[p].keyword])}" for p in fam.params)
    spec = parse_trainer_name(name + schedule_suffix(epochs, iterations) + seed_suffix(seed))  # validates
    return spec.name


def ready_grid() -> list[str]:
    """The documented grid of ready settings: both Poly Dice families x READY_K x READY_EPSILON."""
    return [trainer_name(fam, K=K, epsilon=eps)
            for fam in ("nnUNetTrainerPolyDice", "nnUNetTrainerPolyDiceCE")
            for K in READY_K for eps in READY_EPSILON]


def catalogue_names() -> list[str]:
    """Every name in the catalogue: the family names (defaults) and the ready grid."""
    return list(FAMILIES) + ready_grid()
