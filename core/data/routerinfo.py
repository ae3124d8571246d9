"""RouterAddress and RouterInfo (common-structures.rst "RouterAddress", "RouterInfo")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Self

from core.crypto import signing

from .encoding import b64decode
from .errors import ParseError
from .identity import RouterIdentity
from .primitives import Mapping, read_string, write_date, write_string
from .reader import Reader

HASH_LEN = 32
DEFAULT_NETID = 2
CAP_FLOODFILL = "f"


def _as_mapping(options: Mapping | dict[str, str] | None) -> Mapping:
    if options is None:
        return Mapping()
    if isinstance(options, Mapping):
        return options
    return Mapping.from_dict(options)


@dataclass(frozen=True, slots=True)
class RouterAddress:
    cost: int
    expiration: int
    transport_style: str
    options: Mapping

    def __post_init__(self) -> None:
        if not 0 <= self.cost <= 255:
            raise ParseError(f"cost {self.cost} out of range", structure="RouterAddress")
        write_date(self.expiration)
        write_string(self.transport_style)

    @classmethod
    def create(cls, transport_style: str, options: Mapping | dict[str, str], cost: int = 10) -> Self:
        """An address with sorted options and the all-zero expiration routers MUST write."""
        return cls(cost, 0, transport_style, _as_mapping(options))

    @classmethod
    def read(cls, r: Reader) -> Self:
        start = r.pos
        cost = r.u8()
        expiration = r.u64()
        transport_style = read_string(r)
        options = Mapping.read(r)
        try:
            return cls(cost, expiration, transport_style, options)
        except ParseError as exc:
            raise r.error(exc.reason, start) from None

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "RouterAddress")
        address = cls.read(r)
        r.expect_end()
        return address

    def to_bytes(self) -> bytes:
        return (bytes((self.cost,)) + self.expiration.to_bytes(8, "big") + write_string(self.transport_style)
                + self.options.to_bytes())

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    @property
    def host(self) -> str | None:
        return self.options.get("host")

    @property
    def port(self) -> int | None:
        text = self.options.get("port")
        if text is None:
            return None
        if not (text.isascii() and text.isdigit() and 0 < int(text) < 65536):
            raise ParseError(f"bad port {text!r}", structure="RouterAddress")
        return int(text)

    @property
    def caps(self) -> str:
        return self.options.get("caps", "")

    def _b64_option(self, key: str, lengths: tuple[int, ...]) -> bytes | None:
        text = self.options.get(key)
        if text is None:
            return None
        value = b64decode(text)
        if len(value) not in lengths:
            raise ParseError(f"option {key!r} decodes to {len(value)} bytes", structure="RouterAddress")
        return value

    @property
    def s(self) -> bytes | None:
        """The static X25519 public key (NTCP2 and SSU2 option "s"), 32 bytes."""
        return self._b64_option("s", (32,))

    @property
    def i(self) -> bytes | None:
        """NTCP2: the 16-byte AES IV for the ephemeral key; SSU2: the 32-byte intro key (option "i")."""
        return self._b64_option("i", (16, 32))

    @property
    def v(self) -> str | None:
        """Protocol version (option "v"), "2" today."""
        return self.options.get("v")


@dataclass(frozen=True, slots=True)
class RouterInfo:
    identity: RouterIdentity
    published: int
    addresses: tuple[RouterAddress, ...]
    peer_hashes: tuple[bytes, ...]
    options: Mapping
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.addresses) > 255 or len(self.peer_hashes) > 255:
            raise ParseError("more than 255 addresses or peer hashes", structure="RouterInfo")
        if any(len(h) != HASH_LEN for h in self.peer_hashes):
            raise ParseError("peer hash is not 32 bytes", structure="RouterInfo")
        if len(self.signature) != self.identity.signature_len:
            raise ParseError(f"signature must be {self.identity.signature_len} bytes, got {len(self.signature)}",
                             structure="RouterInfo")
        self.signed_bytes    # every part encodes: a bad date or string raises here, not when the entry is sent

    @property
    def signed_bytes(self) -> bytes:
        # joined from the parts' own (cached, as read) encodings when needed, not kept: a netDb holds thousands
        return b"".join((
            self.identity.to_bytes(), write_date(self.published), bytes((len(self.addresses),)),
            *(a.to_bytes() for a in self.addresses),
            bytes((len(self.peer_hashes),)), *self.peer_hashes, self.options.to_bytes()))

    @classmethod
    def read(cls, r: Reader) -> Self:
        identity = RouterIdentity.read(r)
        published = r.u64()
        addresses = tuple(RouterAddress.read(r) for _ in range(r.u8()))
        peer_hashes = tuple(r.take(HASH_LEN) for _ in range(r.u8()))
        options = Mapping.read(r)
        signature = r.take(identity.signature_len)
        # counts, hash and signature lengths hold by construction: skip __post_init__'s rebuild
        info = object.__new__(cls)
        for name, value in (("identity", identity), ("published", published), ("addresses", addresses),
                            ("peer_hashes", peer_hashes), ("options", options), ("signature", signature)):
            object.__setattr__(info, name, value)
        return info

    @classmethod
    def parse(cls, data: bytes) -> Self:
        r = Reader(data, "RouterInfo")
        info = cls.read(r)
        r.expect_end()
        return info

    @classmethod
    def create(cls, identity: RouterIdentity, signing_private_key: bytes, published_ms: int,
               addresses: Iterable[RouterAddress], options: Mapping | dict[str, str]) -> Self:
        """A signed RouterInfo; a dict of options is sorted by key as the signature requires."""
        unsigned = cls(identity, published_ms, tuple(addresses), (), _as_mapping(options),
                       bytes(identity.signature_len))
        signature = signing.sign(identity.sig_type, signing_private_key, unsigned.signed_bytes)
        return cls(identity, published_ms, unsigned.addresses, (), unsigned.options, signature)

    def to_bytes(self) -> bytes:
        return self.signed_bytes + self.signature

    def verify(self) -> bool:
        """True if the router's own key signed it; SignatureError only for an unsupported signing type."""
        return self.identity.verify(self.signed_bytes, self.signature)

    @property
    def hash(self) -> bytes:
        return self.identity.hash

    @property
    def caps(self) -> str:
        return self.options.get("caps", "")

    @property
    def netid(self) -> int:
        text = self.options.get("netId")
        if text is None:
            return DEFAULT_NETID
        if not (text.isascii() and text.isdigit()):
            raise ParseError(f"bad netId {text!r}", structure="RouterInfo")
        return int(text)

    @property
    def is_floodfill(self) -> bool:
        return CAP_FLOODFILL in self.caps

    @property
    def router_version(self) -> str | None:
        return self.options.get("router.version")

    @property
    def published_seconds(self) -> float:
        return self.published / 1000

    def addresses_of(self, transport_style: str) -> tuple[RouterAddress, ...]:
        return tuple(a for a in self.addresses if a.transport_style == transport_style)
