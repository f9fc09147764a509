"""``hcgym`` command line. Each subcommand lives in its own module with
``register(subparsers)``, which adds its parser and sets ``func``."""

from __future__ import annotations

import argparse
import sys

from hcgym.errors import HcgymError

#: Subcommand modules, in the order ``hcgym --help`` lists them.
COMMANDS = ("demo", "avatars", "render", "export_webots", "train", "evaluate", "generate", "sensors")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    from hcgym import __version__

    parser = argparse.ArgumentParser(prog="hcgym", description="Human-centric robot perception in simulation.")
    parser.add_argument("--version", action="version", version=f"hcgym {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"hcgym.scripts.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # recorded in provenance files
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HcgymError as e:
        print(f"hcgym {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
