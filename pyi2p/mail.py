"""`pyi2p mail adduser|passwd|address|queue`: the mail accounts and the outgoing queue of a data dir.

Accounts are read by the running node at each login, so adding one needs no restart. `queue --flush`
asks the running node (over I2PControl, pyi2p.Mail.Queue) to try every waiting message now.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from apps.mail.queue import QUEUE_DIR, QueueEntry
from apps.mail.store import DEFAULT_QUOTA, Accounts, MailStoreError
from apps.service import ServiceError
from core.control.client import ControlClient, ControlClientError, ControlRpcError
from core.control.config import ControlConfigError, read_control_config

DEFAULT_DATADIR = "~/.pyi2p"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("mail", help="mail accounts, this node's mail address, the outgoing queue",
                                   description="Mail accounts, this node's mail address and the outgoing queue.")
    parser.add_argument("--datadir", default=DEFAULT_DATADIR, help="data folder (default ~/.pyi2p)")
    commands = parser.add_subparsers(dest="mail_command", required=True)
    add = commands.add_parser("adduser", help="create an account (asks for its password)")
    add.add_argument("user")
    add.add_argument("--quota-mb", type=int, default=DEFAULT_QUOTA // (1024 * 1024), help="mailbox size limit")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    passwd = commands.add_parser("passwd", help="set an account's password")
    passwd.add_argument("user")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    commands.add_parser("address", help="print this node's mail domain and its accounts' addresses")
    queue = commands.add_parser("queue", help="list the outgoing mail still waiting")
    queue.add_argument("--flush", action="store_true", help="ask the running node to try them all now")
    queue.add_argument("--json", action="store_true", help="print the entries as JSON")
    parser.set_defaults(func=run_mail)
    return parser


def _password(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.password_stdin:
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.user}: ")
    if first != getpass.getpass("again: "):
        raise MailStoreError("the passwords differ")
    return first


def read_queue(folder: Path) -> list[QueueEntry]:
    """The waiting entries as on disk (read only: the node may be writing them)."""
    entries = []
    for path in sorted((folder / QUEUE_DIR).glob("*.json")):
        try:
            entries.append(QueueEntry.from_json(path.read_text("utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(entries, key=lambda entry: entry.created)


def run_mail(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None,
             stdin: TextIO | None = None) -> int:
    from apps.mail.service import MAIL_DIR, load_or_create_mail_keys   # aiosmtpd: only for this command
    out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
    folder = Path(args.datadir).expanduser() / MAIL_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        if args.mail_command == "queue":
            return _queue(args, folder, out, err)
        domain = load_or_create_mail_keys(folder).destination.b32_address
        accounts = Accounts(folder)
        if args.mail_command == "adduser":
            user = accounts.add(args.user, _password(args, stdin), args.quota_mb * 1024 * 1024)
            print(f"{user}@{domain}", file=out)
        elif args.mail_command == "passwd":
            if args.user.lower() not in accounts:
                raise MailStoreError(f"{args.user}: no such account")
            accounts.set_password(args.user, _password(args, stdin))
            print(f"password of {args.user.lower()} changed", file=out)
        else:
            print(domain, file=out)
            for user in accounts.names():
                print(f"{user}@{domain}", file=out)
    except (MailStoreError, ServiceError) as exc:
        print(f"pyi2p mail: {exc}", file=err)
        return 1
    return 0


def _queue(args: argparse.Namespace, folder: Path, out: TextIO, err: TextIO) -> int:
    if args.flush:
        try:
            client = ControlClient.from_config(read_control_config(folder.parent))
            client.call("pyi2p.Mail.Queue", {"flush": True})
        except (ControlConfigError, ControlClientError, ControlRpcError) as exc:
            print(f"pyi2p mail: the running node could not be asked to flush: {exc}", file=err)
            return 1
    entries = read_queue(folder)
    if args.json:
        json.dump([json.loads(entry.to_json()) for entry in entries], out, indent=2)
        out.write("\n")
        return 0
    if not entries:
        print("the outgoing queue is empty", file=out)
    for entry in entries:
        when = datetime.fromtimestamp(entry.next_try, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        print(f"{entry.id}  from {entry.sender or '<>'}  to {', '.join(entry.recipients)}\n"
              f"    {entry.attempts} tries, next {when}" + (f", last: {entry.last_error}" if entry.last_error
                                                             else ""), file=out)
    return 0
