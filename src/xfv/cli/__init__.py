"""The ``xfv`` command line: a thin layer over the library; each command lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from xfv.errors import XfvError

#: Command modules; each has ``register(subparsers)`` that adds its commands with ``func`` defaults.
COMMAND_MODULES = (
    "xfv.cli.core",
    "xfv.cli.calibration",
    "xfv.cli.datasets",
    "xfv.cli.explain",
    "xfv.cli.store",
    "xfv.cli.web",
)


def build_parser() -> argparse.ArgumentParser:
    from importlib import import_module

    parser = argparse.ArgumentParser(prog="xfv", description="eXplainable Face Verification: C-Scores and X-Maps.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors print one line naming the problem and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except XfvError as exc:
        print(f"xfv: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xfv: interrupted", file=sys.stderr)
        return 130
