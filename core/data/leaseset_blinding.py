"""Addresses and daily blinded keys for EncryptedLeaseSets.

b32encrypted.rst: the "b33" address (flags, signing types and the unblinded public key, masked
by a CRC-32, in Base32 with the .b32.i2p suffix). encryptedleaseset.rst "Blinding Calculations":
GENERATE_ALPHA, BLIND_PRIVKEY, BLIND_PUBKEY, and the netDb key SHA-256(sig type || A').
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timezone

from core.crypto import red25519
from core.crypto.hashes import hkdf, sha256

from .encoding import b32decode, b32encode
from .errors import ParseError
from .identity import Destination
from .keytypes import SIG_ED25519, SIG_REDDSA, SIG_TYPES

B32_SUFFIX = ".b32.i2p"
STANDARD_B32_CHARS = 52            # a plain .b32.i2p address: the 32-byte destination hash
MIN_BLINDED_B32_CHARS = 56         # 35 bytes: flags, two 1-byte types, a 32-byte key

FLAG_TWO_BYTE_SIG_TYPES = 0x01
FLAG_SECRET_REQUIRED = 0x02
FLAG_CLIENT_AUTH_REQUIRED = 0x04
_KNOWN_FLAGS = FLAG_TWO_BYTE_SIG_TYPES | FLAG_SECRET_REQUIRED | FLAG_CLIENT_AUTH_REQUIRED

UNBLINDED_SIG_TYPES = (SIG_ED25519, SIG_REDDSA)    # encryptedleaseset.rst "Goals"
BLINDED_SIG_TYPE = SIG_REDDSA


def is_blinded_b32(hostname: str) -> bool:
    """b32encrypted.rst "Notes": old addresses have 52 characters before .b32.i2p, new ones 56 or more."""
    host = hostname.lower()
    return host.endswith(B32_SUFFIX) and len(host) - len(B32_SUFFIX) >= MIN_BLINDED_B32_CHARS


def date_string(now: float) -> bytes:
    """The UTC date of `now` (wall seconds) as 8 ASCII bytes YYYYMMDD: blinded keys change daily."""
    return datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d").encode("ascii")


def generate_alpha(public_key: bytes, sig_type: int, blinded_sig_type: int, now: float, secret: str = "") -> bytes:
    """encryptedleaseset.rst GENERATE_ALPHA: the day's blinding scalar, 32 bytes little-endian."""
    keydata = public_key + sig_type.to_bytes(2, "big") + blinded_sig_type.to_bytes(2, "big")
    seed = hkdf(sha256(b"I2PGenerateAlpha" + keydata), date_string(now) + secret.encode("utf-8"),
                b"i2pblinding1", 64)
    return red25519.reduce_scalar(seed)


def blind_private_key(sig_type: int, private_key: bytes, alpha: bytes) -> bytes:
    """encryptedleaseset.rst BLIND_PRIVKEY: a' = a + alpha, where a is the clamped Ed25519 scalar for type 7."""
    if sig_type == SIG_ED25519:
        scalar = red25519.private_from_ed25519(private_key)
    elif sig_type == SIG_REDDSA:
        scalar = private_key
    else:
        raise ParseError(f"signing type {sig_type} cannot be blinded", structure="BlindedAddress")
    return red25519.blind_private(scalar, alpha)


