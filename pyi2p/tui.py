"""`pyi2p tui`: the terminal console for a running node (over I2PControl)."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("tui", help="the terminal console: watch and manage a running node",
                              description="The terminal console of a running node, over I2PControl.")
    p.add_argument("--datadir", help="the node's data folder, to find its control port and password "
                                     "(default ~/.pyi2p)")
    p.add_argument("--url", help="the control API as http://HOST:PORT instead (with --password)")
    p.add_argument("--password", help="the control API password (default: from DATADIR/control.json)")
    p.add_argument("--refresh", type=float, default=1.0, help="seconds between refreshes (default 1)")
    p.set_defaults(func=cmd_tui)


def cmd_tui(args: argparse.Namespace) -> int:
    from tui.app import ConsoleApp          # textual loads only for the console
    from tui.client import ConsoleClient
    client = ConsoleClient(datadir=args.datadir, url=args.url, password=args.password)
    ConsoleApp(client, refresh_s=max(0.2, args.refresh)).run()
    return 0
