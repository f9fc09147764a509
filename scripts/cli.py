"""``hcgym`` command line. Each subcommand lives in its own module with
``register(subparsers)``, which adds its parser and sets ``func``."""

from __future__ import annotations

import argparse
import sys

from hcgym.errors import HcgymError

#: Subcommand modules, in the order ``hcgym --help`` lists them.
COMMANDS = ("demo", "avatars", "render", "export_webots", "train", "evaluate", "generate", "sensors", "export",
            "calibrate")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    from hcgym import __version__

    parser = argparse.ArgumentParser(prog="hcgym", description="Human-centric robot perception in simulation.")
    parser.add_argument("--version", action="version", version=f"hcgym {__version__}")
    parser.add_argument("--verbose", action="store_true",
                        help="let third-party logs through (TF Lite, absl/glog, Warp, PyBullet, ONNX Runtime, Ray, "
                             "SB3); given before the command")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"hcgym.scripts.{name}").register(sub)
    return parser


def _verbose(argv: list[str]) -> bool:
    """Whether ``--verbose`` comes before the command (read before anything is imported)."""
    for arg in argv:
        if arg == "--verbose":
            return True
        if not arg.startswith("-"):
            return False
    return False


def main(argv: list[str] | None = None) -> int:
    from hcgym.logs import quiet_output

    argv = list(sys.argv[1:] if argv is None else argv)
    with quiet_output(verbose=_verbose(argv)):
        return _run(argv)


def _run(argv: list[str]) -> int:
    parser = build_parser()
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