@dataclass(frozen=True, slots=True)
class BlindedAddress:
    """What a b33 address carries: the unblinded key, its type, the blinded type, and two hints."""

    sig_type: int
    blinded_sig_type: int
    public_key: bytes
    secret_required: bool = False
    client_auth_required: bool = False

    def __post_init__(self) -> None:
        problem = _type_problem(self.sig_type, self.blinded_sig_type)
        if problem is None and len(self.public_key) != SIG_TYPES[self.sig_type].public_key_len:
            problem = "public key length does not match its signing type"
        if problem:
            raise ParseError(problem, structure="BlindedAddress")

    @classmethod
    def for_destination(cls, destination: Destination, *, secret_required: bool = False,
                        client_auth_required: bool = False) -> BlindedAddress:
        return cls(destination.sig_type, BLINDED_SIG_TYPE, destination.signing_public_key, secret_required,
                   client_auth_required)

    @classmethod
    def parse(cls, hostname: str) -> BlindedAddress:
        """A "<56+ chars>.b32.i2p" hostname (the suffix may be left off); b32encrypted.rst "Decoding"."""
        text = hostname.lower()
        if text.endswith(B32_SUFFIX):
            text = text[:-len(B32_SUFFIX)]
        if len(text) < MIN_BLINDED_B32_CHARS:
            raise ParseError(f"{len(text)} characters, a blinded address has at least {MIN_BLINDED_B32_CHARS}",
                             structure="BlindedAddress")
        data = b32decode(text)
        if b32encode(data) != text:
            raise ParseError("unused bits at the end are not zero", structure="BlindedAddress")
        return cls.from_bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> BlindedAddress:
        if len(data) < 3:
            raise ParseError("truncated", structure="BlindedAddress", offset=len(data))
        checksum = zlib.crc32(data[3:])
        flags = data[0] ^ (checksum & 0xFF)
        if flags & ~_KNOWN_FLAGS:
            raise ParseError(f"unknown flags {flags:#04x}", structure="BlindedAddress", offset=0)
        if flags & FLAG_TWO_BYTE_SIG_TYPES:
            if len(data) < 5:
                raise ParseError("truncated", structure="BlindedAddress", offset=len(data))
            sig_type = ((data[1] ^ (checksum >> 8) & 0xFF) << 8) | (data[2] ^ (checksum >> 16) & 0xFF)
            blinded_sig_type = int.from_bytes(data[3:5], "big")
            key_start = 5
        else:
            sig_type = data[1] ^ (checksum >> 8) & 0xFF
            blinded_sig_type = data[2] ^ (checksum >> 16) & 0xFF
            key_start = 3
        problem = _type_problem(sig_type, blinded_sig_type)
        if problem:
            raise ParseError(problem, structure="BlindedAddress", offset=1)
        key_len = SIG_TYPES[sig_type].public_key_len
        if len(data) != key_start + key_len:
            raise ParseError(f"{len(data) - key_start} key bytes, signing type {sig_type} has {key_len}",
                             structure="BlindedAddress", offset=key_start)
        return cls(sig_type, blinded_sig_type, data[key_start:], bool(flags & FLAG_SECRET_REQUIRED),
                   bool(flags & FLAG_CLIENT_AUTH_REQUIRED))

    def to_bytes(self) -> bytes:
        """b32encrypted.rst "Creation and encoding"; two-byte types only when a type needs them."""
        flags = (FLAG_SECRET_REQUIRED if self.secret_required else 0) | (
            FLAG_CLIENT_AUTH_REQUIRED if self.client_auth_required else 0)
        if self.sig_type > 0xFF or self.blinded_sig_type > 0xFF:
            flags |= FLAG_TWO_BYTE_SIG_TYPES
            head = bytes([flags]) + self.sig_type.to_bytes(2, "big") + self.blinded_sig_type.to_bytes(2, "big")
        else:
            head = bytes([flags, self.sig_type, self.blinded_sig_type])
        data = bytearray(head + self.public_key)
        checksum = zlib.crc32(data[3:])
        data[0] ^= checksum & 0xFF
        data[1] ^= (checksum >> 8) & 0xFF
        data[2] ^= (checksum >> 16) & 0xFF
        return bytes(data)

    @property
    def hostname(self) -> str:
        return b32encode(self.to_bytes()) + B32_SUFFIX

    def alpha(self, now: float, secret: str = "") -> bytes:
        return generate_alpha(self.public_key, self.sig_type, self.blinded_sig_type, now, secret)

    def blinded_public_key(self, now: float, secret: str = "") -> bytes:
        """encryptedleaseset.rst BLIND_PUBKEY: A' = A + DERIVE_PUBLIC(alpha), for the UTC day of `now`."""
        return red25519.blind_public(self.public_key, self.alpha(now, secret))

    def store_hash(self, now: float, secret: str = "") -> bytes:
        """The netDb key of that day's EncryptedLeaseSet: SHA-256(blinded sig type || A')."""
        return sha256(self.blinded_sig_type.to_bytes(2, "big") + self.blinded_public_key(now, secret))


def _type_problem(sig_type: int, blinded_sig_type: int) -> str | None:
    if sig_type not in UNBLINDED_SIG_TYPES:
        return f"signing type {sig_type} cannot be blinded (only 7 and 11)"
    if blinded_sig_type != BLINDED_SIG_TYPE:
        return f"blinded signing type must be {BLINDED_SIG_TYPE}, not {blinded_sig_type}"
    return None
