"""Checks of the arguments a user types, in one place, used by every command before any work.

Each function takes the value as typed (or as argparse parsed it) and the option's name, and returns the
value in the form the command uses, or raises :class:`ValueError` with one sentence that names the option,
the value and what is allowed. Every size a user types is bounded, and the bound is in the sentence. The
command-line tool turns these errors into ``nnunet-polydice <command>: error: ...`` and exit code 2; the
commands call them before a study is opened, a folder made, a file written or a training started.
"""

from __future__ import annotations

import numbers
import operator

from nnunet_polydice.integration.naming import MAX_SEED

__all__ = ["MAX_SEED", "check_int", "check_seed", "check_seeds"]


def _as_int(value, option: str, allowed: str) -> int:
    """``value`` (an integer, or a string that spells one) as an int; bools, floats and other text refused."""
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not digits.isascii() or not digits.isdigit():
            raise ValueError(f"{option} must be {allowed} (got {value!r}).")
        return int(text)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{option} must be {allowed} (got {value!r}).")
    return operator.index(value)


def check_int(value, option: str, minimum: int, maximum: int) -> int:
    """``value`` as an int in ``[minimum, maximum]``.

    Raises:
        ValueError: when it is not an integer or lies outside the range; the sentence names ``option`` and
            both bounds.
    """
    allowed = f"an integer from {minimum} to {maximum}"
    number = _as_int(value, option, allowed)
    if not minimum <= number <= maximum:
        raise ValueError(f"{option} must be {allowed} (got {number}).")
    return number


def check_seed(value, option: str = "--seed") -> int:
    """``value`` as a seed: an int from 0 to :data:`MAX_SEED` (what numpy's legacy seeding accepts).

    Raises:
        ValueError: otherwise; the sentence names ``option`` and the range.
    """
    return check_int(value, option, 0, MAX_SEED)


def check_seeds(values, option: str = "--seeds") -> list[int]:
    """``values`` as a non-empty list of distinct seeds (:func:`check_seed` each), in the order given.

    Raises:
        ValueError: when the list is empty, a seed is out of range or a seed is given twice.
    """
    if values is None or isinstance(values, (str, bytes)) or len(values) == 0:
        raise ValueError(f"{option} needs at least one seed, each an integer from 0 to {MAX_SEED} (got "
                         f"{values!r}).")
    seeds = [check_seed(value, option) for value in values]
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise ValueError(f"{option} gives the seed {repeated[0]} more than once; give each seed once.")
    return seeds
