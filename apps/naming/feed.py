"""The hosts.txt format with the extended `#!` lines of subscription.rst: parse, sign, verify, format.

    line = parse_line("example.i2p=<b64>#!sig=<b64sig>")
    verify_line(line)                       # True when the signatures its action needs verify
    sign_line("example.i2p", keys)          # a registration line signed by a site's key
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping

from core.data.encoding import b64decode, b64encode
from core.data.errors import ProtocolError
from core.data.identity import Destination

from .names import MAX_DEST_CHARS, MIN_DEST_CHARS, NamingError, normalize_name

MAX_LINE_CHARS = 8192               # a signed line with two destinations and two signatures fits in 3 KB
MAX_PROPERTIES = 32
# subscription.rst "Commands"
ACTIONS = ("add", "addname", "adddest", "addsubdomain", "changedest", "changename", "update", "remove",
           "removeall")
NAMED_ACTIONS = frozenset(ACTIONS) - {"remove", "removeall"}     # lines preceded by example.i2p=b64dest
INNER_SIGNED = frozenset({"adddest", "addsubdomain", "changedest"})  # carry oldsig by olddest
LOCAL_PREFIX = "@"                  # our own per-entry keys (added, source); never served, never signed


@dataclass(frozen=True, slots=True)
class FeedLine:
    """One hosts.txt line: `name=dest`, `name=dest#!k=v#...`, or `#!k=v#...` (remove commands)."""

    name: str | None
    dest: str | None                # Base64 destination as given
    properties: Mapping[str, str] = field(default_factory=dict)

    @property
    def action(self) -> str:
        return self.properties.get("action", "add") if self.name is not None else self.properties.get("action", "")

    @property
    def signed(self) -> bool:
        return "sig" in self.properties

    def to_text(self) -> str:
        return format_line(self.name, self.dest, self.properties)


def parse_properties(text: str) -> dict[str, str]:
    """`k1=v1#k2=v2` (subscription.rst "New line types"); duplicate keys are not allowed."""
    props: dict[str, str] = {}
    for item in text.split("#"):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise NamingError(f"property {item[:40]!r} is not key=value", structure="hosts.txt line")
        if key in props:
            raise NamingError(f"duplicate key {key!r}", structure="hosts.txt line")
        props[key] = value
        if len(props) > MAX_PROPERTIES:
            raise NamingError(f"more than {MAX_PROPERTIES} properties", structure="hosts.txt line")
    return props


def parse_line(text: str) -> FeedLine | None:
    """One line of a feed; None for a blank or comment line; NamingError for a malformed one."""
    line = text.strip()
    if not line:
        return None
    if len(line) > MAX_LINE_CHARS:
        raise NamingError(f"line longer than {MAX_LINE_CHARS} characters", structure="hosts.txt line")
    if line.startswith("#!"):
        props = parse_properties(line[2:])
        action = props.get("action")
        if action not in ("remove", "removeall"):
            raise NamingError(f"a '#!' line without name=dest must be remove or removeall, not {action!r}",
                              structure="hosts.txt line")
        return FeedLine(None, None, props)
    if line.startswith("#"):
        return None
    props: dict[str, str] = {}
    hash_at = line.find("#")
    if hash_at >= 0:
        if line.startswith("#!", hash_at):
            props = parse_properties(line[hash_at + 2:])
        line = line[:hash_at].rstrip()
    name, eq, dest = line.partition("=")
    if not eq:
        raise NamingError(f"{line[:40]!r} is not name=destination", structure="hosts.txt line")
    name = normalize_name(name)
    dest = dest.strip()
    check_dest_text(dest)
    action = props.get("action", "add")
    if action not in NAMED_ACTIONS:
        raise NamingError(f"unknown action {action!r}", structure="hosts.txt line")
    return FeedLine(name, dest, props)


def check_dest_text(dest: str) -> None:
    """naming.md: keys are checked for Base64 validity and a length of 516-616 characters."""
    if not MIN_DEST_CHARS <= len(dest) <= MAX_DEST_CHARS:
        raise NamingError(f"destination of {len(dest)} characters (516-616 allowed)", structure="hosts.txt line")


def parse_destination(dest: str) -> Destination:
    try:
        return Destination.from_b64(dest)
    except (ProtocolError, ValueError) as exc:
        raise NamingError(f"not a valid Base64 destination: {exc}", structure="hosts.txt line") from None


def iter_lines(text: str) -> Iterator[tuple[int, FeedLine | None, str | None]]:
    """(line number, parsed line or None, error or None) for every line of a feed."""
    for number, raw in enumerate(text.split("\n"), 1):     # only \n ends a line, as in Java and i2pd
        try:
            yield number, parse_line(raw), None
        except NamingError as exc:
            yield number, None, str(exc)


def format_line(name: str | None, dest: str | None, properties: Mapping[str, str]) -> str:
    """The hosts.txt form; properties in sorted order, our local `@` keys left out."""
    props = "#".join(f"{key}={value}" for key, value in sorted(properties.items())
                     if not key.startswith(LOCAL_PREFIX))
    head = f"{name}={dest}" if name is not None else ""
    return f"{head}#!{props}" if props else head


def signed_text(line: FeedLine, *, inner: bool) -> bytes:
    """subscription.rst "Input for signatures": the line without sig (and without oldsig for the inner one)."""
    drop = {"sig", "oldsig"} if inner else {"sig"}
    props = {key: value for key, value in line.properties.items() if key not in drop and not key.startswith(LOCAL_PREFIX)}
    head = f"{line.name}={line.dest}" if line.name is not None else ""
    body = "#".join(f"{key}={value}" for key, value in sorted(props.items()))
    return (head + ("#!" + body if props else "")).encode("utf-8")


def _check_signature(signer_b64: str | None, text: bytes, signature_b64: str | None) -> bool:
    if not signer_b64 or not signature_b64:
        return False
    try:
        signer = Destination.from_b64(signer_b64)
        return signer.verify(text, b64decode(signature_b64))
    except (ProtocolError, ValueError):
        return False


def verify_line(line: FeedLine) -> bool:
    """subscription.rst "Signatures": the inner oldsig (by olddest) first, then the outer sig."""
    props = line.properties
    action = line.action
    if action in INNER_SIGNED:
        if not _check_signature(props.get("olddest"), signed_text(line, inner=True), props.get("oldsig")):
            return False
    signer = line.dest if line.name is not None else props.get("dest")
    return _check_signature(signer, signed_text(line, inner=False), props.get("sig"))


def sign_line(name: str | None, keys, *, action: str = "add", old_keys=None, date: int | None = None,
              extra: Mapping[str, str] | None = None) -> FeedLine:
    """A line signed the way a registrar expects (`keys`, `old_keys` are PrivateKeys).

    add: name=dest#!sig; addname/changename: extra={"oldname": ...}; changedest/adddest: old_keys
    signs the inner oldsig; addsubdomain: old_keys is the parent's and extra={"oldname": parent};
    remove/removeall: #!action=...#name#dest#sig."""
    if action not in ACTIONS:
        raise NamingError(f"unknown action {action!r}", structure="hosts.txt line")
    props: dict[str, str] = dict(extra or {})
    if date is not None:
        props["date"] = str(date)
    if action != "add":
        props["action"] = action
    dest_b64 = keys.destination.b64
    if action in ("remove", "removeall"):
        props["dest"] = dest_b64
        if name is not None:
            props["name"] = normalize_name(name)
        line = FeedLine(None, None, props)
    else:
        if name is None:
            raise NamingError(f"{action} needs a name", structure="hosts.txt line")
        line = FeedLine(normalize_name(name), dest_b64, props)
    if action in INNER_SIGNED:
        if old_keys is None:
            raise NamingError(f"{action} needs the old (or parent) destination's keys", structure="hosts.txt line")
        props["olddest"] = old_keys.destination.b64
        props["oldsig"] = b64encode(old_keys.sign(signed_text(line, inner=True)))
    props["sig"] = b64encode(keys.sign(signed_text(line, inner=False)))
    return line
