"""POP3 (RFC 1939, CAPA from RFC 2449) as a sans-I/O core, and the asyncio driver that runs it over any stream.

    session = Pop3Session(login, domain="x.b32.i2p")
    send(session.greeting())
    for line in lines: send(session.receive_line(line)); if session.closed: break

`login(user, password)` returns the user's Maildrop (a snapshot of the messages, as RFC 1939 wants for
the session) or None. Deletions happen only at QUIT (the UPDATE state), so a dropped connection deletes
nothing.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Callable, Protocol

from .smtpclient import dot_stuff, message_lines

log = logging.getLogger(__name__)

MAX_LINE = 255                  # RFC 2449 section 4: a command line is at most 255 octets
MAX_ERRORS = 10                 # unknown or bad commands before we hang up
MAX_AUTH_FAILURES = 3
IDLE_TIMEOUT = 600.0            # RFC 1939 section 3: the autologout timer is at least 10 minutes
CAPABILITIES = ("USER", "UIDL", "TOP", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE", "EXPIRE NEVER",
                "IMPLEMENTATION pyi2p")


class Maildrop(Protocol):
    """One user's messages as the session sees them."""

    def messages(self) -> list[tuple[str, int]]:
        """(unique id, size in octets), oldest first, as of login."""
        ...

    def read(self, unique_id: str) -> bytes: ...

    def delete(self, unique_ids: list[str]) -> None: ...

    def release(self) -> None:
        """The session is over (lock released)."""
        ...


Login = Callable[[str, str], "Maildrop | None | str"]
"""Returns the user's Maildrop, None for a wrong user or password, or a str: why the drop cannot be had."""


