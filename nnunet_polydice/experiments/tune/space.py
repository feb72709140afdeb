"""The search space: families x K x epsilon as categorical name tokens, each point a canonical trainer name.

Every trial suggests three categorical parameters over the canonical name tokens (``family``, ``K`` =
``'3'``/``'inf'``, ``epsilon`` = ``'0p5'``), so the sampler sees a finite space, and its setting is the canonical
trainer name (``nnUNetTrainerPolyDice_K3_eps0p5_30ep40it``, made by ``sweep``'s trainer naming) whose results
folder is nnU-Net's ordinary one. Epsilon takes numbers and ranges ``START:STOP:STEP`` with a step of at least
:data:`MIN_EPSILON_STEP`, so that every value has a name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from nnunet_polydice.experiments import checks, sweep
from nnunet_polydice.integration.naming import (
    READY_EPSILON,
    READY_K,
    format_k,
    format_number,
    parse_number,
    parse_trainer_name,
)

__all__ = ["DEFAULT_K", "DEFAULT_EPSILON", "MIN_EPSILON_STEP", "Setting", "SearchSpace", "epsilon_range",
           "parse_epsilons", "build_space"]

DEFAULT_K = tuple(format_k(k) for k in READY_K)
DEFAULT_EPSILON = tuple(repr(e) for e in READY_EPSILON)
#: The smallest step of an epsilon range: a finer grid of one continuous parameter is no longer a grid.
MIN_EPSILON_STEP = Decimal("0.25")


def epsilon_range(text: str) -> list[float]:
    """``'0:2:0.5'`` -> ``[0.0, 0.5, 1.0, 1.5, 2.0]`` (both ends included, decimal steps without drift).

    Raises:
        ValueError: for a malformed range, a bound that is not finite, a step under :data:`MIN_EPSILON_STEP`,
            an empty range or one of more than :data:`~nnunet_polydice.experiments.checks.MAX_RANGE_VALUES`.
    """
    return [float(d) for d in checks.check_range(text, "--epsilon", MIN_EPSILON_STEP)]


def parse_epsilons(texts: Sequence) -> list[float]:
    """Epsilon values from ``--epsilon`` words: numbers and ``START:STOP:STEP`` ranges, in order.

    Raises:
        ValueError: for a word that is neither.
    """
    out: list[float] = []
    for text in texts:
        text = str(text).strip()
        if ":" in text:
            out += epsilon_range(text)
            continue
        try:
            value = checks.check_number(text, "--epsilon")
        except ValueError:
            raise ValueError(f"--epsilon {text!r} is not a finite number or a START:STOP:STEP range, in ASCII (e.g. "
                             f"0.5 or 0:2:0.5).") from None
        out.append(value)
    return out


@dataclass(frozen=True)
class Setting:
    """One point of the space: the three tokens and the canonical trainer name they make."""

    family: str
    K: str
    epsilon: str
    trainer: str

    @property
    def params(self) -> dict:
        return {"family": self.family, "K": self.K, "epsilon": self.epsilon}

    @property
    def label(self) -> str:
        """``K=3 eps=0.5`` for lines and tables."""
        return f"K={self.K} eps={parse_number(self.epsilon):g}"


@dataclass(frozen=True)
class SearchSpace:
    """Families x K tokens x epsilon tokens (orders as given), with the trainer name of every point."""

    families: tuple[str, ...]
    K: tuple[str, ...]
    epsilon: tuple[str, ...]
    settings: tuple[Setting, ...]
    epochs: int | None = None
    iterations: int | None = None

    @property
    def size(self) -> int:
        return len(self.settings)

    def grid(self) -> dict:
        """``{'family': [...], 'K': [...], 'epsilon': [...]}``: the categorical choices."""
        return {"family": list(self.families), "K": list(self.K), "epsilon": list(self.epsilon)}

    def setting(self, family: str, K: str, epsilon: str) -> Setting:
        """The setting of three tokens.

        Raises:
            KeyError: when they are not a point of the space.
        """
        for s in self.settings:
            if (s.family, s.K, s.epsilon) == (family, K, epsilon):
                return s
        raise KeyError(f"{family} K={K} epsilon={epsilon} is not in the space")

    def by_trainer(self, trainer: str) -> Setting | None:
        return next((s for s in self.settings if s.trainer == trainer), None)

    def suggest(self, trial) -> Setting:
        """Ask ``trial`` for the three categorical parameters; the setting they name."""
        family = trial.suggest_categorical("family", list(self.families))
        K = trial.suggest_categorical("K", list(self.K))
        epsilon = trial.suggest_categorical("epsilon", list(self.epsilon))
        return self.setting(family, K, epsilon)


def build_space(families: Sequence[str], K_values: Sequence, epsilons: Sequence[float],
                schedule: tuple[int, int] | None = None) -> SearchSpace:
    """The space of ``families x K x epsilon``, every name made and checked by ``sweep``'s
    :func:`sweep.sweep_trainers` (Poly families only, K and epsilon validated with their sentences).

    Values that name the same setting (``1`` and ``1.0``) are one token.

    Raises:
        ValueError: for an empty list, a family that takes no K, or a disallowed K or epsilon.
    """
    for option, values in (("--families", families), ("--K", K_values), ("--epsilon", epsilons)):
        if not list(values):
            raise ValueError(f"the search space is empty: {option} has no values.")
    fams, K_tokens, eps_tokens, settings = [], [], [], []
    for fam in dict.fromkeys(families):
        for K in K_values:
            for eps in epsilons:
                name = sweep.sweep_trainers([fam], [K], [eps], baselines=(), schedule=schedule)[0]
                spec = parse_trainer_name(name)
                k_tok, e_tok = format_k(spec.K), format_number(spec.epsilon)
                for seq, tok in ((fams, fam), (K_tokens, k_tok), (eps_tokens, e_tok)):
                    if tok not in seq:
                        seq.append(tok)
                if all(s.trainer != name for s in settings):
                    settings.append(Setting(fam, k_tok, e_tok, name))
    epochs, iterations = schedule if schedule is not None else (None, None)
    return SearchSpace(tuple(fams), tuple(K_tokens), tuple(eps_tokens), tuple(settings), epochs, iterations)
