"""The router's own keys in the data dir: created on first start, loaded after (DESIGN.md "The data dir")."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.crypto.x25519 import X25519Keypair
from core.data.errors import ParseError
from core.data.identity import RouterIdentity
from core.data.keytypes import CRYPTO_X25519, SIG_ED25519
from core.data.privatekeys import PrivateKeys
from core.fsutil import atomic_write

ROUTER_KEYS = "router.keys"      # PrivateKeys format, as i2pd writes it
NTCP2_KEYS = "ntcp2.keys"        # NTCP2 static X25519 private key (32) + IV "i" (16)
SSU2_KEYS = "ssu2.keys"          # SSU2 static X25519 private key (32) + intro key "i" (32)
PRIVATE = 0o600


@dataclass(frozen=True, slots=True)
class RouterKeys:
    keys: PrivateKeys
    identity: RouterIdentity
    ntcp2_static: X25519Keypair
    ntcp2_iv: bytes
    ssu2_static: X25519Keypair
    ssu2_intro: bytes

    @property
    def hash(self) -> bytes:
        return self.identity.hash

    def sign(self, data: bytes) -> bytes:
        return self.keys.sign(data)

    @property
    def signing_private_key(self) -> bytes:
        return self.keys.signing_private_key


def load_or_create_router_keys(datadir: Path, rng=os.urandom) -> tuple[RouterKeys, bool]:
    """Returns the router's keys and whether they were created now. Private files are written 0600."""
    datadir.mkdir(parents=True, exist_ok=True)
    keys_path = datadir / ROUTER_KEYS
    ntcp2_path = datadir / NTCP2_KEYS
    created = False
    if keys_path.exists():
        keys = PrivateKeys.load(keys_path)
    else:
        keys = PrivateKeys.generate(sig_type=SIG_ED25519, crypto_type=CRYPTO_X25519, rng=rng)
        keys.save(keys_path)
        created = True
    if ntcp2_path.exists():
        raw = ntcp2_path.read_bytes()
        if len(raw) != 48:
            raise ParseError(f"{ntcp2_path}: expected 48 bytes, found {len(raw)}", structure="ntcp2.keys")
    else:
        raw = rng(32) + rng(16)
        atomic_write(ntcp2_path, raw, PRIVATE)
    ssu2 = _load_or_create(datadir / SSU2_KEYS, 64, rng)
    return RouterKeys(keys, keys.router_identity, X25519Keypair(raw[:32]), raw[32:], X25519Keypair(ssu2[:32]),
                      ssu2[32:]), created


def _load_or_create(path: Path, size: int, rng) -> bytes:
    if path.exists():
        raw = path.read_bytes()
        if len(raw) != size:
            raise ParseError(f"{path}: expected {size} bytes, found {len(raw)}", structure=path.name)
        return raw
    raw = rng(size)
    atomic_write(path, raw, PRIVATE)
    return raw
