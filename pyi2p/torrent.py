"""`pyi2p torrent create|add|list|pause|resume|remove|peers`: make torrents, and drive a running node's
torrents over I2PControl (the pyi2p.Torrent.* methods), with the password in DATADIR/control.json."""
from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from core.control.client import ControlClient, ControlClientError, ControlRpcError
from core.control.config import ControlConfigError, read_control_config
from core.fsutil import atomic_write

DEFAULT_DATADIR = "~/.pyi2p"
BAR = 24
WAIT_POLL_S = 1.0


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("torrent", help="BitTorrent over I2P: create torrents, manage a node's torrents",
                                   description="Create .torrent files, and add, list, pause, resume and remove "
                                               "the torrents of a running node (over I2PControl).")
    verbs = parser.add_subparsers(dest="verb", required=True)

    create = verbs.add_parser("create", help="make a .torrent of a file or folder")
    create.add_argument("path", help="file or folder to share")
    create.add_argument("-o", "--output", required=True, help="the .torrent file to write")
    create.add_argument("--tracker", help="announce URL, e.g. http://<b32>.b32.i2p/announce")
    create.add_argument("--comment")
    create.add_argument("--piece-size", type=int, help="piece size in KiB (default: chosen by total size)")
    create.add_argument("--private", action="store_true", help="set the private flag")
    create.set_defaults(func=run_create)

    def node_verb(name: str, help_text: str, func) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text)
        sub.add_argument("--datadir", default=DEFAULT_DATADIR, help="node data folder (default ~/.pyi2p)")
        sub.set_defaults(func=func)
        return sub

    add = node_verb("add", "add a .torrent file or magnet link to the running node", run_add)
    add.add_argument("source", help="FILE.torrent or magnet:?xt=urn:btih:...")
    add.add_argument("--dir", help="download folder (default: the node's [torrent] download_dir)")
    add.add_argument("--paused", action="store_true", help="add without starting")
    add.add_argument("--wait", action="store_true", help="show a progress bar until the download completes")
    add.add_argument("--up-limit", type=int, help="this torrent's upload limit, KiB/s (0 = none)")
    add.add_argument("--down-limit", type=int, help="this torrent's download limit, KiB/s (0 = none)")
    node_verb("list", "the node's torrents with progress, rates, ETA and peers", run_list)
    for name, text in (("pause", "stop a torrent's transfers"), ("resume", "start a paused torrent again")):
        node_verb(name, text, run_simple).add_argument("torrent", help="info-hash (or a prefix of 4+) or name")
    remove = node_verb("remove", "remove a torrent (its files stay unless --delete-files)", run_simple)
    remove.add_argument("torrent", help="info-hash (or a prefix of 4+) or name")
    remove.add_argument("--delete-files", action="store_true", help="delete the downloaded files too")
    node_verb("peers", "a torrent's connected peers", run_peers).add_argument("torrent")
    return parser


def run_create(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from apps.torrent.metainfo import create_torrent, magnet_of
    out = out or sys.stdout
    meta = create_torrent(Path(args.path).expanduser(), tracker=args.tracker, comment=args.comment,
                          piece_length=args.piece_size * 1024 if args.piece_size else None,
                          private=args.private, now=time.time)
    atomic_write(Path(args.output).expanduser(), meta.to_bytes())
    info = meta.info
    out.write(f"{args.output}: {info.name}, {len(info.files)} file(s), {human(info.total_length)}, "
              f"{info.piece_count} pieces of {human(info.piece_length)}\n"
              f"info-hash {meta.info_hash.hex()}\n{magnet_of(meta).to_str()}\n")
    return 0


def _client(args: argparse.Namespace) -> ControlClient:
    try:
        return ControlClient.from_config(read_control_config(Path(args.datadir).expanduser()))
    except ControlConfigError as exc:
        raise ControlClientError(f"no running node found: {exc} (start one with `pyi2p run`)") from None


def _call(args: argparse.Namespace, verb: str, params: dict[str, Any], err: TextIO) -> Any:
    try:
        return _client(args).call(f"pyi2p.Torrent.{verb}", params)
    except ControlRpcError as exc:
        print(f"pyi2p torrent {args.verb}: the node refused: {exc}", file=err)
    except ControlClientError as exc:
        print(f"pyi2p torrent {args.verb}: {exc}", file=err)
    return None


def run_add(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    if args.source.startswith("magnet:"):
        params: dict[str, Any] = {"magnet": args.source}
    else:
        data = Path(args.source).expanduser().read_bytes()
        params = {"torrent": base64.b64encode(data).decode()}
    if args.dir:
        params["download_dir"] = str(Path(args.dir).expanduser().resolve())
    if args.paused:
        params["paused"] = True
    if args.up_limit is not None:
        params["upload_limit"] = args.up_limit
    if args.down_limit is not None:
        params["download_limit"] = args.down_limit
    added = _call(args, "Add", params, err)
    if added is None:
        return 1
    out.write(format_torrent(added) + "\n")
    if not args.wait:
        return 0
    info_hash = added["info_hash"]
    while True:
        listed = _call(args, "List", {}, err)
        if listed is None:
            return 1
        mine = [t for t in listed.get("torrents", []) if t.get("info_hash") == info_hash]
        if not mine:
            print("\npyi2p torrent add: the torrent was removed", file=err)
            return 1
        out.write("\r" + format_torrent(mine[0]))
        out.flush()
        if mine[0]["state"] in ("seeding", "finished", "error"):
            out.write("\n")
            return 0 if mine[0]["state"] != "error" else 1
        time.sleep(WAIT_POLL_S)


def run_list(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    listed = _call(args, "List", {}, err)
    if listed is None:
        return 1
    out.write(format_list(listed.get("torrents", [])))
    return 0


def run_simple(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    params: dict[str, Any] = {"torrent": args.torrent}
    if getattr(args, "delete_files", False):
        params["delete_files"] = True
    result = _call(args, args.verb.capitalize(), params, err)
    if result is None:
        return 1
    out.write(f"removed {result['removed']}\n" if "removed" in result else format_torrent(result) + "\n")
    return 0


def run_peers(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    result = _call(args, "Peers", {"torrent": args.torrent}, err)
    if result is None:
        return 1
    for peer in result.get("peers", []):
        flags = ("out " if peer["outbound"] else "in  ") + ("C" if peer["choked"] else "-") + \
            ("c" if peer["choking"] else "-") + ("I" if peer["interested"] else "-") + \
            ("i" if peer["peer_interested"] else "-")
        out.write(f"{peer['peer'][:16]}... {flags} {peer['progress'] * 100:5.1f}%  "
                  f"down {human(peer['down_rate'])}/s up {human(peer['up_rate'])}/s  {peer['client']}\n")
    if not result.get("peers"):
        out.write("no peers connected\n")
    return 0


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def eta_text(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def format_torrent(t: dict[str, Any]) -> str:
    progress = float(t.get("progress", 0.0))
    filled = int(progress * BAR)
    bar = "#" * filled + "-" * (BAR - filled)
    line = (f"{t['info_hash'][:8]} [{bar}] {progress * 100:5.1f}% {t['state']:<11} {human(t.get('size', 0)):>10} "
            f"down {human(t.get('down_rate', 0))}/s up {human(t.get('up_rate', 0))}/s "
            f"ETA {eta_text(t.get('eta'))} peers {t.get('peers', 0)}  {t.get('name', '')}")
    if t.get("error"):
        line += f"  ({t['error']})"
    return line


def format_list(torrents: list[dict[str, Any]]) -> str:
    if not torrents:
        return "no torrents\n"
    return "".join(format_torrent(t) + "\n" for t in torrents)

