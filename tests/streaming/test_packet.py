"""Streaming packet codec: layout, options, signatures (plain and offline), strictness, fuzzing."""
import struct

import pytest
from hypothesis import given, strategies as st

from core.data.errors import ParseError, ProtocolError
from core.data.privatekeys import PrivateKeys
from core.streaming import packet as pk
from core.streaming.packet import Packet, hash_to_nacks

from .conftest import seeded_rng

KEYS = PrivateKeys.generate(rng=seeded_rng(7))
OFFLINE_KEYS = KEYS.with_offline_key(expires=2_000_000_000, rng=seeded_rng(8))
ECDSA_KEYS = PrivateKeys.generate(sig_type=1, rng=seeded_rng(9))
NOW = 1_750_000_000.0


def test_plain_ack_layout():
    data = struct.pack(">IIIIB", 1, 2, 0, 5, 2) + struct.pack(">II", 3, 4) + bytes([9]) + b"\x00\x00" + b"\x00\x00"
    p = Packet.parse(data)
    assert (p.send_stream_id, p.receive_stream_id, p.sequence_num, p.ack_through) == (1, 2, 0, 5)
    assert p.nacks == (3, 4) and p.resend_delay == 9 and p.flags == 0 and p.payload == b""
    assert p.is_plain_ack and p.to_bytes() == data
    assert len(Packet(1, 2).to_bytes()) == pk.HEADER_LEN


def test_options_in_spec_order():
    p = Packet(1, 2, 3, 4, flags=pk.DELAY_REQUESTED | pk.FROM_INCLUDED | pk.MAX_PACKET_SIZE_INCLUDED,
               delay_requested=61000, from_destination=KEYS.destination, max_packet_size=1812, payload=b"xy")
    data = p.to_bytes()
    dest = KEYS.destination.to_bytes()
    options = (61000).to_bytes(2, "big") + dest + (1812).to_bytes(2, "big")
    assert data[17:] == b"\x00" + p.flags.to_bytes(2, "big") + len(options).to_bytes(2, "big") + options + b"xy"
    assert Packet.parse(data) == p and p.is_choke


def test_syn_signature_covers_everything_with_zeroed_field():
    syn = Packet(0, 77, 0, 0, hash_to_nacks(bytes(range(32))), 9,
                 pk.SYNCHRONIZE | pk.FROM_INCLUDED | pk.MAX_PACKET_SIZE_INCLUDED | pk.NO_ACK,
                 from_destination=KEYS.destination, max_packet_size=1730, payload=b"GET /").signed(KEYS)
    data = syn.to_bytes()
    parsed = Packet.parse(data)
    assert parsed == syn and parsed.to_bytes() == data
    assert parsed.verify(now=NOW) and parsed.replay_hash == bytes(range(32))
    sig_at = data.index(syn.signature)
    assert syn.signed_data() == data[:sig_at] + bytes(64) + data[sig_at + 64:]
    assert KEYS.destination.verify(syn.signed_data(), syn.signature)
    for offset in (0, 12, 20, len(data) - 1):   # header, flags, payload
        tampered = bytearray(data)
        tampered[offset] ^= 1
        try:
            assert not Packet.parse(bytes(tampered)).verify(now=NOW)
        except ProtocolError:
            pass


def test_close_without_from_uses_peer_for_signature_length():
    close = Packet(5, 6, 7, 8, flags=pk.CLOSE).signed(ECDSA_KEYS)
    assert len(close.signature) == 64
    data = close.to_bytes()
    assert Packet.parse(data, peer=ECDSA_KEYS.destination).verify(ECDSA_KEYS.destination)
    assert Packet.parse(data).signature == close.signature   # inferred from the remaining option bytes
    assert not Packet.parse(data).verify()                  # but nothing to verify it with
    assert not Packet.parse(data, peer=ECDSA_KEYS.destination).verify(KEYS.destination)


def test_offline_signature():
    close = Packet(5, 6, 7, 8, flags=pk.CLOSE).signed(OFFLINE_KEYS)
    assert close.has(pk.OFFLINE_SIGNATURE) and close.offline_signature is not None
    data = close.to_bytes()
    with pytest.raises(ParseError):
        Packet.parse(data)   # the offline block's signature length needs the destination
    parsed = Packet.parse(data, peer=KEYS.destination)
    assert parsed == close and parsed.to_bytes() == data
    assert parsed.verify(KEYS.destination, now=NOW)
    assert not parsed.verify(KEYS.destination, now=2_000_000_001.0)   # transient key expired
    assert not parsed.verify(ECDSA_KEYS.destination, now=NOW)
    syn = Packet(0, 6, flags=pk.SYNCHRONIZE | pk.FROM_INCLUDED, from_destination=KEYS.destination).signed(OFFLINE_KEYS)
    assert Packet.parse(syn.to_bytes()).verify(now=NOW)
    forged = PrivateKeys.generate(rng=seeded_rng(11)).with_offline_key(expires=2_000_000_000, rng=seeded_rng(12))
    fake = Packet(0, 6, flags=pk.SYNCHRONIZE | pk.FROM_INCLUDED, from_destination=KEYS.destination).signed(forged)
    assert not Packet.parse(fake.to_bytes()).verify(now=NOW)


