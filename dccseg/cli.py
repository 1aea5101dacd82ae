"""The ``dccseg`` command line: one subcommand module per job under ``dccseg.commands``.

Each command module defines ``register(subparsers, common)`` which adds its parser(s) and
sets ``func(args, progress) -> int``. Only the named command's module is imported (the others
pull in torch and MONAI, which cost seconds of start-up). A DccsegError becomes one line on
stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import DccsegError
from .progress import MODES, Progress

COMMAND_MODULES = (
    "dataset",
    "phantom",
    "phase",
    "models",
    "evaluate",
    "diagnose",
    "train",
    "segment",
    "ablation",
    "demo",
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``command`` alone when it is known, otherwise for every command (``--help``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--progress", choices=MODES, default="human", help="progress output: bars (human), one JSON object per line (json), or nothing")
    parser = argparse.ArgumentParser(prog="dccseg", description="Multi-phase abdominal CT organ segmentation (DCC-CL).")
    parser.add_argument("--version", action="version", version=f"dccseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in [command] if command in COMMAND_MODULES else COMMAND_MODULES:
        importlib.import_module(f"dccseg.commands.{name}").register(subparsers, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # the Slicer modules read UTF-8, whatever the locale says
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8", errors="replace")
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    progress = Progress(getattr(args, "progress", "human"))
    try:
        return int(args.func(args, progress) or 0)
    except DccsegError as exc:
        progress.error(str(exc))
        print(f"dccseg: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        progress.error("interrupted")
        print("dccseg: interrupted", file=sys.stderr)
        return 130
    finally:
        progress.close()


if __name__ == "__main__":
    sys.exit(main())
