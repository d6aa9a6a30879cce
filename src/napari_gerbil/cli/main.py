"""Entry point of the ``napari-gerbil`` command.

Each subcommand lives in its own module of :mod:`napari_gerbil.cli` exposing
``register(subparsers)``, which adds an ``argparse`` parser whose ``func`` default is
called with the parsed arguments and returns the exit status. Modules are imported
only when the command line is built, and heavy imports (torch, napari) happen inside
the command functions, so ``napari-gerbil --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from napari_gerbil import __version__
from napari_gerbil.errors import GerbilError

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "napari_gerbil.cli.inspect",  # info, validate
    "napari_gerbil.cli.simulate",  # simulate
    "napari_gerbil.cli.cage",  # cage show | list
    "napari_gerbil.cli.demo",  # demo (napari)
    "napari_gerbil.cli.evaluate",  # evaluate
    "napari_gerbil.cli.benchmark",  # benchmark
    "napari_gerbil.cli.models",  # models
    "napari_gerbil.cli.train",  # train
    "napari_gerbil.cli.predict",  # predict
    "napari_gerbil.cli.session",  # session create
    "napari_gerbil.cli.calls",  # detect, import-calls
    "napari_gerbil.cli.localize",  # localize, calibrate, train-scorer
    "napari_gerbil.cli.review",  # export, review-status
)


#: Exit status of an unexpected exception (a bug, not a bad input).
INTERNAL_ERROR = 3


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="napari-gerbil",
        description="Localize rodent vocal calls and attribute them to animals.",
    )
    parser.add_argument("--version", action="version", version=f"napari-gerbil {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # e.g. for train --nproc
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = args.func(args)
    except GerbilError as exc:
        print(f"napari-gerbil {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, permission denied, I/O error: a fault, one line
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        reason = exc.strerror or str(exc)
        print(f"napari-gerbil {args.command}: error: {where}{reason}", file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("NAPARI_GERBIL_DEBUG"):
            raise
        text = " ".join(str(exc).split())[:300]
        print(
            f"napari-gerbil {args.command}: internal error: {type(exc).__name__}: {text} "
            "(a bug: please report it; NAPARI_GERBIL_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
