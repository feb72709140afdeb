"""One training run of a setting, named: ``Instance(fold, seed)`` with one key, one label, one parse, one order.

A setting's runs are (fold, seed) pairs: ``fold`` as nnU-Net names it (``'0'``, ``'all'``), ``seed`` an int
for a seeded run (trainer name ``<setting>_s<N>``) or None for nnU-Net's unseeded training. The spellings:

==============  ======================  ===============================================================
``key``         ``'0:s1'`` / ``'0'``    how tune stores a run in a study (:meth:`Instance.parse` reads it)
``label``       ``'fold 0 seed 1'``     in sentences
``short``       ``'0/s1'`` / ``'0'``    in compare's CSV cells, where ``:`` separates a run from its value
==============  ======================  ===============================================================

Order (:attr:`Instance.sort_key`): numeric folds by number, then other folds by name; within a fold the
unseeded run first, then by seed.
"""

from __future__ import annotations

from collections import namedtuple

__all__ = ["Instance", "fold_sort_key"]


def fold_sort_key(fold) -> tuple:
    """Numeric folds first, by number (``'2'`` before ``'10'``), then the others (``'all'``) by name."""
    fold = str(fold)
    return (0, int(fold), "") if fold.isascii() and fold.isdigit() else (1, 0, fold)


class Instance(namedtuple("_Instance", ["fold", "seed"])):
    """One (fold, seed) run; ``seed`` None: the unseeded run of the fold.

    A named pair: it unpacks as ``fold, seed = inst`` and equals (and hashes as) the plain tuple
    ``(fold, seed)``, which :mod:`nnunet_polydice.experiments.statistics` takes. ``fold`` is stored as a
    string, ``seed`` as an int or None.
    """

    __slots__ = ()

    def __new__(cls, fold, seed=None):
        return super().__new__(cls, str(fold), None if seed is None else int(seed))

    @property
    def key(self) -> str:
        """``'0:s1'`` (fold 0, seed 1) or ``'0'`` (fold 0, no seed): how trials store a run."""
        return self.fold if self.seed is None else f"{self.fold}:s{self.seed}"

    @property
    def label(self) -> str:
        """``'fold 0 seed 1'`` or ``'fold 0'``."""
        return f"fold {self.fold}" if self.seed is None else f"fold {self.fold} seed {self.seed}"

    @property
    def short(self) -> str:
        """``'0/s1'`` or ``'0'``: compare's CSV spelling."""
        return self.fold if self.seed is None else f"{self.fold}/s{self.seed}"

    @property
    def pair(self) -> tuple[str, int | None]:
        """``(fold, seed)`` as a plain tuple."""
        return tuple(self)

    @property
    def sort_key(self) -> tuple:
        """The one order of runs: :func:`fold_sort_key` of the fold, then the unseeded run, then by seed."""
        return (fold_sort_key(self.fold), -1 if self.seed is None else self.seed)

    def __lt__(self, other):
        return self.sort_key < Instance(*other).sort_key

    def __le__(self, other):
        return self.sort_key <= Instance(*other).sort_key

    def __gt__(self, other):
        return self.sort_key > Instance(*other).sort_key

    def __ge__(self, other):
        return self.sort_key >= Instance(*other).sort_key

    @classmethod
    def of(cls, value) -> Instance:
        """``value`` as an Instance: an Instance as it is, a ``(fold, seed)`` pair, or a :attr:`key`."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        fold, seed = value
        return cls(fold, seed)

    @classmethod
    def parse(cls, key: str) -> Instance:
        """The instance of a :attr:`key` (``'0:s1'`` -> ``Instance('0', 1)``, ``'0'`` -> ``Instance('0')``).

        Raises:
            ValueError: when the seed part is not an integer.
        """
        fold, _, seed = str(key).partition(":s")
        if seed and not (seed.isascii() and seed.isdigit()):
            raise ValueError(f"{key!r} is not a run key such as '0' or '0:s1'.")
        return cls(fold, int(seed) if seed else None)