def test_strict_parsing():
    good = Packet(1, 2, flags=pk.MAX_PACKET_SIZE_INCLUDED, max_packet_size=1730).to_bytes()
    with pytest.raises(ParseError):
        Packet.parse(good[:21])
    longer_options = good[:20] + b"\x00\x03" + good[22:] + b"\x00"
    with pytest.raises(ParseError):
        Packet.parse(longer_options)    # option bytes left over
    with pytest.raises(ParseError):
        Packet.parse(good[:20] + b"\x00\x01" + good[22:])   # option cut short
    with pytest.raises(ParseError):
        Packet.parse(struct.pack(">IIIIB", 1, 2, 3, 4, 3) + b"\x00" * 8)  # NACKs truncated
    with pytest.raises(ParseError):
        Packet(1, 2, flags=pk.DELAY_REQUESTED)   # flag without its option
    with pytest.raises(ParseError):
        Packet(1, 2, delay_requested=5)          # option without its flag
    with pytest.raises(ParseError):
        Packet(1 << 32, 2)


destinations = st.sampled_from([None, KEYS.destination, ECDSA_KEYS.destination])


@st.composite
def packets(draw):
    from_dest = draw(destinations)
    extra = draw(st.integers(0, 0xFFFF)) & ~pk.OPTION_FLAGS
    delay = draw(st.none() | st.integers(0, 0xFFFF))
    size = draw(st.none() | st.integers(0, 0xFFFF))
    flags = extra | (pk.FROM_INCLUDED if from_dest else 0) | (pk.DELAY_REQUESTED if delay is not None else 0) \
        | (pk.MAX_PACKET_SIZE_INCLUDED if size is not None else 0)
    p = Packet(draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
               draw(st.integers(0, 2**32 - 1)), tuple(draw(st.lists(st.integers(0, 2**32 - 1), max_size=12))),
               draw(st.integers(0, 255)), flags, delay_requested=delay, from_destination=from_dest,
               max_packet_size=size, payload=draw(st.binary(max_size=100)))
    signer = draw(st.sampled_from([None, KEYS, ECDSA_KEYS, OFFLINE_KEYS]))
    if signer is OFFLINE_KEYS and from_dest is None:
        signer = None   # an offline block without FROM cannot be parsed alone
    if signer is not None:
        p = p.signed(signer)
    return p, signer


@given(packets())
def test_round_trip(case):
    p, signer = case
    data = p.to_bytes()
    peer = signer.destination if signer is not None else None
    parsed = Packet.parse(data, peer=peer)
    assert parsed == p and parsed.to_bytes() == data
    if signer is not None:
        assert parsed.verify(peer, now=NOW) == (p.from_destination in (None, signer.destination))


@given(st.binary(max_size=600), destinations)
def test_random_bytes_raise_only_protocol_errors(data, peer):
    try:
        Packet.parse(data, peer=peer).to_bytes()
    except ProtocolError:
        pass


SAMPLES = [p.to_bytes() for p in (
    Packet(0, 9, flags=pk.SYNCHRONIZE | pk.FROM_INCLUDED | pk.MAX_PACKET_SIZE_INCLUDED,
           from_destination=KEYS.destination, max_packet_size=1730, payload=b"hello").signed(KEYS),
    Packet(3, 4, 5, 6, (1, 2), flags=pk.CLOSE).signed(OFFLINE_KEYS),
    Packet(3, 4, 5, 6, flags=pk.DELAY_REQUESTED, delay_requested=0, payload=b"data"),
)]


@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6),
       st.integers(0, 600))
def test_mutated_packets_raise_only_protocol_errors(sample, flips, cut):
    data = bytearray(sample)
    for index, value in flips:
        data[index % len(data)] = value
    data = bytes(data[:max(cut, len(data) - cut)])
    try:
        parsed = Packet.parse(data, peer=KEYS.destination)
        parsed.verify(KEYS.destination, now=NOW)
    except ProtocolError:
        pass
