"""Shared helpers for the SSU2 tests: routers with an SSU2 address and an in-memory handshake."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from core.clock import FakeClock
from core.crypto import signing
from core.crypto.x25519 import X25519Keypair
from core.data.encoding import b64encode
from core.data.identity import RouterIdentity
from core.data.routerinfo import RouterAddress, RouterInfo
from core.transport.ntcp2.blocks import encode_blocks
from core.transport.ssu2.blocks import parse_blocks
from core.transport.ssu2.handshake import Initiator, Responder
from core.transport.ssu2.session import DataPhase

from .test_ntcp2_support import NETID, CountingRng


@dataclass
class SSU2Router:
    static_key: X25519Keypair
    intro_key: bytes
    router_info: RouterInfo
    signing_private: bytes = b""

    def sign(self, data: bytes) -> bytes:
        return signing.sign(7, self.signing_private, data)

    @property
    def router_hash(self) -> bytes:
        return self.router_info.hash


def make_ssu2_router(name: str, clock: FakeClock, *, netid: int = NETID, port: int = 12345,
                     extra_addresses: int = 0, caps: str | None = None, host: str | None = "127.0.0.1",
                     options: dict | None = None) -> SSU2Router:
    rng = CountingRng(name)
    signing_private, signing_public = signing.generate(7, rng)
    static_key = X25519Keypair(rng(32))
    intro_key = rng(32)
    identity = RouterIdentity.create(signing_public_key=signing_public, sig_type=7, crypto_type=4, rng=rng,
                                     public_key=X25519Keypair(rng(32)).public_bytes)
    options = {**({"host": host, "port": str(port)} if host else {}), "s": b64encode(static_key.public_bytes),
               "i": b64encode(intro_key), "v": "2", **({"caps": caps} if caps else {}), **(options or {})}
    addresses = [RouterAddress.create("SSU2", options)] + [   # bulk, to make a RouterInfo bigger than a packet
        RouterAddress.create("NTCP2", {"host": f"127.0.{k}.1", "port": str(1000 + k), "s": b64encode(bytes(32)),
                                       "v": "2", "i": b64encode(bytes(16))}) for k in range(extra_addresses)]
    ri = RouterInfo.create(identity, signing_private, int(clock.time() * 1000), addresses,
                           {"netId": str(netid), "caps": "LR"})
    return SSU2Router(static_key, intro_key, ri, signing_private)


ALICE_ADDR = ("127.0.0.1", 20001)
BOB_ADDR = ("127.0.0.1", 20002)


def initiator(alice: SSU2Router, bob: SSU2Router, clock, *, token: int = 0, rng=None, **kw) -> Initiator:
    return Initiator(static_key=alice.static_key, router_info=alice.router_info.to_bytes(), intro_key=alice.intro_key,
                     peer_router_hash=bob.router_hash, peer_static_key=bob.static_key.public_bytes,
                     peer_intro_key=bob.intro_key, netid=NETID, clock=clock, rng=rng or CountingRng("alice-hs"),
                     token=token, **kw)


def responder(bob: SSU2Router, clock, rng=None, **kw) -> Responder:
    return Responder(static_key=bob.static_key, intro_key=bob.intro_key, netid=NETID, clock=clock,
                     rng=rng or CountingRng("bob-hs"), **kw)


def handshake(alice: SSU2Router, bob: SSU2Router, clock):
    """Token Request through Session Confirmed in memory; returns (Alice's DataPhase, Bob's DataPhase, transcript)."""
    ini = initiator(alice, bob, clock)
    resp = responder(bob, clock)
    transcript = []
    to_bob = [ini.first_packet()]
    result_b = None
    for _ in range(4):
        to_alice = []
        for packet in to_bob:
            transcript.append(("a", packet))
            replies, res = resp.receive(packet, ALICE_ADDR)
            to_alice += replies
            result_b = result_b or res
        if result_b is not None:
            break
        to_bob = []
        for packet in to_alice:
            transcript.append(("b", packet))
            to_bob += ini.receive(packet)
    assert ini.result is not None and result_b is not None
    a = DataPhase(ini.result, intro_key=alice.intro_key, clock=clock, rng=CountingRng("a-data"),
                  handshake_packets=ini.last_sent)
    b = DataPhase(result_b, intro_key=bob.intro_key, clock=clock, rng=CountingRng("b-data"))
    return a, b, transcript


def wire(*blocks):
    """Blocks as the peer reads them."""
    parsed = parse_blocks(encode_blocks(blocks))
    return parsed[0] if len(parsed) == 1 else parsed


def only(actions, kind, peer=None):
    """The one action of `kind` (to `peer`) among what a sans-I/O peer test or relay role returned."""
    found = [a for a in actions if isinstance(a, kind) and (peer is None or a.peer == peer)]
    assert len(found) == 1, actions
    return found[0]


async def until(predicate, tries: int = 500, step: float = 0.01):
    """Wait, bounded, for `predicate`."""
    for _ in range(tries):
        if predicate():
            return
        await asyncio.sleep(step)
    raise TimeoutError
