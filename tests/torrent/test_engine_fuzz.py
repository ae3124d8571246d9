"""Whatever a peer sends after the handshake, the engine either handles it or raises a ProtocolError (which
ends that peer's connection): no other exception escapes, for a torrent with and without its metadata."""
from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

from hypothesis import given, strategies as st

from apps.torrent import wire
from apps.torrent.bencode import bencode
from apps.torrent.engine import PeerConnection, Torrent, UT_METADATA, I2P_PEX
from apps.torrent.metainfo import create_torrent
from core.clock import FakeClock
from core.data.errors import ProtocolError


class FakeEngine:
    def __init__(self, clock):
        self.peer_id, self.now, self.rng = b"-PY0100-" + b"0" * 12, clock.monotonic, random.Random(1)
        from apps.torrent.ratelimit import TokenBucket
        self.bucket_up, self.bucket_down = TokenBucket(0, self.now), TokenBucket(0, self.now)
        self.our_hash, self.dht, self.session = b"\x00" * 32, None, None

    def metadata_received(self, torrent):
        pass


class Sink:
    def __init__(self):
        self.data = bytearray()

    def write(self, data):
        self.data += data

    async def drain(self):
        pass

    def close(self):
        pass


ints = st.integers(min_value=0, max_value=2 ** 32 - 1)
small = st.integers(min_value=0, max_value=40)
extended = st.one_of(
    st.builds(lambda d: bencode(d), st.dictionaries(st.sampled_from([b"m", b"v", b"metadata_size", b"reqq", b"p"]),
                                                    st.integers(-5, 1 << 30) | st.binary(max_size=8)
                                                    | st.dictionaries(st.sampled_from([b"ut_metadata", b"i2p_pex",
                                                                                       b"i2p_dht"]), small))),
    st.builds(lambda t, p, tail: bencode({b"msg_type": t, b"piece": p}) + tail, st.integers(-1, 3), st.integers(-1, 5),
              st.binary(max_size=40)),
    st.builds(lambda a: bencode({b"added": a}), st.binary(max_size=100)),
    st.binary(max_size=30))
messages = st.lists(st.one_of(
    st.builds(wire.Message, st.sampled_from([-1, 0, 1, 2, 3, 9])),
    st.builds(lambda i: wire.Message(wire.HAVE, index=i), st.one_of(small, ints)),
    st.builds(lambda d: wire.Message(wire.BITFIELD, data=d), st.binary(max_size=6)),
    st.builds(lambda k, i, b, n: wire.Message(k, index=i, begin=b, length=n), st.sampled_from([6, 8]),
              st.one_of(small, ints), st.one_of(st.sampled_from([0, 16384]), ints), st.integers(1, 1 << 17)),
    st.builds(lambda i, b, d: wire.Message(wire.PIECE, index=i, begin=b, length=len(d), data=d),
              st.one_of(small, ints), st.sampled_from([0, 1, 16384, 32768]), st.binary(max_size=64)),
    st.builds(lambda e, d: wire.Message(wire.EXTENDED, ext_id=e, data=d),
              st.sampled_from([0, UT_METADATA, I2P_PEX, 7]), extended)), max_size=12)


async def _feed(with_metadata: bool, folder: Path, sequence) -> None:
    (folder / "f.bin").write_bytes(bytes(range(256)) * 200)
    meta = create_torrent(folder / "f.bin", piece_length=16384)
    clock = FakeClock()
    torrent = Torrent(FakeEngine(clock), meta.info_hash, meta=meta if with_metadata else None,
                      download_dir=folder / "dl", resume_path=folder / "r.resume")
    if with_metadata:
        await torrent._open_storage()
    peer = PeerConnection(torrent, b"\x01" * 32, None, Sink(), outbound=True)
    peer.wire.handshake = wire.Handshake(meta.info_hash, b"-XX0000-" + b"1" * 12)
    peer.am_choking = False
    for msg in sequence:
        try:
            await torrent.on_message(peer, msg)
        except ProtocolError:
            return                                 # the connection would end here
    for task in list(torrent.tasks):
        task.cancel()


@given(st.booleans(), messages)
def test_any_message_sequence_is_handled_or_refused(with_metadata, sequence):
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_feed(with_metadata, Path(tmp), sequence))
