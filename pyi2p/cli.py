"""The `pyi2p` command: the composition root (config + wiring of router and apps)."""
from __future__ import annotations

import argparse
import importlib
import sys

from core.control.config import ControlConfigError
from core.data.errors import ProtocolError
from core.fsutil import DataDirInUse

# the modules of the commands, in the order `pyi2p --help` lists them; tools defines several commands
MODULES = ("run", "status", "tools", "reseed", "naming", "testnet", "torrent", "tui", "mail")
TOOLS = ("keygen", "keyinfo", "routerinfo", "leaseset")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (given the arguments) only the command they name: a running router
    then does not import the other commands' modules and what they pull in."""
    parser = argparse.ArgumentParser(prog="pyi2p", description="An I2P node in Python.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    command = next((arg for arg in argv if not arg.startswith("-")), None) if argv is not None else None
    wanted = ("tools",) if command in TOOLS else (command,) if command in MODULES else MODULES
    for name in wanted:
        module = importlib.import_module(f"{__package__}.{name}")
        (module.add_parsers if name == "tools" else module.add_parser)(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
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
