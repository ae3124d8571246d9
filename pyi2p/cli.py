"""The `pyi2p` command: the composition root (config + wiring of router and apps)."""
from __future__ import annotations

import argparse
import sys

from core.control.config import ControlConfigError
from core.data.errors import ProtocolError
from core.fsutil import DataDirInUse

from . import reseed, run, status, testnet, tools, tui


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyi2p", description="An I2P node in Python.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    run.add_parser(subparsers)
    status.add_parser(subparsers)
    tools.add_parsers(subparsers)
    reseed.add_parser(subparsers)
    testnet.add_parser(subparsers)
    tui.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ProtocolError, ControlConfigError, DataDirInUse) as exc:
        print(f"pyi2p: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"pyi2p: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
