"""The node's mail on disk: accounts (scrypt-hashed passwords) and one Maildir per account.

    DATADIR/mail/accounts.json       {"alice": {"salt": hex, "scrypt": hex, "quota": bytes}}
    DATADIR/mail/boxes/<user>/       a Maildir (tmp/ new/ cur/): written to tmp/, fsynced, renamed into new/
                                     (read and removed through mailbox.Maildir)

Messages are kept as received from SMTP (CRLF line ends), so a POP3 size is the file's size.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import mailbox
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from core.fsutil import atomic_write, atomic_write_text

ACCOUNTS_FILE = "accounts.json"
BOXES_DIR = "boxes"
USER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}    # ~16 MB, ~50 ms: slow enough for a stolen file
MAX_PASSWORD = 1024
DEFAULT_QUOTA = 100 * 1024 * 1024


class MailStoreError(Exception):
    """A bad user name, a full mailbox, an unknown account: the message says which."""


def check_user_name(name: str) -> str:
    name = name.strip().lower()
    if not USER_NAME.fullmatch(name):
        raise MailStoreError(f"{name!r}: a user name is 1-32 of a-z 0-9 . _ - (starting with a letter or digit)")
    return name


def hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8")[:MAX_PASSWORD], salt=salt, **SCRYPT)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    key: str            # the Maildir name: unique and stable, so it is the POP3 UIDL too
    size: int


class Accounts:
    """Who may log in, with what password, and how much they may keep."""

    def __init__(self, folder: Path, rng=os.urandom):
        self.path = folder / ACCOUNTS_FILE
        self._rng = rng
        self._users: dict[str, dict] = {}
        self.reload()

    def reload(self) -> None:
        if not self.path.exists():
            self._users = {}
            return
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise MailStoreError(f"{self.path}: not a readable accounts file ({exc})") from None
        if not isinstance(data, dict):
            raise MailStoreError(f"{self.path}: not a JSON object")
        self._users = {name: entry for name, entry in data.items() if isinstance(entry, dict)}

    def _save(self) -> None:
        atomic_write_text(self.path, json.dumps(self._users, indent=1, sort_keys=True), 0o600)

    def names(self) -> list[str]:
        return sorted(self._users)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._users

    def add(self, name: str, password: str, quota: int = DEFAULT_QUOTA) -> str:
        name = check_user_name(name)
        if name in self._users:
            raise MailStoreError(f"{name}: the account exists (use passwd)")
        if not password:
            raise MailStoreError("an empty password is not allowed")
        self._users[name] = {"quota": int(quota)}
        self.set_password(name, password)
        return name

    def set_password(self, name: str, password: str) -> None:
        name = name.lower()
        if name not in self._users:
            raise MailStoreError(f"{name}: no such account")
        if not password:
            raise MailStoreError("an empty password is not allowed")
        salt = self._rng(16)
        self._users[name].update(salt=salt.hex(), scrypt=hash_password(password, salt).hex())
        self._save()

    def remove(self, name: str) -> None:
        if self._users.pop(name.lower(), None) is None:
            raise MailStoreError(f"{name}: no such account")
        self._save()

    def check(self, name: str, password: str) -> bool:
        entry = self._users.get(name.strip().lower())
        if entry is None or "salt" not in entry:
            hash_password(password, b"\0" * 16)    # the same work either way: no user-name oracle by timing
            return False
        try:
            expected = bytes.fromhex(entry["scrypt"])
            salt = bytes.fromhex(entry["salt"])
        except (KeyError, ValueError, TypeError):
            return False
        return hmac.compare_digest(hash_password(password, salt), expected)

    def quota(self, name: str) -> int:
        return int(self._users.get(name.lower(), {}).get("quota", DEFAULT_QUOTA))


class Mailboxes:
    """One Maildir per account; adding fsyncs the file and the folder, so an accepted message survives kill -9."""

    def __init__(self, folder: Path):
        self.folder = folder / BOXES_DIR
        self._boxes: dict[str, mailbox.Maildir] = {}

    def box(self, user: str) -> mailbox.Maildir:
        user = check_user_name(user)
        found = self._boxes.get(user)
        if found is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            found = self._boxes[user] = mailbox.Maildir(self.folder / user, factory=None, create=True)
        return found

    def usage(self, user: str) -> int:
        return sum(message.size for message in self.list(user))

    def deliver(self, user: str, data: bytes) -> str:
        """Quotas are checked before a message is accepted (at RCPT), not here."""
        box = Path(self.box(user)._path)
        # Maildir naming (time.unique.host) with a fixed host part: mailbox.Maildir would put the machine's
        # name in every file name, and the name is the POP3 UIDL that a mail host shows its users
        key = f"{int(time.time())}.{os.urandom(10).hex()}.pyi2p"
        tmp = box / "tmp" / key
        atomic_write(tmp, data, 0o600)
        os.rename(tmp, box / "new" / key)
        _fsync_dir(box / "new")
        return key

    def list(self, user: str) -> list[StoredMessage]:
        """Oldest first, by delivery time then name (Maildir names start with the time)."""
        box = self.box(user)
        found = []
        for key in box.iterkeys():
            try:
                found.append((os.stat(os.path.join(box._path, box._lookup(key))), key))
            except (OSError, KeyError):
                continue          # removed by another session meanwhile
        found.sort(key=lambda item: (item[0].st_mtime, item[1]))
        return [StoredMessage(key, stat.st_size) for stat, key in found]

    def read(self, user: str, key: str) -> bytes:
        try:
            return self.box(user).get_bytes(key)
        except (KeyError, OSError):
            raise MailStoreError(f"{user}: no message {key}") from None

    def delete(self, user: str, keys: Iterator[str]) -> None:
        box = self.box(user)
        for key in keys:
            try:
                box.remove(key)
            except (KeyError, FileNotFoundError):
                pass
        _fsync_dir(Path(box._path) / "cur")
        _fsync_dir(Path(box._path) / "new")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
