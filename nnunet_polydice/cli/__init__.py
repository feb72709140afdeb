"""The ``nnunet-polydice`` command line. Each sub-command lives in its own module of this package and
exposes ``register(subparsers)``; the library modules never import this package."""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__

# sub-command module names, in the order ``--help`` lists them
COMMANDS = ("catalogue", "doctor", "demo", "datasets", "add_config", "sweep", "tune", "compare", "curves", "plot_shape")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnunet-polydice",
        description="Polynomial Dice loss trainers for nnU-Net v2: catalogue, checks, demo and ablation tools.")
    parser.add_argument("--version", action="version", version=f"nnunet-polydice {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"{__name__}.{name}":
                continue  # sub-command not shipped in this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"nnunet-polydice {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
