"""The address book: three hosts.txt books with Java's precedence, private > local > router.

    book = AddressBook(datadir / "addressbook")
    book.lookup("example.i2p")              # Destination | None, from an in-memory index
    book.add("mysite.i2p", dest)            # NamingError (a ProtocolError) for a name that breaks the rules

The books are files in hosts.txt format (privatehosts.txt, userhosts.txt, hosts.txt), written
atomically under a file lock, so `pyi2p naming add` and a running node can share them: a lookup
stats the files (about a microsecond each) and reloads one that another process replaced.
b32 names are not resolved here (they need a LeaseSet lookup: the network port does that); an
entry may however be a b32 alias (`name=<52 chars>.b32.i2p`) for a site whose full destination
is not known yet: lookup() gives None for it, resolve_alias() its b32.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

from core.data.errors import ProtocolError
from core.data.identity import Destination
from core.fsutil import atomic_write_text

from .feed import LOCAL_PREFIX
from .names import B32_ALIAS, NamingError, normalize_name

log = logging.getLogger(__name__)

BOOKS = ("private", "local", "router")          # lookup order (naming.md "Naming Files")
BOOK_FILES = {"private": "privatehosts.txt", "local": "userhosts.txt", "router": "hosts.txt"}
LOCK_FILE = ".lock"
MAX_PARSED = 4096                                # parsed Destinations kept for repeated lookups
FULL_CHECK_INTERVAL = 1.0                        # seconds between stats of the book files themselves
COARSE_MTIME_NS = 100_000_000                    # a folder mtime younger than this may hide a second change
MAX_SHARED = 100_000                             # distinct property strings shared while loading
HEADER = "# pyi2p address book ({book}): name=destination[#!properties], one a line\n"


@dataclass(frozen=True, slots=True)
class Entry:
    """A name in one book: a Base64 destination (or a b32 alias) and its properties.

    Properties are the signed feed keys (subscription.rst) plus our own `@added` (seconds) and
    `@source` (a subscription URL, "cli", "import:<file>"...)."""

    name: str
    dest: str
    book: str = "local"
    properties: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_alias(self) -> bool:
        return self.dest.endswith(".b32.i2p")

    @property
    def destination(self) -> Destination | None:
        if self.is_alias:
            return None
        try:
            return Destination.from_b64(self.dest)
        except (ProtocolError, ValueError):
            return None

    @property
    def b32(self) -> str | None:
        if self.is_alias:
            return self.dest
        found = self.destination
        return found.b32_address if found is not None else None

    @property
    def source(self) -> str:
        return self.properties.get("@source", "")

    @property
    def added(self) -> int:
        try:
            return int(self.properties.get("@added", "0"))
        except ValueError:
            return 0

    def to_json(self) -> dict:
        return {"name": self.name, "book": self.book, "destination": None if self.is_alias else self.dest,
                "b32": self.b32, "source": self.source, "added": self.added,
                "properties": {k: v for k, v in self.properties.items() if not k.startswith(LOCAL_PREFIX)}}


def storage_line(entry: Entry) -> str:
    """The line as kept on disk: like format_line but with our `@` keys."""
    if not entry.properties:
        return f"{entry.name}={entry.dest}"
    props = "#".join(f"{k}={_clean(v)}" for k, v in sorted(entry.properties.items()))
    return f"{entry.name}={entry.dest}#!{props}"


def _clean(value: str) -> str:
    return value.replace("#", "%23").replace("\n", " ").replace("\r", " ")


def load_book_text(text: str, book: str) -> dict[str, Entry]:
    """A stored book; lines that do not parse are skipped (logged), the first of a name wins."""
    entries: dict[str, Entry] = {}
    shared: dict[str, str] = {}
    bad = 0
    for raw in text.split("\n"):
        raw = raw.rstrip("\r")
        if not raw or raw[0] == "#":
            continue
        name, eq, rest = raw.partition("=")
        if not eq:
            bad += 1
            continue
        props: Mapping[str, str] = {}
        hash_at = rest.find("#")
        if hash_at >= 0:
            if rest.startswith("#!", hash_at):
                try:        # our own files: a faster split than parse_properties (no duplicate check)
                    props = {}
                    for item in rest[hash_at + 2:].split("#"):
                        if item:
                            key, value = item.split("=", 1)
                            # one string for the keys and values thousands of entries share (@source...)
                            props[shared.setdefault(key, key)] = shared.setdefault(value, value) \
                                if len(shared) < MAX_SHARED else value
                except ValueError:
                    bad += 1
                    continue
            rest = rest[:hash_at]
        name = name.strip().lower()
        dest = rest.strip()
        if name in entries or not dest or not name.endswith(".i2p"):
            bad += name not in entries
            continue
        entries[name] = Entry(name, dest, book, props)
    if bad:
        log.warning("address book %s: %d lines skipped", book, bad)
    return entries


@dataclass(slots=True)
class _Book:
    path: Path
    entries: dict[str, Entry] = field(default_factory=dict)
    stamp: tuple[int, int, int] | None = None       # (inode, size, mtime_ns) of the file we hold


class AddressBook:
    """The three books, kept in memory and in DATADIR/addressbook/; safe to share with other processes."""

    def __init__(self, folder: str | os.PathLike, *, now: Callable[[], float] = time.time):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.now = now
        self._books = {book: _Book(self.folder / BOOK_FILES[book]) for book in BOOKS}
        self._parsed: dict[str, Destination] = {}
        self._folder_path = str(self.folder)
        self._folder_mtime = -1
        self._checked = 0.0
        for book in BOOKS:
            self._reload(book)

    # -- reading -----------------------------------------------------------------------------
    def lookup(self, name: str) -> Destination | None:
        """The destination for a host name (private, then local, then router book), or None."""
        entry = self.get(name)
        if entry is None or entry.is_alias:
            return None
        found = self._parsed.get(entry.dest)
        if found is None:
            found = entry.destination
            if found is None:
                log.warning("address book: %s has a destination that does not parse", entry.name)
                return None
            if len(self._parsed) >= MAX_PARSED:
                self._parsed.pop(next(iter(self._parsed)))
            self._parsed[entry.dest] = found
        return found

    def get(self, name: str) -> Entry | None:
        key = name.strip().lower()
        if key.endswith(".i2p.alt"):
            key = key[:-4]
        self.refresh()
        for book in BOOKS:
            entry = self._books[book].entries.get(key)
            if entry is not None:
                return entry
        return None

    def resolve_alias(self, name: str) -> str | None:
        """The b32 of a b32-only entry (its full destination still to be looked up), else None."""
        entry = self.get(name)
        return entry.dest if entry is not None and entry.is_alias else None

    def names(self, book: str | None = None) -> Iterator[Entry]:
        """Every entry of one book, or of all (a name shadowed by a higher book is listed once, the winner)."""
        self.refresh()
        if book is not None:
            yield from list(self._books[_check_book(book)].entries.values())
            return
        seen: set[str] = set()
        for each in BOOKS:
            for entry in list(self._books[each].entries.values()):
                if entry.name not in seen:
                    seen.add(entry.name)
                    yield entry

    def entries(self, book: str) -> Mapping[str, Entry]:
        """One book's index (read-only use)."""
        self.refresh()
        return self._books[_check_book(book)].entries

    def count(self, book: str | None = None) -> int:
        self.refresh()
        if book is not None:
            return len(self._books[_check_book(book)].entries)
        return sum(len(b.entries) for b in self._books.values())

    def stamps(self, books=BOOKS) -> tuple:
        """What identifies the books' current contents (changes whenever a file is replaced)."""
        self.refresh()
        return tuple(self._books[_check_book(b)].stamp for b in books)

    def refresh(self) -> None:
        """Reload a book file that another process replaced.

        A replace (atomic write) changes the folder's mtime, so one stat answers most lookups; the files
        themselves are checked when it changed, when it is too recent to trust (file times are coarse),
        and once a second (a file edited in place)."""
        try:
            folder_mtime = os.stat(self._folder_path).st_mtime_ns
        except OSError:
            folder_mtime = -1
        mono = time.monotonic()
        if (folder_mtime == self._folder_mtime and mono - self._checked < FULL_CHECK_INTERVAL
                and time.time_ns() - folder_mtime > COARSE_MTIME_NS):
            return
        self._folder_mtime, self._checked = folder_mtime, mono
        for book, held in self._books.items():
            if _stamp(held.path) != held.stamp:
                self._reload(book)

    # -- writing -----------------------------------------------------------------------------
    def add(self, name: str, destination: Destination | str, *, book: str = "local", source: str = "",
            properties: Mapping[str, str] | None = None, replace: bool = True) -> None:
        """Put a name in a book (replacing that book's entry for it unless replace=False).

        `destination` is a Destination, its Base64, or a b32 name (a b32 alias). Raises NamingError
        for a name or destination that breaks the naming rules."""
        entry = self.make_entry(name, destination, book=book, source=source, properties=properties)
        with self.editing(book) as entries:
            if not replace and entry.name in entries:
                raise NamingError(f"{entry.name} is already in the {book} book", structure="address book")
            entries[entry.name] = entry

    def make_entry(self, name: str, destination: Destination | str, *, book: str = "local", source: str = "",
                   properties: Mapping[str, str] | None = None) -> Entry:
        book = _check_book(book)
        name = normalize_name(name)
        dest = destination_text(destination)
        props = dict(properties or {})
        props["@added"] = str(int(self.now()))
        if source:
            props["@source"] = _clean(source)
        return Entry(name, dest, book, props)

    def remove(self, name: str, *, book: str = "local") -> bool:
        key = name.strip().lower()
        with self.editing(book) as entries:
            return entries.pop(key, None) is not None

    @contextlib.contextmanager
    def editing(self, *books: str) -> Iterator:
        """Lock the folder, bring the books up to date, yield their entry dicts, write the ones changed.

        One book: its dict; several: a tuple of dicts. A kill at any moment leaves each file whole."""
        for book in books:
            _check_book(book)
        with self._lock():
            for book in books:
                held = self._books[book]
                if _stamp(held.path) != held.stamp:
                    self._reload(book)
            copies = [dict(self._books[book].entries) for book in books]
            yield copies[0] if len(copies) == 1 else tuple(copies)
            for book, entries in zip(books, copies):
                held = self._books[book]
                if entries != held.entries:
                    self._write(book, entries)

    def _write(self, book: str, entries: dict[str, Entry]) -> None:
        held = self._books[book]
        lines = [HEADER.format(book=book)]
        lines.extend(storage_line(entry) + "\n" for entry in entries.values())
        atomic_write_text(held.path, "".join(lines))
        held.entries = entries
        held.stamp = _stamp(held.path)

    @contextlib.contextmanager
    def _lock(self):
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _reload(self, book: str) -> None:
        held = self._books[book]
        stamp = _stamp(held.path)
        if stamp is None:
            held.entries, held.stamp = {}, None
            return
        try:
            text = held.path.read_text("utf-8", errors="replace")
        except OSError as exc:
            log.warning("address book %s: cannot read %s: %s", book, held.path, exc)
            return
        held.entries = load_book_text(text, book)
        held.stamp = stamp


def destination_text(destination: Destination | str) -> str:
    """A Destination, its Base64 or a b32 name, checked, in the form a book keeps."""
    if isinstance(destination, Destination):
        return destination.b64
    text = destination.strip()
    if B32_ALIAS.fullmatch(text.lower()):
        return text.lower()
    from .feed import check_dest_text, parse_destination
    check_dest_text(text)
    parse_destination(text)
    return text


def _check_book(book: str) -> str:
    if book not in BOOK_FILES:
        raise NamingError(f"unknown book {book!r} (private, local or router)", structure="address book")
    return book


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
