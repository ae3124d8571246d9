"""I2P's Base64 (alphabet A-Z a-z 0-9 - ~) and Base32 (RFC 4648, lowercase, unpadded)."""
from __future__ import annotations

import base64
import binascii

from .errors import ParseError

# naming.html / common-structures: I2P replaces '+' and '/' with '-' and '~'
_TO_I2P = bytes.maketrans(b"+/", b"-~")
# '+' and '/' are not I2P Base64: map them to a byte the standard decoder rejects
_FROM_I2P = bytes.maketrans(b"-~+/", b"+/!!")
_B32_LENGTH_OK = {0, 2, 4, 5, 7}


def b64encode(data: bytes) -> str:
    """I2P Base64 with '=' padding, as Java I2P and i2pd write it."""
    return base64.b64encode(data).translate(_TO_I2P).decode("ascii")


def b64decode(text: str | bytes) -> bytes:
    """Decode I2P Base64; padding may be present or missing. Anything else is a ParseError."""
    try:
        raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError:
        raise ParseError("non-ASCII character", structure="Base64") from None
    raw = raw.translate(_FROM_I2P)
    unpadded = raw.rstrip(b"=")
    if len(raw) - len(unpadded) > 2 or len(unpadded) % 4 == 1:
        raise ParseError(f"bad length {len(raw)}", structure="Base64")
    padded = unpadded + b"=" * (-len(unpadded) % 4)
    if len(raw) != len(unpadded) and len(raw) != len(padded):
        raise ParseError("bad padding", structure="Base64")
    try:
        return binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error as exc:
        raise ParseError(f"invalid text: {exc}", structure="Base64") from None


def b32encode(data: bytes) -> str:
    """Lowercase RFC 4648 Base32 without padding (the form of .b32.i2p addresses)."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32decode(text: str | bytes) -> bytes:
    """Decode Base32 in either case, padded or not."""
    try:
        raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError:
        raise ParseError("non-ASCII character", structure="Base32") from None
    unpadded = raw.rstrip(b"=")
    if len(unpadded) % 8 not in _B32_LENGTH_OK:
        raise ParseError(f"bad length {len(raw)}", structure="Base32")
    padded = unpadded + b"=" * (-len(unpadded) % 8)
    if len(padded) != len(raw) and len(raw) != len(unpadded):
        raise ParseError("bad padding", structure="Base32")
    try:
        return base64.b32decode(padded.upper())
    except (binascii.Error, ValueError) as exc:
        raise ParseError(f"invalid text: {exc}", structure="Base32") from None
