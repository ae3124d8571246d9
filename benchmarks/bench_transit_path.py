#!/usr/bin/env python3
"""A participant hop's whole relay path in one process, without sockets: CPU per 1,000 TunnelData messages.

NTCP2 frames from the previous hop (several I2NP blocks each, as a peer packs them) are fed to a real
NTCP2Connection through an in-memory reader; its blocks go through the TransportManager and TunnelService of
the hop as on a router, and the frames it writes to the next hop's connection are collected and opened again
(outside the measured time) to check that every message came out, in order. What it leaves out of the
bench_transit_i2pd figure: the socket reads and writes and the event loop's polling.

    python benchmarks/bench_transit_path.py [--messages 30000] [--per-frame 15] [--read 65536] [--profile FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_tunnel import make_router  # noqa: E402
from core.clock import SystemClock  # noqa: E402
from core.i2np import I2NPMessage, MessageType, TunnelData  # noqa: E402
from core.transport.manager import TransportManager  # noqa: E402
from core.transport.ntcp2.blocks import I2NP, encode_i2np_block  # noqa: E402
from core.transport.ntcp2.driver import DriverSettings, NTCP2Connection  # noqa: E402
from core.transport.ntcp2.handshake import HandshakeResult  # noqa: E402
from core.transport.ntcp2.session import DataPhase, derive_data_phase_keys  # noqa: E402
from core.tunnel.build import create_build  # noqa: E402
from core.tunnel.service import TunnelService, TunnelSettings  # noqa: E402
from tests.tunnel.helpers import reveal_for_second_hop  # noqa: E402


class _Transport:
    """The part of an asyncio transport the connection asks about."""

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


class _Writer:
    """Collects what the connection writes."""

    def __init__(self):
        self.transport = _Transport()
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def get_extra_info(self, name: str, default=None):
        return default

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


def _session(peer: bytes, reader: asyncio.StreamReader, writer: _Writer,
             initiator: bool) -> tuple[NTCP2Connection, DataPhase]:
    """Our end of an established session with `peer` and the peer's DataPhase facing it."""
    ck, h = os.urandom(32), os.urandom(32)
    ours, theirs = derive_data_phase_keys(ck, h, initiator), derive_data_phase_keys(ck, h, not initiator)
    result = HandshakeResult(initiator, ours, os.urandom(32), peer, None, 0, None, 0.0, h)
    conn = NTCP2Connection(reader, writer, result, inbound=not initiator, clock=SystemClock(), rng=os.urandom,
                           settings=DriverSettings(send_datetime=False), bytes_sent=0, bytes_received=0)
    return conn, DataPhase(theirs, frame_target=DriverSettings().frame_target)


