"""The ``nnunet-polydice`` command line. Each sub-command lives in its own module of this package and
exposes ``register(subparsers)``; the library modules never import this package."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import __version__

# sub-command module names, in the order ``--help`` lists them
COMMANDS = ("catalogue", "doctor", "link", "demo", "datasets", "add_config", "sweep", "noise", "tune", "compare",
            "curves", "plot_shape")


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
    except KeyboardInterrupt:  # Ctrl-C (or tune's SIGTERM): one line, no traceback, the shell's status for SIGINT
        lead = "\n" if _isatty(sys.stderr) else ""  # a terminal has echoed ^C: end that line first
        print(f"{lead}nnunet-polydice {args.command}: interrupted.", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:  # the reader (e.g. head) has gone: stop quietly, as POSIX tools do
        _silence_stdout()
        return 141


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush into the closed pipe stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (captured): nothing to flush into a pipe
        pass


if __name__ == "__main__":
    sys.exit(main())
