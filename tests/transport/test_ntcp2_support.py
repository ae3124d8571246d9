"""Shared helpers for the NTCP2 tests: deterministic routers, RNGs and in-memory handshakes."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from core.clock import FakeClock
from core.crypto import signing
from core.crypto.x25519 import X25519Keypair
from core.data.encoding import b64encode
from core.data.identity import RouterIdentity
from core.data.routerinfo import RouterAddress, RouterInfo
from core.transport.ntcp2.handshake import Initiator, ReplayCache, Responder

NETID = 42


class CountingRng:
    """A deterministic RNG: SHA-256 in counter mode over a seed."""

    def __init__(self, seed: bytes | str = b"seed"):
        self.seed = seed.encode() if isinstance(seed, str) else seed
        self.counter = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.seed + self.counter.to_bytes(8, "big")).digest()
            self.counter += 1
        return out[:n]


@dataclass
class SimRouter:
    static_key: X25519Keypair
    iv: bytes
    router_info: RouterInfo
    signing_private_key: bytes

    @property
    def router_hash(self) -> bytes:
        return self.router_info.hash

    @property
    def router_info_bytes(self) -> bytes:
        return self.router_info.to_bytes()


def make_router(name: str, clock: FakeClock, *, netid: int = NETID, published_offset: float = 0.0,
                static_key_in_ri: bytes | None = None, version: str = "2", host: str = "127.0.0.1",
                port: int = 12345) -> SimRouter:
    rng = CountingRng(name)
    signing_private, signing_public = signing.generate(7, rng)
    static_key = X25519Keypair(rng(32))
    iv = rng(16)
    identity = RouterIdentity.create(signing_public_key=signing_public, sig_type=7, crypto_type=4, rng=rng,
                                     public_key=X25519Keypair(rng(32)).public_bytes)
    s = static_key_in_ri if static_key_in_ri is not None else static_key.public_bytes
    address = RouterAddress.create("NTCP2", {"host": host, "port": str(port), "s": b64encode(s),
                                             "i": b64encode(iv), "v": version})
    published_ms = int((clock.time() + published_offset) * 1000)
    info = RouterInfo.create(identity, signing_private, published_ms, [address],
                             {"netId": str(netid), "caps": "XR", "router.version": "0.9.57"})
    return SimRouter(static_key, iv, info, signing_private)


def make_pair(clock: FakeClock, alice: SimRouter, bob: SimRouter, *, seed: str = "run",
              replay_cache: ReplayCache | None = None, bob_netid: int = NETID, alice_netid: int = NETID,
              **initiator_kwargs) -> tuple[Initiator, Responder]:
    initiator = Initiator(alice.static_key, alice.router_info_bytes, bob.router_hash,
                          bob.static_key.public_bytes, bob.iv, netid=alice_netid, clock=clock,
                          rng=CountingRng(seed + "-alice"), **initiator_kwargs)
    responder = Responder(bob.static_key, bob.router_hash, bob.iv, netid=bob_netid, clock=clock,
                          rng=CountingRng(seed + "-bob"), replay_cache=replay_cache if replay_cache is not None else ReplayCache(clock))
    return initiator, responder


def run_handshake(initiator: Initiator, responder: Responder):
    """SessionRequest, SessionCreated, SessionConfirmed in one go; returns (alice_result, bob_result)."""
    responder.feed(initiator.data_to_send())
    initiator.feed(responder.data_to_send())
    responder.feed(initiator.data_to_send())
    return initiator.result, responder.result
