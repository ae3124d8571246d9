"""Applying a subscription feed to the router book by the rules of subscription.rst "Commands".

First come stays: a plain or signed add never replaces a name the local or router book has; a
change (changedest, changename, update, remove...) applies only when its signatures verify and
the name's current destination is the one that signed. What was skipped is counted by reason.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping

from .book import AddressBook, Entry
from .feed import FeedLine, iter_lines, parse_destination, verify_line
from .names import NamingError, normalize_name

MAX_REPORTED = 20           # skipped lines quoted in a status, the rest only counted
MAX_REMOVEALLS = 100        # each scans the router book


@dataclass(slots=True)
class FeedResult:
    lines: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def skip(self, reason: str, number: int, detail: str = "") -> None:
        self.skipped[reason] += 1
        if len(self.examples) < MAX_REPORTED:
            self.examples.append(f"line {number}: {reason}{': ' + detail if detail else ''}")

    def to_json(self) -> dict:
        return {"lines": self.lines, "added": self.added, "changed": self.changed, "removed": self.removed,
                "unchanged": self.unchanged, "skipped": sum(self.skipped.values()),
                "skipped_by_reason": dict(self.skipped), "skipped_examples": list(self.examples)}


def apply_feed(book: AddressBook, text: str, *, source: str, now: Callable[[], float] | None = None,
               verify: Callable[[FeedLine], bool] = verify_line) -> FeedResult:
    """Apply every line of a feed to the router book, in one locked edit and one write."""
    result = FeedResult()
    with book.editing("router") as router:
        local = book.entries("local")
        added = str(int((now or book.now)()))
        applier = _Applier(book, router, local, source.replace("#", "%23"), result, verify, added)
        for number, line, error in iter_lines(text):
            result.lines += 1
            if error is not None:
                result.skip("malformed", number, error)
            elif line is not None:
                applier.apply(number, line)
    return result


@dataclass(slots=True)
class _Applier:
    book: AddressBook
    router: dict[str, Entry]
    local: Mapping[str, Entry]
    source: str
    result: FeedResult
    verify: Callable[[FeedLine], bool]
    added: str = "0"
    removealls: int = 0

    def known(self, name: str) -> Entry | None:
        return self.local.get(name) or self.router.get(name)

    def put(self, line: FeedLine, name: str | None = None, dest: str | None = None) -> None:
        props = dict(line.properties) if line.signed else {}
        props["@added"] = self.added
        if self.source:
            props["@source"] = self.source
        name = name or line.name
        self.router[name] = Entry(name, dest or line.dest, "router", props)

    def apply(self, number: int, line: FeedLine) -> None:
        result = self.result
        action = line.action
        if action == "add" and self.known(line.name) is not None:
            self.add(number, line)      # unchanged or taken: nothing to verify, nothing changes
            return
        if not line.signed:
            if action != "add":
                result.skip("unsigned command", number, f"{action} {line.name or line.properties.get('name', '')}")
                return
            self.add(number, line)
            return
        if not self.verify(line):
            result.skip("bad signature", number, f"{action} {line.name or line.properties.get('name', '')}")
            return
        getattr(self, "do_" + action)(number, line)

    def _valid_dest(self, number: int, dest: str) -> bool:
        try:
            parse_destination(dest)
            return True
        except NamingError as exc:
            self.result.skip("bad destination", number, str(exc))
            return False

    def add(self, number: int, line: FeedLine) -> None:
        existing = self.known(line.name)
        if existing is not None:
            if existing.dest == line.dest:
                self.result.unchanged += 1
            else:
                self.result.skip("name taken", number, line.name)
            return
        if self._valid_dest(number, line.dest):
            self.put(line)
            self.result.added += 1

    do_add = add

    def do_addname(self, number: int, line: FeedLine) -> None:
        # an alias: the old name, where known, must have this destination
        old = self.known(_name(line.properties.get("oldname", "")))
        if old is not None and old.dest != line.dest:
            self.result.skip("oldname has another destination", number, line.name)
            return
        self.add(number, line)

    def do_addsubdomain(self, number: int, line: FeedLine) -> None:
        parent = _name(line.properties.get("oldname", ""))
        if not parent or not line.name.endswith("." + parent):
            self.result.skip("not a subdomain of oldname", number, line.name)
            return
        known_parent = self.known(parent)
        if known_parent is not None and known_parent.dest != line.properties.get("olddest"):
            self.result.skip("olddest is not the parent's destination", number, line.name)
            return
        self.add(number, line)

    def do_adddest(self, number: int, line: FeedLine) -> None:
        # a second destination for a name (crypto upgrade): the name keeps its first one
        existing = self.known(line.name)
        if existing is None:
            self.add(number, line)
        elif existing.dest not in (line.properties.get("olddest"), line.dest):
            self.result.skip("olddest is not the name's destination", number, line.name)
        else:
            self.result.unchanged += 1

    def do_changedest(self, number: int, line: FeedLine) -> None:
        existing = self.known(line.name)
        if existing is None:
            self.add(number, line)
            return
        if existing.dest == line.dest:
            self.result.unchanged += 1
        elif existing.dest != line.properties.get("olddest"):
            self.result.skip("olddest is not the name's destination", number, line.name)
        elif existing.book != "router":
            self.result.skip("name is in the local book", number, line.name)
        elif self._valid_dest(number, line.dest):
            self.put(line)
            self.result.changed += 1

    def do_changename(self, number: int, line: FeedLine) -> None:
        oldname = _name(line.properties.get("oldname", ""))
        if self.known(line.name) is not None:
            self.add(number, line)      # counts it unchanged or taken
            return
        old = self.router.get(oldname)
        if old is not None and old.dest == line.dest:
            del self.router[oldname]
            self.put(line)
            self.result.changed += 1
        elif self.known(oldname) is not None:
            self.result.skip("oldname has another destination", number, line.name)
        else:
            self.add(number, line)

    def do_update(self, number: int, line: FeedLine) -> None:
        existing = self.router.get(line.name)
        if existing is None or existing.dest != line.dest:
            self.result.skip("update for a name with another destination", number, line.name)
            return
        self.put(line)
        self.result.changed += 1

    def do_remove(self, number: int, line: FeedLine) -> None:
        name = _name(line.properties.get("name", ""))
        existing = self.router.get(name)
        if existing is None:
            self.result.unchanged += 1
        elif existing.dest != line.properties.get("dest"):
            self.result.skip("remove for a name with another destination", number, name)
        else:
            del self.router[name]
            self.result.removed += 1

    def do_removeall(self, number: int, line: FeedLine) -> None:
        self.removealls += 1
        if self.removealls > MAX_REMOVEALLS:
            self.result.skip("too many removeall commands", number)
            return
        dest = line.properties.get("dest")
        doomed = [name for name, entry in self.router.items() if entry.dest == dest]
        for name in doomed:
            del self.router[name]
        self.result.removed += len(doomed)
        if not doomed:
            self.result.unchanged += 1


def _name(text: str) -> str:
    try:
        return normalize_name(text)
    except NamingError:
        return ""