@dataclass
class Pop3Session:
    login: Login
    domain: str = "localhost"
    user: str | None = None
    drop: Maildrop | None = None
    closed: bool = False
    errors: int = 0
    auth_failures: int = 0
    _messages: list[tuple[str, int]] = field(default_factory=list)
    _deleted: set[int] = field(default_factory=set)

    def greeting(self) -> bytes:
        return f"+OK POP3 server {self.domain} ready\r\n".encode()

    def receive_line(self, line: bytes) -> bytes:
        """One command line (with or without CRLF) in, the whole response out."""
        if self.closed:
            return b""
        if len(line) > MAX_LINE + 2:
            return self._error("line too long")
        try:
            text = line.decode("ascii").rstrip("\r\n")
        except UnicodeDecodeError:
            return self._error("commands are ASCII")
        verb, _, argument = text.partition(" ")
        verb = verb.upper()
        handler = getattr(self, f"_cmd_{verb.lower()}", None) if verb.isalpha() else None
        if handler is None:
            return self._error(f"unknown command {verb[:8]!r}" if verb else "empty command")
        return handler(argument)

    def connection_lost(self) -> None:
        """Dropped without QUIT: nothing is deleted, the lock goes."""
        self._finish(commit=False)

    def _finish(self, commit: bool) -> None:
        self.closed = True
        if self.drop is not None:
            drop, self.drop = self.drop, None
            try:
                if commit and self._deleted:
                    drop.delete([self._messages[index][0] for index in sorted(self._deleted)])
            finally:
                drop.release()

    def _error(self, text: str) -> bytes:
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            self._finish(commit=False)
            return f"-ERR {text}; too many errors, goodbye\r\n".encode()
        return f"-ERR {text}\r\n".encode()

    # AUTHORIZATION state (RFC 1939 section 4)
    def _cmd_capa(self, argument: str) -> bytes:
        return _multiline(b"+OK capability list follows", [c.encode() for c in CAPABILITIES])

    def _cmd_user(self, argument: str) -> bytes:
        if self.drop is not None:
            return self._error("already logged in")
        if not argument.strip():
            return self._error("USER needs a name")
        self.user = argument.strip()
        return b"+OK send PASS\r\n"

    def _cmd_pass(self, argument: str) -> bytes:
        if self.drop is not None:
            return self._error("already logged in")
        if self.user is None:
            return self._error("USER first")
        user, self.user = self.user, None
        found = self.login(user, argument)
        if isinstance(found, str):
            return self._error(f"[IN-USE] {found}")
        if found is None:
            self.auth_failures += 1
            if self.auth_failures >= MAX_AUTH_FAILURES:
                self._finish(commit=False)
                return b"-ERR [AUTH] wrong user or password; goodbye\r\n"
            return b"-ERR [AUTH] wrong user or password\r\n"
        self.drop = found
        self._messages = found.messages()
        self._deleted = set()
        return f"+OK {user} has {len(self._messages)} messages\r\n".encode()

    def _cmd_quit(self, argument: str) -> bytes:
        had_drop = self.drop is not None
        try:
            self._finish(commit=True)
        except Exception as exc:       # the store failed: RFC 1939 section 6 says -ERR, and nothing is lost
            log.warning("POP3 QUIT could not delete: %s", exc)
            return b"-ERR some deleted messages not removed\r\n"
        return b"+OK bye (messages deleted)\r\n" if had_drop else b"+OK bye\r\n"

    def _cmd_noop(self, argument: str) -> bytes:
        return b"+OK\r\n" if self.drop is not None else self._error("log in first")

    # TRANSACTION state (RFC 1939 section 5)
    def _message(self, argument: str) -> tuple[int, str, int] | bytes:
        if self.drop is None:
            return self._error("log in first")
        word = argument.strip().split(" ")[0]
        if not word.isdigit() or len(word) > 9:
            return self._error("a message number is needed")
        number = int(word)
        if not 1 <= number <= len(self._messages) or number - 1 in self._deleted:
            return self._error(f"no such message {number}")
        unique_id, size = self._messages[number - 1]
        return number, unique_id, size

    def _live(self) -> list[tuple[int, str, int]]:
        return [(index + 1, uid, size) for index, (uid, size) in enumerate(self._messages)
                if index not in self._deleted]

    def _cmd_stat(self, argument: str) -> bytes:
        if self.drop is None:
            return self._error("log in first")
        live = self._live()
        return f"+OK {len(live)} {sum(size for _, _, size in live)}\r\n".encode()

    def _cmd_list(self, argument: str) -> bytes:
        if argument.strip():
            found = self._message(argument)
            return found if isinstance(found, bytes) else f"+OK {found[0]} {found[2]}\r\n".encode()
        if self.drop is None:
            return self._error("log in first")
        live = self._live()
        return _multiline(f"+OK {len(live)} messages".encode(), [b"%d %d" % (n, size) for n, _, size in live])

    def _cmd_uidl(self, argument: str) -> bytes:
        if argument.strip():
            found = self._message(argument)
            return found if isinstance(found, bytes) else f"+OK {found[0]} {_uidl(found[1])}\r\n".encode()
        if self.drop is None:
            return self._error("log in first")
        return _multiline(b"+OK", [f"{n} {_uidl(uid)}".encode() for n, uid, _ in self._live()])

    def _read(self, unique_id: str) -> bytes | None:
        assert self.drop is not None
        try:
            return self.drop.read(unique_id)
        except Exception as exc:      # removed from disk under us
            log.info("POP3 read failed: %s", exc)
            return None

    def _cmd_retr(self, argument: str) -> bytes:
        found = self._message(argument)
        if isinstance(found, bytes):
            return found
        data = self._read(found[1])
        if data is None:
            return self._error(f"message {found[0]} is gone")
        return _multiline(f"+OK {found[2]} octets".encode(), message_lines(data))

    def _cmd_top(self, argument: str) -> bytes:
        words = argument.split()
        if len(words) != 2 or not words[1].isdigit():
            return self._error("TOP needs a message number and a line count")
        found = self._message(words[0])
        if isinstance(found, bytes):
            return found
        data = self._read(found[1])
        if data is None:
            return self._error(f"message {found[0]} is gone")
        lines = message_lines(data)
        try:
            blank = lines.index(b"")
        except ValueError:
            blank = len(lines)
        return _multiline(b"+OK", lines[:blank + 1 + int(words[1])])

    def _cmd_dele(self, argument: str) -> bytes:
        found = self._message(argument)
        if isinstance(found, bytes):
            return found
        self._deleted.add(found[0] - 1)
        return f"+OK message {found[0]} deleted\r\n".encode()

    def _cmd_rset(self, argument: str) -> bytes:
        if self.drop is None:
            return self._error("log in first")
        self._deleted.clear()
        return f"+OK {len(self._messages)} messages\r\n".encode()


def _uidl(unique_id: str) -> str:
    # RFC 1939 section 7: 1-70 characters in 0x21-0x7E; Maildir names are, but keep it so whatever they hold
    return "".join(c if "\x21" <= c <= "\x7e" else "_" for c in unique_id)[:70]


def _multiline(first: bytes, lines: list[bytes]) -> bytes:
    return first + b"\r\n" + dot_stuff(lines)


async def serve_pop3(reader, writer, login: Login, domain: str, idle_timeout: float = IDLE_TIMEOUT) -> None:
    """Run one POP3 session over a stream pair (TCP or I2P) until QUIT, a drop or the idle timeout."""
    session = Pop3Session(login, domain)
    try:
        writer.write(session.greeting())
        await writer.drain()
        while not session.closed:
            try:
                line = await asyncio.wait_for(reader.readuntil(b"\n"), idle_timeout)
            except asyncio.LimitOverrunError:
                writer.write(b"-ERR line too long; goodbye\r\n")
                break
            except (asyncio.IncompleteReadError, asyncio.TimeoutError):
                break
            writer.write(session.receive_line(line))
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        session.connection_lost()
        try:
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        writer.close()
