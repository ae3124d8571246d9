"""Host name rules (naming.md "Naming Rules") and the one error the address book raises."""
from __future__ import annotations

import re

from core.data.errors import ProtocolError

MAX_NAME_CHARS = 67                 # naming.md: 67 characters maximum, including the '.i2p'
MIN_DEST_CHARS = 516                # naming.md: minimum key length 516 (Base64 characters)
MAX_DEST_CHARS = 616                # naming.md: maximum key length 616 (certificates up to 100 bytes)
B32_ALIAS = re.compile(r"[a-z2-7]{52}\.b32\.i2p")
_NAME_CHARS = re.compile(r"[a-z0-9.-]+")
# naming.md: "proxy.i2p, router.i2p, console.i2p, mail.i2p, *.proxy.i2p ... and others" (Java's list)
RESERVED = frozenset({"proxy.i2p", "router.i2p", "console.i2p", "mail.i2p", "b32.i2p", "b64.i2p", "localhost.i2p"})
RESERVED_PARENTS = ("proxy.i2p", "router.i2p", "console.i2p", "mail.i2p", "b32.i2p", "b64.i2p")


class NamingError(ProtocolError):
    """A host name, destination or address book line that breaks the naming rules."""


def normalize_name(name: str) -> str:
    """The host name in its book form (lower case, `.i2p.alt` stripped); raises NamingError if it breaks a rule."""
    name = name.strip().lower()
    if name.endswith(".i2p.alt"):   # naming.md ".i2p.alt Domain": strip the .alt
        name = name[:-4]
    check_name(name)
    return name


def check_name(name: str) -> None:
    """naming.md "Naming Rules", applied to a lower-case name."""
    problem = name_problem(name)
    if problem:
        raise NamingError(f"{name[:80]!r}: {problem}", structure="host name")


def name_problem(name: str) -> str | None:
    if not name.endswith(".i2p") or len(name) <= 4:
        return "must end with .i2p"
    if len(name) > MAX_NAME_CHARS:
        return f"longer than {MAX_NAME_CHARS} characters"
    if not _NAME_CHARS.fullmatch(name):
        return "only a-z, 0-9, '.' and '-' are allowed"
    if name[0] in ".-":
        return "must not start with '.' or '-'"
    if ".." in name or ".-" in name or "-." in name:
        return "must not contain '..', '.-' or '-.'"
    if "--" in name and not all(part.startswith("xn--") or "--" not in part for part in name.split(".")):
        return "'--' only in an IDN 'xn--' label"
    if name.endswith(".b32.i2p"):
        return "b32 names are not for the address book"
    if name in RESERVED or name.endswith(tuple("." + parent for parent in RESERVED_PARENTS)):
        return "reserved for the I2P software"
    return None


def is_valid_name(name: str) -> bool:
    return name_problem(name) is None
