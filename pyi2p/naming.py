"""`pyi2p naming ...`: the address book from the command line, with the node running or stopped.

The books are files shared under a lock (apps/naming/book.py): a name added here resolves in a
running node's proxy at its next lookup. `update` asks the running node (I2PControl) to fetch the
subscriptions, or fetches one through an HTTP proxy (`--proxy 127.0.0.1:4444`).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from apps.naming.apply import apply_feed
from apps.naming.book import BOOKS, AddressBook, Entry
from apps.naming.feed import format_line, iter_lines, sign_line, verify_line
from apps.naming.http import HttpError, get_through_proxy
from apps.naming.names import NamingError, normalize_name
from apps.naming.service import FOLDER
from apps.naming.subscriptions import STATE_FILE, read_list, write_list
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys

DEFAULT_DATADIR = "~/.pyi2p"
BOOK_BY_FILE = {"privatehosts.txt": "private", "userhosts.txt": "local", "hosts.txt": "router",
                "addresses.csv": "router"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("naming", help="the address book: lookup, add, import, subscriptions, sign",
                                   description="Manage the address book (works with the node running or stopped).")
    parser.add_argument("--datadir", default=DEFAULT_DATADIR, help="node data folder (default ~/.pyi2p)")
    common = argparse.ArgumentParser(add_help=False)     # --datadir after the verb too
    common.add_argument("--datadir", default=argparse.SUPPRESS, help="node data folder (default ~/.pyi2p)")
    sub = parser.add_subparsers(dest="naming_command", required=True)

    def verb(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)
    p = verb("lookup", help="show a name's destination and where it comes from")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lookup)
    p = verb("add", help="add NAME for DEST (a Base64 destination or a b32 address; `--` before a DEST "
                         "that starts with '-')")
    p.add_argument("name")
    p.add_argument("dest")
    p.add_argument("--book", choices=BOOKS, default="local")
    p.set_defaults(func=cmd_add)
    p = verb("remove", help="remove a name from a book")
    p.add_argument("name")
    p.add_argument("--book", choices=BOOKS, default="local")
    p.set_defaults(func=cmd_remove)
    p = verb("list", help="list names")
    p.add_argument("--book", choices=BOOKS)
    p.add_argument("--search", default="", help="only names containing this text")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = verb("import", help="import a Java hosts.txt/userhosts.txt/privatehosts.txt or i2pd addresses.csv")
    p.add_argument("file")
    p.add_argument("--book", choices=BOOKS, help="default: by the file's name (hosts.txt: router; else local)")
    p.add_argument("--replace", action="store_true", help="replace names the book already has")
    p.set_defaults(func=cmd_import)
    p = verb("export", help="print a book (or all, the winning entry per name) in hosts.txt format")
    p.add_argument("--book", choices=BOOKS)
    p.set_defaults(func=cmd_export)
    p = verb("subscriptions", help="list subscriptions and their status; add or remove one")
    p.add_argument("action", nargs="?", choices=("list", "add", "remove"), default="list")
    p.add_argument("url", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_subscriptions)
    p = verb("update", help="fetch subscriptions now (through the running node, or --proxy)")
    p.add_argument("url", nargs="?", help="one subscription (default: all)")
    p.add_argument("--proxy", help="fetch through this HTTP proxy (HOST:PORT) instead of the running node")
    p.add_argument("--force", action="store_true", help="fetch the whole feed (no conditional GET)")
    p.set_defaults(func=cmd_update)
    p = verb("sign", help="print a signed registration line for a site's key (subscription.rst)")
    p.add_argument("name")
    p.add_argument("keyfile", help="the site's private key file (i2pd/Java/pyi2p PrivateKeys format)")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--change", metavar="OLDKEYFILE", help="changedest: move NAME from OLDKEYFILE's destination")
    form.add_argument("--adddest", metavar="OLDKEYFILE", help="adddest: a second destination for NAME")
    form.add_argument("--alias", metavar="OLDNAME", help="addname: NAME as an alias of OLDNAME (same key)")
    form.add_argument("--rename", metavar="OLDNAME", help="changename: OLDNAME becomes NAME (same key)")
    form.add_argument("--subdomain", metavar="PARENTKEYFILE", help="addsubdomain: signed by the parent's key too")
    form.add_argument("--remove", action="store_true", help="remove NAME")
    form.add_argument("--removeall", action="store_true", help="remove every name of this destination")
    p.set_defaults(func=cmd_sign)
    return parser


def _book(args) -> AddressBook:
    return AddressBook(Path(args.datadir).expanduser() / FOLDER)


def _describe(entry: Entry) -> str:
    where = f"{entry.book} book" + (f", from {entry.source}" if entry.source else "")
    if entry.is_alias:
        return f"{entry.name}  {entry.dest}  (b32 only; {where})"
    return f"{entry.name}  {entry.b32}  ({where})\n{entry.dest}"


def cmd_lookup(args) -> int:
    entry = _book(args).get(args.name)
    if entry is None:
        print(f"pyi2p naming: {args.name} is not in the address book", file=sys.stderr)
        return 1
    print(json.dumps(entry.to_json(), indent=2) if args.json else _describe(entry))
    return 0


def cmd_add(args) -> int:
    book = _book(args)
    book.add(args.name, args.dest, book=args.book, source="cli")
    print(_describe(book.get(normalize_name(args.name))))
    return 0


def cmd_remove(args) -> int:
    if not _book(args).remove(args.name, book=args.book):
        print(f"pyi2p naming: {args.name} is not in the {args.book} book", file=sys.stderr)
        return 1
    return 0


def cmd_list(args) -> int:
    entries = sorted((e for e in _book(args).names(args.book) if args.search.lower() in e.name), key=lambda e: e.name)
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=1))
    else:
        for entry in entries:
            print(f"{entry.name:<40} {entry.b32 or '?'}  {entry.book}")
    return 0


def read_import(path: Path) -> list[tuple[str, str, dict]]:
    """(name, destination or b32, properties) of a Java hosts.txt-format file or an i2pd addresses.csv."""
    text = path.read_text("utf-8", errors="replace")
    found: list[tuple[str, str, dict]] = []
    bad = 0
    if path.suffix == ".csv":
        # i2pd: name,<identity hash in Base32>; the full destination, where i2pd kept it, in
        # b<first char>/<hash>.b32 beside it (its HashedStorage "addressbook", "b", "", "b32")
        for line in text.splitlines():
            name, comma, ident = line.strip().partition(",")
            ident = ident.strip()
            if not comma or not ident:
                bad += bool(line.strip())
                continue
            dest = ident.lower() + ".b32.i2p" if len(ident) == 52 else ident
            full = path.parent / f"b{ident[0]}" / f"{ident}.b32"
            if full.is_file():
                try:
                    dest = Destination.parse(full.read_bytes()).b64
                except Exception:   # a damaged file: keep the b32
                    pass
            found.append((name, dest, {}))
    else:
        for _, line, error in iter_lines(text):
            if error is not None:
                bad += 1
            elif line is not None and line.name is not None and line.action == "add":
                found.append((line.name, line.dest, dict(line.properties)))
    if bad:
        print(f"pyi2p naming: {path}: {bad} lines skipped (not name=destination)", file=sys.stderr)
    return found


def cmd_import(args) -> int:
    path = Path(args.file)
    book_name = args.book or BOOK_BY_FILE.get(path.name, "local")
    book = _book(args)
    rows = read_import(path)
    added = skipped = 0
    with book.editing(book_name) as entries:
        for name, dest, props in rows:
            try:
                entry = book.make_entry(name, dest, book=book_name, source=f"import:{path.name}", properties=props)
            except NamingError:
                skipped += 1
                continue
            if entry.name in entries and not args.replace:
                skipped += 1
                continue
            entries[entry.name] = entry
            added += 1
    print(f"{added} names imported into the {book_name} book, {skipped} skipped (invalid or already there)")
    return 0


def cmd_export(args) -> int:
    out = sys.stdout
    for entry in _book(args).names(args.book):
        if not entry.is_alias:
            out.write(format_line(entry.name, entry.dest, entry.properties) + "\n")
    return 0


def cmd_subscriptions(args) -> int:
    folder = Path(args.datadir).expanduser() / FOLDER
    urls = read_list(folder)
    if args.action in ("add", "remove"):
        if not args.url:
            print(f"pyi2p naming: subscriptions {args.action} needs a URL", file=sys.stderr)
            return 2
        if args.action == "add" and args.url not in urls:
            urls.append(args.url)
        elif args.action == "remove":
            if args.url not in urls:
                print(f"pyi2p naming: {args.url} is not a subscription", file=sys.stderr)
                return 1
            urls.remove(args.url)
        write_list(folder, urls)
        return 0
    try:
        states = {s["url"]: s for s in json.loads((folder / STATE_FILE).read_text("utf-8"))}
    except (OSError, ValueError, KeyError, TypeError):
        states = {}
    if args.json:
        print(json.dumps([states.get(url, {"url": url}) for url in urls], indent=1))
        return 0
    for url in urls:
        state = states.get(url)
        print(url)
        if state:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(state.get("last_fetch", 0)))
            print(f"    last fetch {when} UTC: {state.get('result', '')}")
        else:
            print("    not fetched yet")
    return 0


def cmd_update(args) -> int:
    if args.proxy:
        return _update_through_proxy(args)
    from core.control.client import ControlClient, ControlClientError
    from core.control.config import ControlConfigError, read_control_config
    try:
        client = ControlClient.from_config(read_control_config(Path(args.datadir).expanduser()), timeout_s=600)
        params = {"force": args.force, **({"url": args.url} if args.url else {})}
        results = client.call("pyi2p.AddressBook.Update", params)
    except (ControlConfigError, ControlClientError) as exc:
        print(f"pyi2p naming update: no running node to fetch with ({exc}); "
              f"use --proxy HOST:PORT to fetch through an HTTP proxy", file=sys.stderr)
        return 1
    for state in results:
        print(f"{state['url']}: {state['result']}")
    return 0


def _update_through_proxy(args) -> int:
    host, _, port = args.proxy.rpartition(":")
    folder = Path(args.datadir).expanduser() / FOLDER
    urls = [args.url] if args.url else read_list(folder)
    book = AddressBook(folder)
    failed = 0
    for url in urls:
        try:
            body = asyncio.run(get_through_proxy(host or "127.0.0.1", int(port), url))
        except (OSError, HttpError, TimeoutError, ValueError) as exc:
            print(f"{url}: failed: {exc}", file=sys.stderr)
            failed += 1
            continue
        result = apply_feed(book, body.decode("utf-8", errors="replace"), source=url)
        print(f"{url}: {result.added} added, {result.changed} changed, {result.removed} removed, "
              f"{sum(result.skipped.values())} skipped")
    return 1 if failed else 0


def cmd_sign(args) -> int:
    keys = PrivateKeys.load(args.keyfile)
    date = int(time.time())
    name = args.name
    if args.change or args.adddest:
        line = sign_line(name, keys, action="changedest" if args.change else "adddest",
                         old_keys=PrivateKeys.load(args.change or args.adddest), date=date)
    elif args.alias or args.rename:
        line = sign_line(name, keys, action="addname" if args.alias else "changename", date=date,
                         extra={"oldname": normalize_name(args.alias or args.rename)})
    elif args.subdomain:
        parent = normalize_name(name).split(".", 1)[1]
        line = sign_line(name, keys, action="addsubdomain", old_keys=PrivateKeys.load(args.subdomain), date=date,
                         extra={"oldname": parent})
    elif args.remove or args.removeall:
        line = sign_line(name, keys, action="remove" if args.remove else "removeall", date=date)
    else:
        line = sign_line(name, keys, date=date)
    if not verify_line(line):       # e.g. a key file with offline (transient) keys: its signature would not verify
        print("pyi2p naming sign: the line does not verify with the destination's own key "
              "(offline-signed keys cannot sign registrations)", file=sys.stderr)
        return 1
    print(line.to_text())
    return 0

