"""argparse types made of the checks in :mod:`nnunet_polydice.experiments.checks`: a value argparse refuses shows
the check's sentence (which names the option, the value and what is allowed)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def checked(check: Callable, option: str, *args) -> Callable[[str], object]:
    """The argparse ``type`` that runs ``check(text, option, *args)``."""
    def parse(text: str):
        try:
            return check(text, option, *args)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return parse
