"""Privacy scrubbing of a message that leaves the node: nothing in its header may name the local machine.

Works on the raw header lines and leaves the body byte for byte (malformed MIME passes untouched):
Received, X-Originating-IP, X-Mailer, User-Agent and their kin are dropped; Message-ID is made anew on
our mail domain unless it already is one of ours; Date is rewritten in UTC (+0000).
"""
from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime

DROPPED = frozenset({
    "received", "x-originating-ip", "x-mailer", "user-agent", "x-user-agent", "x-newsreader",
    "x-client-ip", "x-remote-ip", "x-sender-ip", "x-forwarded-for", "x-real-ip", "x-mimeole",
    "x-ms-exchange-organization-originalclientipaddress", "x-authenticated-sender", "x-originating-host",
    "x-x-sender", "x-source-ip", "x-originating-email",
})
HEADER_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")


def split_message(data: bytes) -> tuple[list[bytes], bytes]:
    """Header fields (each with its folded continuation lines and line ends) and the body that follows."""
    fields: list[bytes] = []
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        end = len(data) if end < 0 else end + 1
        line = data[position:end]
        if line in (b"\r\n", b"\n"):
            return fields, data[position:]
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        elif HEADER_NAME.match(line):
            fields.append(line)
        else:                      # not a header line: the header ends here (RFC 5322 section 2.1)
            return fields, data[position:]
        position = end
    return fields, b""


def field_name(field: bytes) -> str:
    match = HEADER_NAME.match(field)
    return match.group(1).decode("ascii", "replace").lower() if match else ""


def field_value(field: bytes) -> str:
    return field.split(b":", 1)[1].decode("utf-8", "replace").strip() if b":" in field else ""


def message_id(domain: str, rng=os.urandom) -> str:
    return f"<{rng(12).hex()}@{domain}>"


def scrub(data: bytes, domain: str, now: float, rng=os.urandom, local_domains: frozenset[str] = frozenset()) -> bytes:
    """The message as it may leave: see the module text. `now` (epoch seconds) dates a message without a Date."""
    fields, body = split_message(data)
    eol = b"\r\n" if (fields[0].endswith(b"\r\n") if fields else data.find(b"\r\n") >= 0) else b"\n"
    ours = {domain.lower()} | {d.lower() for d in local_domains}
    kept: list[bytes] = []
    has_date = has_id = False
    for field in fields:
        name = field_name(field)
        if name in DROPPED:
            continue
        if name == "message-id":
            value = field_value(field)
            if has_id or value.rstrip(">").rpartition("@")[2].lower() not in ours:
                continue               # replaced below: a foreign Message-ID may carry the machine's name
            has_id = True
        elif name == "date":
            if has_date:
                continue
            has_date = True
            field = b"Date: " + _utc_date(field_value(field), now).encode() + eol
        kept.append(field)
    if not has_date:
        kept.append(b"Date: " + _utc_date("", now).encode() + eol)
    if not has_id:
        kept.append(b"Message-ID: " + message_id(domain, rng).encode() + eol)
    if not body.startswith((b"\r\n", b"\n")):
        body = eol + body          # a header that ended at a non-header line gets its blank line
    return b"".join(kept) + body


def _utc_date(value: str, now: float) -> str:
    try:
        when = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None or when.tzinfo is None:
        when = datetime.fromtimestamp(now, timezone.utc)
    # the time is kept, the zone (which tells where the sender lives) is not
    return format_datetime(when.astimezone(timezone.utc).replace(microsecond=0))
