"""CPU per streaming packet on each stage of the end-to-end path one router pair runs for a stream, in process:
the sender's streaming packet, client payload (gzip framing), Data clove in an ECIES Existing Session message,
outbound gateway (fragments, every hop's layer), then the receiver's inbound endpoint (every hop's layer,
reassembly), Existing Session decrypt, client payload and streaming packet parse. The hops' own work and the
transports are left out (bench_transit_i2pd.py and bench_ntcp2.py measure those).

Run: python benchmarks/bench_stream_path.py [--packets 3000] [--hops 2] [--payload 1730]
Prints µs per packet for each stage, their sum, and the implied CPU s per MB of stream data for both ends.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.client.payload import ClientPayload, Compressor  # noqa: E402
from core.clock import FakeClock  # noqa: E402
from core.garlic.manager import SessionKeyManager  # noqa: E402
from core.i2np import Data, Garlic, I2NPMessage, MessageType, TunnelData  # noqa: E402
from core.i2np.garlic import GarlicCloveBlock, GarlicCloveDeliveryInstructions  # noqa: E402
from core.streaming.packet import Packet  # noqa: E402
from core.tunnel.crypto import LayerCipher  # noqa: E402
from core.tunnel.endpoints import InboundTunnel, OutboundTunnel  # noqa: E402
from core.tunnel.fragment import TunnelDelivery, TunnelFragmenter  # noqa: E402


def stage(name: str, fn, items: list, rows: list) -> list:
    out = []
    start = time.process_time()
    for item in items:
        out.append(fn(item))
    rows.append((name, (time.process_time() - start) / len(items) * 1e6))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packets", type=int, default=3000)
    parser.add_argument("--hops", type=int, default=2)
    parser.add_argument("--payload", type=int, default=1730)
    args = parser.parse_args()
    clock = FakeClock()
    alice = SessionKeyManager({4: os.urandom(32)}, clock=clock)
    bob = SessionKeyManager({4: os.urandom(32)}, clock=clock)
    bkey, akey = bob.public_key(), alice.public_key()
    bob.decrypt(alice.encrypt(bkey, []).data)
    alice.decrypt(bob.encrypt(akey, []).data)
    bob.decrypt(alice.encrypt(bkey, []).data)
    keys = [(os.urandom(32), os.urandom(32)) for _ in range(args.hops)]
    outbound = OutboundTunnel(tuple(os.urandom(32) for _ in keys), 1234, keys, clock, os.urandom)
    hops = [LayerCipher(layer, iv) for layer, iv in keys]   # the participants' work, outside the stages timed
    inbound = InboundTunnel(tuple(os.urandom(32) for _ in keys), 1234, os.urandom(32), 99, keys, clock)
    gateway, dest = os.urandom(32), os.urandom(32)
    to_dest = GarlicCloveDeliveryInstructions.to_destination(dest)
    payloads = [os.urandom(args.payload) for _ in range(args.packets)]
    rows: list[tuple[str, float]] = []

    packets = stage("streaming packet build + to_bytes",
                    lambda p: Packet(1, 2, 7, 5, (), 9, 0, payload=p).to_bytes(), payloads, rows)
    compressor = Compressor()   # as a ClientSession keeps per peer
    framed = stage("client payload (gzip framing)", lambda p: ClientPayload(p, 6, 0, 0).to_bytes(compress=compressor),
                   packets, rows)

    def garlic(data: bytes) -> I2NPMessage:
        clove = GarlicCloveBlock(to_dest, I2NPMessage.build(Data(data), 1, 1_750_000_000_000))
        sent = alice.encrypt(bkey, [clove])
        return I2NPMessage.build(Garlic(sent.data), 2, 1_750_000_000_000)
    messages = stage("Data clove + ES encrypt + Garlic", garlic, framed, rows)
    delivery = TunnelDelivery.to_tunnel(gateway, 99)
    sent = stage("outbound gateway (fragment, layers)", lambda m: outbound.send([(m, delivery)]), messages, rows)
    fragmenter = TunnelFragmenter(os.urandom)   # the far inbound gateway's and the hops' work, not timed
    tunnel_messages = []
    for message in messages:
        fragmenter.put_message(message)
        for data in fragmenter.flush():
            for hop in hops:
                data = hop.encrypt(data)
            tunnel_messages.append(TunnelData(1234, data))
    tunnel_rows: list[tuple[str, float]] = []
    delivered = stage("inbound endpoint (layers, reassembly)", inbound.receive, tunnel_messages, tunnel_rows)
    rows.append((tunnel_rows[0][0], tunnel_rows[0][1] * len(tunnel_messages) / len(messages)))
    received = [d.message for ds in delivered for d in ds]
    assert len(received) == len(messages), (len(received), len(messages))
    decrypted = stage("Garlic parse + ES decrypt", lambda m: bob.decrypt(Garlic.parse(m.body).data), received, rows)
    stage("Data parse + client payload parse + packet parse",
          lambda r: Packet.parse(ClientPayload.parse(Data.parse(r.cloves[0].message.body).payload).data),
          decrypted, rows)
    width = max(len(name) for name, _ in rows)
    sent_count = sum(len(events) for events in sent)
    print(f"{args.packets} packets of {args.payload} bytes, {args.hops}-hop tunnels, "
          f"{sent_count / len(messages):.2f} tunnel messages each")
    for name, us in rows:
        print(f"{name:<{width}}  {us:8.1f} µs")
    total = sum(us for _, us in rows)
    print(f"{'total per packet':<{width}}  {total:8.1f} µs  = {total * 1e-6 * 1e6 / args.payload:.3f} CPU s/MB")


if __name__ == "__main__":
    main()
