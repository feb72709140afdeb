"""The ``nnunet-polydice`` command line. Each sub-command lives in its own module of this package and
exposes ``register(subparsers)``; the library modules never import this package."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from .. import __version__

# sub-command module names, in the order ``--help`` lists them
COMMANDS = ("catalogue", "doctor", "link", "demo", "datasets", "add_config", "sweep", "noise", "tune", "compare",
            "curves", "plot_shape")


class _StoreOnce(argparse._StoreAction):
    """argparse's default action (store), refusing an option given twice (``--seeds 0 --seeds 1`` would keep only
    the last): the user is told, instead of half of what was typed being dropped without a word."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = parser.__dict__.setdefault("_polydice_given", {})
        shown = " ".join(map(str, values)) if isinstance(values, list) else values
        if option_string is not None and self.dest in given:
            raise argparse.ArgumentError(self, f"given more than once ({given[self.dest]}, then {shown}); give it "
                                               f"once, with all its values")
        given[self.dest] = shown
        super().__call__(parser, namespace, values, option_string)


class Parser(argparse.ArgumentParser):
    """The parser of every command and sub-command (sub-parsers are made of the parent's class): an option that
    stores a value may be given once (:class:`_StoreOnce`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)

    def parse_known_args(self, args=None, namespace=None):
        self.__dict__.pop("_polydice_given", None)  # what this parse has seen, not an earlier one
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a full device or a closed stream fails here, where it is answered, not at exit
        return status
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        if isinstance(err, OSError) and err.errno is not None:  # raised by the system, not by a check
            return _os_error(args.command, err)
        _error(args.command, err)
        return 2
    except KeyboardInterrupt:  # Ctrl-C (or tune's SIGTERM): one line, no traceback, the shell's status for SIGINT
        lead = "\n" if _isatty(sys.stderr) else ""  # a terminal has echoed ^C: end that line first
        if sys.stderr is not None:
            print(f"{lead}nnunet-polydice {args.command}: interrupted.", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:  # the reader (e.g. head) has gone: stop quietly, as POSIX tools do
        _silence_stdout()
        return 141
    except OSError as err:  # a path the system refused (too long, disk full, ...) or a stream that cannot be written
        return _os_error(args.command, err)


def _error(command: str, text) -> None:
    """``nnunet-polydice COMMAND: error: TEXT`` on stderr; nothing when stderr is closed (``2>&-``: Python then has
    no sys.stderr, and print would put the sentence on stdout, into the data stream)."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        print(f"nnunet-polydice {command}: error: {text}", file=stream, flush=True)
    except (OSError, ValueError):  # stderr itself full or closed: the exit status is all that is left
        pass


def os_error_text(err: OSError) -> str:
    """One sentence for an OSError: the file it concerns (when it names one), what the system said, and what
    helps for the usual causes."""
    what = err.strerror or str(err) or type(err).__name__
    if err.filename is None:
        return f"cannot write to standard output ({what})."
    where = f"{err.filename}: "
    full = " Free some space (or write elsewhere) and run the command again."
    hint = {errno.ENAMETOOLONG: " Give a shorter path.", errno.ENOSPC: full, errno.EDQUOT: full, errno.EFBIG: full,
            errno.EACCES: " Give a path you can write to.", errno.EROFS: " Give a path you can write to."}
    return f"{where}{what}.{hint.get(err.errno, '')}"


def _os_error(command: str, err: OSError) -> int:
    """Answer an OSError with its sentence (:func:`os_error_text`), exit status 1; when it came from stdout (no file
    name), stdout is pointed at /dev/null so that the interpreter's final flush does not fail again."""
    if err.filename is None:
        _silence_stdout()
    _error(command, os_error_text(err))
    return 1


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