async def run(count: int, per_frame: int, read_size: int, profile: str) -> None:
    clock = SystemClock()
    hop_identity, hop_static = make_router()
    previous, following = os.urandom(32), os.urandom(32)

    class NetDb:
        def get_router_info(self, peer):
            return None

    service: TunnelService | None = None

    def on_message(peer: bytes, message: I2NPMessage) -> None:
        assert service is not None
        service.handle_message(peer, message)

    transports = TransportManager(router_hash=hop_identity.hash, static_key=None, iv=bytes(16), netid=99,
                                  router_info=lambda: b"", lookup_router_info=lambda peer: None,
                                  on_message=on_message, on_router_info=lambda *a: None, clock=clock)
    service = TunnelService(router_hash=hop_identity.hash, static_key=hop_static, send=transports.send,
                            netdb=NetDb(), clock=clock, settings=TunnelSettings(ip_restriction=0),
                            connected=transports.is_connected, send_raw=transports.send_raw)
    transports.relay = service.relay_tunnel_data

    # the hop joins as the second hop of a 2-hop inbound tunnel: a plain participant
    request = create_build([make_router()[0], hop_identity], inbound=True, our_hash=os.urandom(32), clock=clock,
                           rng=os.urandom)
    service.transit.handle_build(I2NPMessage(MessageType.SHORT_TUNNEL_BUILD, 1, 0, reveal_for_second_hop(request)),
                                 previous)
    tunnel_id = request.pending.hops[1].receive_tunnel_id
    tunnel = service.transit._tunnels[tunnel_id]
    tunnel.next_hash = following

    in_reader, in_writer, out_writer = asyncio.StreamReader(), _Writer(), _Writer()
    conn_in, previous_phase = _session(previous, in_reader, in_writer, initiator=False)
    conn_out, following_phase = _session(following, asyncio.StreamReader(), out_writer, initiator=True)
    transports._register(conn_in)
    transports._register(conn_out)
    conn_in._start(b"", b"")

    expiration = int(time.time()) + 60
    payloads = [os.urandom(1024) for _ in range(64)]
    blocks = [encode_i2np_block(MessageType.TUNNEL_DATA, i + 1, expiration,
                                tunnel_id.to_bytes(4, "big") + payloads[i % 64][:16] + i.to_bytes(16, "big")
                                + payloads[i % 64][32:]) for i in range(count)]
    wire = [previous_phase.pack_encoded(blocks[i:i + per_frame]) for i in range(0, count, per_frame)]
    chunk = read_size
    stream = b"".join(wire)
    reads = [stream[i:i + chunk] for i in range(0, len(stream), chunk)]

    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    for data in reads:
        in_reader.feed_data(data)
        for _ in range(4):  # the read loop's turn, then the outbox flush
            await asyncio.sleep(0)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall

    out_items = [item for items in following_phase.feed(b"".join(out_writer.chunks)) for item in items]
    out = [block for block in out_items if block.TYPE == I2NP]
    frames = following_phase.frames_received
    # the IV filter is a Bloom filter: now and then it takes a new IV for one seen (tunnel-implementation.md)
    assert len(out) == count - service.transit.stats.data_replayed, f"{len(out)} of {count} messages came out"
    assert all(m.msg_type == MessageType.TUNNEL_DATA and len(m.body) == TunnelData.SIZE for m in out)
    print(f"{count} TunnelData messages in {len(wire)} frames ({per_frame} a frame, {len(reads)} reads), out in "
          f"{frames} frames: "
          f"{count / wall:,.0f} msg/s, {1000 * cpu / count:.4f} CPU s per 1000 messages"
          f"{f' ({count - len(out)} taken for replays)' if len(out) < count else ''}")
    crypto = crypto_floor(count, [len(frame) - 2 for frame in wire])
    print(f"of which the crypto calls alone (4 AES calls a message, ChaCha20-Poly1305 and SipHash per frame both "
          f"ways): {1000 * crypto / count:.4f} CPU s per 1000 messages = {100 * crypto / cpu:.0f}%")
    await transports.stop()


def crypto_floor(count: int, frame_sizes: list[int]) -> float:
    """CPU seconds of the path's crypto calls alone, in a bare loop: the floor Python cannot go under."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from core.crypto.chacha import ChaChaPoly
    from core.crypto.siphash import siphash24
    iv_ecb = Cipher(algorithms.AES(os.urandom(32)), modes.ECB()).encryptor()
    steer = Cipher(algorithms.AES(os.urandom(32)), modes.CBC(bytes(16))).decryptor()
    layer = Cipher(algorithms.AES(os.urandom(32)), modes.CBC(bytes(16))).encryptor()
    aead, sip_key = ChaChaPoly(os.urandom(32)), os.urandom(16)
    block, pair, data = os.urandom(16), os.urandom(32), os.urandom(1024)
    sealed = [aead.encrypt(n, os.urandom(size - 16)) for n, size in enumerate(frame_sizes)]
    cpu = time.process_time()
    for _ in range(count):
        iv_ecb.update(block)
        steer.update(pair)
        layer.update(data)
        iv_ecb.update(block)
    for n, ciphertext in enumerate(sealed):
        aead.encrypt(n, aead.decrypt(n, ciphertext))   # the frame in, then one as big out
        siphash24(sip_key, block[:8])
        siphash24(sip_key, block[:8])
    return time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=30000)
    parser.add_argument("--per-frame", type=int, default=15)
    parser.add_argument("--read", type=int, default=65536, help="bytes a read of the socket brings")
    parser.add_argument("--profile", default="", help="cProfile the measured part, stats to this file")
    args = parser.parse_args()
    asyncio.run(run(args.messages, args.per_frame, args.read, args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
