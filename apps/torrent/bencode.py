"""Bencode (BEP 3 "bencoding"), strict: canonical integers, sorted unique dict keys, bounded depth and size.

Strings decode to bytes, dict keys stay bytes. A non-canonical input is refused, so that the info
dictionary we re-encode hashes to the info-hash the peer meant.
"""
from __future__ import annotations

from typing import Any

from core.data.errors import ParseError

MAX_DEPTH = 64
_DIGITS = frozenset(b"0123456789")


class TorrentParseError(ParseError):
    """Bad input to one of the torrent codecs; subclasses name the structure."""

    structure_name = "torrent"

    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message, structure=self.structure_name, offset=offset)


class BencodeError(TorrentParseError):
    """Bytes that are not canonical bencode."""

    structure_name = "bencode"


def bencode(value: Any) -> bytes:
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(value: Any, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("bencode: nested too deep")
    if isinstance(value, bool):
        raise TypeError("bencode: booleans have no encoding")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        out.append(b"%d:" % len(value))
        out.append(bytes(value))
    elif isinstance(value, str):
        _encode(value.encode(), out, depth)
    elif isinstance(value, (list, tuple)):
        out.append(b"l")
        for item in value:
            _encode(item, out, depth + 1)
        out.append(b"e")
    elif isinstance(value, dict):
        out.append(b"d")
        keys = {(k.encode() if isinstance(k, str) else bytes(k)): v for k, v in value.items()}
        if len(keys) != len(value):
            raise ValueError("bencode: duplicate dictionary key")
        for key in sorted(keys):
            _encode(key, out, depth)
            _encode(keys[key], out, depth + 1)
        out.append(b"e")
    else:
        raise TypeError(f"bencode: cannot encode {type(value).__name__}")


def bdecode(data: bytes, *, max_items: int = 1_000_000) -> Any:
    """The one value `data` holds, all of it consumed; raises BencodeError otherwise."""
    value, end = bdecode_prefix(data, max_items=max_items)
    if end != len(data):
        raise BencodeError("trailing bytes after the value", end)
    return value


def bdecode_prefix(data: bytes, start: int = 0, *, max_items: int = 1_000_000) -> tuple[Any, int]:
    """One value from `data[start:]` and the offset just past it (BEP 9 metadata messages carry a tail)."""
    decoder = _Decoder(bytes(data), max_items)
    value = decoder.value(start, 0)
    return value, decoder.pos


class _Decoder:
    __slots__ = ("data", "pos", "items_left")

    def __init__(self, data: bytes, max_items: int):
        self.data = data
        self.pos = 0
        self.items_left = max_items

    def value(self, pos: int, depth: int) -> Any:
        data = self.data
        if depth > MAX_DEPTH:
            raise BencodeError("nested too deep", pos)
        self.items_left -= 1
        if self.items_left < 0:
            raise BencodeError("too many items", pos)
        if pos >= len(data):
            raise BencodeError("truncated", pos)
        lead = data[pos]
        if lead == 0x69:  # i
            end = data.find(b"e", pos + 1)
            if end < 0:
                raise BencodeError("unterminated integer", pos)
            self.pos = end + 1
            return _integer(data[pos + 1:end], pos)
        if lead in _DIGITS:
            colon = data.find(b":", pos, pos + 21)
            if colon < 0:
                raise BencodeError("bad string length", pos)
            length = _integer(data[pos:colon], pos)
            if length < 0 or (data[pos] == 0x30 and colon != pos + 1):
                raise BencodeError("bad string length", pos)
            end = colon + 1 + length
            if end > len(data):
                raise BencodeError("truncated string", pos)
            self.pos = end
            return data[colon + 1:end]
        if lead == 0x6C:  # l
            items = []
            pos += 1
            while True:
                if pos >= len(data):
                    raise BencodeError("unterminated list", pos)
                if data[pos] == 0x65:
                    self.pos = pos + 1
                    return items
                items.append(self.value(pos, depth + 1))
                pos = self.pos
        if lead == 0x64:  # d
            result: dict[bytes, Any] = {}
            previous: bytes | None = None
            pos += 1
            while True:
                if pos >= len(data):
                    raise BencodeError("unterminated dictionary", pos)
                if data[pos] == 0x65:
                    self.pos = pos + 1
                    return result
                if data[pos] not in _DIGITS:
                    raise BencodeError("dictionary key is not a string", pos)
                key = self.value(pos, depth + 1)
                if previous is not None and key <= previous:
                    raise BencodeError("dictionary keys not sorted or repeated", pos)
                previous = key
                result[key] = self.value(self.pos, depth + 1)
                pos = self.pos
        raise BencodeError(f"unexpected byte {lead:#04x}", pos)


def _integer(text: bytes, pos: int) -> int:
    body = text[1:] if text[:1] == b"-" else text
    if not body or not all(c in _DIGITS for c in body) or (body[0] == 0x30 and (len(body) > 1 or text[:1] == b"-")):
        raise BencodeError("non-canonical integer", pos)
    if len(body) > 20:
        raise BencodeError("integer too long", pos)
    return int(text)
