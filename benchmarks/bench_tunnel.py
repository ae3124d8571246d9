"""Tunnel message rates through one hop (sans-I/O processing only) and build record costs.

Run: python benchmarks/bench_tunnel.py [messages]
Prints messages per second and CPU seconds per 1000 messages for each role.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.clock import SystemClock  # noqa: E402
from core.crypto import signing, x25519  # noqa: E402
from core.data.identity import RouterIdentity  # noqa: E402
from core.i2np import I2NPMessage, MessageType, TunnelData, TunnelGateway  # noqa: E402
from core.tunnel.build import create_build  # noqa: E402
from core.tunnel.crypto import CreatorLayers, LayerCipher  # noqa: E402
from core.tunnel.fragment import TunnelDelivery, TunnelFragmenter  # noqa: E402
from core.tunnel.participant import TransitManager  # noqa: E402
from tests.tunnel.helpers import reveal_for_second_hop  # noqa: E402


def make_router():
    static = x25519.X25519Keypair.generate()
    _, signing_public = signing.generate(7)
    identity = RouterIdentity.create(signing_public_key=signing_public, sig_type=7, crypto_type=4, rng=os.urandom,
                                     public_key=static.public_bytes)
    return identity, static


def measure(label: str, work, count: int) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<52} {count / wall:>10,.0f} msg/s   {cpu / count * 1000:.4f} CPU s per 1000")


def join(manager: TransitManager, creator_hash: bytes, hop_identity, inbound: bool):
    request = create_build([hop_identity], inbound=inbound, our_hash=creator_hash, clock=SystemClock(),
                           rng=os.urandom, reply_gateway=os.urandom(32), reply_tunnel_id=1)
    manager.handle_build(I2NPMessage(request.message.TYPE, request.msg_id, 0, request.message.to_bytes()))
    return request.pending


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    clock = SystemClock()
    hop_identity, hop_static = make_router()
    creator_hash = os.urandom(32)
    previous = os.urandom(32)

    # participant and outbound endpoint: TunnelData bodies in, events out
    manager = TransitManager(hop_identity.hash, hop_static, clock, os.urandom)
    pending = join(manager, creator_hash, hop_identity, inbound=True)  # makes the hop an inbound gateway
    participant_request = create_build([make_router()[0], hop_identity], inbound=True, our_hash=creator_hash,
                                       clock=clock, rng=os.urandom)
    # hand the hop its record directly: the second hop of a 2-hop inbound tunnel is a plain participant
    manager.handle_build(I2NPMessage(MessageType.SHORT_TUNNEL_BUILD, 1, 0,
                                     reveal_for_second_hop(participant_request)), previous)
    participant_id = participant_request.pending.hops[1].receive_tunnel_id
    bodies = [TunnelData(participant_id, os.urandom(1024)).to_bytes() for _ in range(count)]

    def run_participant():
        forwarded = 0
        for body in bodies:
            forwarded += len(manager.handle_tunnel_data(TunnelData.parse(body), previous))
        assert forwarded == count, forwarded

    measure("participant: TunnelData in, TunnelData out", run_participant, count)

    outbound = join(manager, creator_hash, hop_identity, inbound=False)
    endpoint_id = outbound.hops[0].receive_tunnel_id
    fragmenter = TunnelFragmenter(os.urandom)
    layers = CreatorLayers(outbound.layer_keys)
    target = TunnelDelivery.to_router(os.urandom(32))
    for i in range(count):
        fragmenter.put_message(I2NPMessage(MessageType.DATA, i, 0, b"\x00\x00\x03\xa0" + bytes(928)), target)
    endpoint_bodies = [TunnelData(endpoint_id, layers.remove(p)).to_bytes() for p in fragmenter.flush()]

    def run_endpoint():
        routed = 0
        for body in endpoint_bodies:
            routed += len(manager.handle_tunnel_data(TunnelData.parse(body), creator_hash))
        assert routed == count, routed

    measure("outbound endpoint: decrypt, reassemble, route (1 KB msgs)", run_endpoint, len(endpoint_bodies))

    gateway_id = pending.hops[0].receive_tunnel_id
    small = TunnelGateway(gateway_id, I2NPMessage(MessageType.DATA, 7, 0, b"\x00\x00\x03\x00" + bytes(768)))

    def run_gateway():
        sent = 0
        for _ in range(count):
            sent += len(manager.handle_tunnel_gateway(small))
        assert sent == count, sent

    measure("inbound gateway: fragment, encrypt (784-byte msgs)", run_gateway, count)

    layer = LayerCipher(os.urandom(32), os.urandom(32))
    payload = os.urandom(1024)
    measure("layer encryption only (one hop)", lambda: [layer.encrypt(payload) for _ in range(count)], count)
    measure("layer decryption only (one hop)", lambda: [layer.decrypt(payload) for _ in range(count)], count)

    # builds: a hop answering short records
    hop_ids = [make_router() for _ in range(3)]
    builds = [create_build([h[0] for h in hop_ids], inbound=False, our_hash=creator_hash, clock=clock,
                           rng=os.urandom, reply_gateway=os.urandom(32), reply_tunnel_id=5) for _ in range(300)]
    first = TransitManager(hop_ids[0][0].hash, hop_ids[0][1], clock, os.urandom)
    messages = [I2NPMessage(b.message.TYPE, 1, 0, b.message.to_bytes()) for b in builds]
    measure("hop: handle a ShortTunnelBuild (decrypt, decide, reply)",
            lambda: [first.handle_build(m) for m in messages], len(messages))
    assert len(first) == len(messages)
    measure("creator: create a 3-hop ShortTunnelBuild",
            lambda: [create_build([h[0] for h in hop_ids], inbound=True, our_hash=creator_hash, clock=clock,
                                  rng=os.urandom) for _ in range(300)], 300)


if __name__ == "__main__":
    main()
