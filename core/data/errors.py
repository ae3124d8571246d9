"""The one error hierarchy: every malformed or unacceptable input raises a ProtocolError."""
from __future__ import annotations


class ProtocolError(Exception):
    """Input from a peer or a file that breaks a spec rule.

    `structure` names what was being read, `offset` where in its bytes.
    """

    def __init__(self, message: str, *, structure: str | None = None, offset: int | None = None):
        self.structure = structure
        self.offset = offset
        self.reason = message
        text = message
        if structure:
            text = f"{structure}: {text}"
        if offset is not None:
            text = f"{text} (at offset {offset})"
        super().__init__(text)


class ParseError(ProtocolError):
    """The bytes do not form the structure (truncated, bad length, bad value)."""


class SignatureError(ProtocolError):
    """A signature is missing, of an unsupported type, or does not verify."""


class CryptoError(ProtocolError):
    """Decryption or authentication failed, or a key is unusable."""


class HandshakeError(ProtocolError):
    """A transport or session handshake cannot go on (bad netid, skew, replay...)."""
