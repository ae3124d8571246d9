"""Shared builders for garlic tests: deterministic RNGs, two managers on one fake clock, cloves."""
from __future__ import annotations

import hashlib

from core.clock import FakeClock
from core.garlic.manager import SessionKeyManager
from core.garlic.session import RatchetConfig
from core.i2np.garlic import GarlicCloveBlock, GarlicCloveDeliveryInstructions
from core.i2np.header import I2NPMessage

DATA_MESSAGE = 20


class CountingRng:
    """A deterministic RNG: SHA-256 of a seed and a counter."""

    def __init__(self, seed: bytes):
        self.seed = seed
        self.counter = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self.counter += 1
            out += hashlib.sha256(self.seed + self.counter.to_bytes(8, "big")).digest()
        return out[:n]


def clove(body: bytes, msg_id: int = 1) -> GarlicCloveBlock:
    return GarlicCloveBlock(GarlicCloveDeliveryInstructions.local(),
                            I2NPMessage(DATA_MESSAGE, msg_id, 1_750_000_060_000, body))


def bodies(received) -> list[bytes]:
    return [c.message.body for c in received.cloves]


class Pair:
    """Alice and Bob, each a SessionKeyManager, on one FakeClock."""

    def __init__(self, *, alice_types=(4,), bob_types=(4,), config: RatchetConfig = RatchetConfig(),
                 seed: bytes = b"pair"):
        self.clock = FakeClock()
        rng = CountingRng(seed)
        self.alice = SessionKeyManager({t: rng(32) for t in alice_types}, clock=self.clock,
                                       rng=CountingRng(seed + b"a"), config=config)
        self.bob = SessionKeyManager({t: rng(32) for t in bob_types}, clock=self.clock,
                                     rng=CountingRng(seed + b"b"), config=config)

    def a_key(self, crypto_type: int = 4) -> bytes:
        return self.alice.public_key(crypto_type)

    def b_key(self, crypto_type: int = 4) -> bytes:
        return self.bob.public_key(crypto_type)

    def handshake(self, crypto_type: int = 4):
        """NS, NSR, then Alice's first ES: both sides established."""
        ns = self.alice.encrypt(self.b_key(crypto_type), [clove(b"ns")], crypto_type=crypto_type)
        assert self.bob.decrypt(ns.data) is not None
        nsr = self.bob.encrypt(self.a_key(crypto_type), [clove(b"nsr")])
        assert self.alice.decrypt(nsr.data) is not None
        es = self.alice.encrypt(self.b_key(crypto_type), [clove(b"es")])
        assert self.bob.decrypt(es.data) is not None
        return ns, nsr, es
