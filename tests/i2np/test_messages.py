"""Typed I2NP messages: layouts from i2np.rst, round trips, limits."""
import gzip
import os
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.data.errors import ParseError
from core.data.reader import Reader
from core.data.leaseset import Lease2, LeaseSet2
from core.data.privatekeys import PrivateKeys
from core.data.routerinfo import RouterInfo
from core.i2np import (MAX_ROUTER_INFO_SIZE, MESSAGE_CLASSES, Data, DatabaseLookup, DatabaseSearchReply,
                       DatabaseStore, DeliveryStatus, Garlic, I2NPMessage, LookupType, MessageType,
                       OutboundTunnelBuildReply, ReplyEncryption, ShortTunnelBuild, StoreType, TunnelBuild,
                       TunnelBuildReply, TunnelData, TunnelGateway, VariableTunnelBuild, VariableTunnelBuildReply,
                       compress_router_info, decode_standard, decompress_router_info, encode_standard, parse_message,
                       parse_payload)

from .strategies import ALL_MESSAGES, typed_messages

KEY = bytes(range(32))
FROM = bytes(range(32, 64))
GATEWAY = bytes(range(64, 96))


def test_registry_covers_every_spec_type():
    assert set(MESSAGE_CLASSES) == {1, 2, 3, 10, 11, 18, 19, 20, 21, 22, 23, 24, 25, 26}
    assert set(MESSAGE_CLASSES) == {int(t) for t in MessageType}
    assert set(MESSAGE_CLASSES.values()) == set(ALL_MESSAGES)


@pytest.mark.parametrize("msg_type", [0, 4, 9, 12, 17, 27, 224, 254, 255])
def test_unknown_types_rejected(msg_type):
    with pytest.raises(ParseError, match="unknown"):
        parse_message(msg_type, b"\x00" * 40)


@given(typed_messages)
def test_every_message_round_trips(msg):
    wire = msg.to_bytes()
    assert type(msg).parse(wire) == msg
    assert parse_message(msg.TYPE, wire) == msg
    assert parse_message(msg.TYPE, wire).to_bytes() == wire
    enveloped = I2NPMessage.build(msg, 1234, 5678)
    assert parse_payload(decode_standard(encode_standard(enveloped))) == msg


@given(typed_messages)
def test_read_stops_at_the_message_end(msg):
    # messages with a self-delimiting body leave the rest of the reader alone
    wire = msg.to_bytes()
    if isinstance(msg, DatabaseStore) and not msg.is_router_info:
        return  # a LeaseSet payload runs to the end of the body
    r = Reader(wire + b"\xAA", "test")
    assert type(msg).read(r) == msg
    assert r.rest() == b"\xAA"
    with pytest.raises(ParseError):
        type(msg).parse(wire + b"\xAA")


# DatabaseStore (type 1)

def test_database_store_router_info_layout_without_token():
    ri = b"router info bytes " * 40
    dsm = DatabaseStore.for_router_info(KEY, ri)
    wire = dsm.to_bytes()
    assert wire[:32] == KEY
    assert wire[32] == 0
    assert wire[33:37] == bytes(4)
    size = int.from_bytes(wire[37:39], "big")
    assert wire[39:] == dsm.data and size == len(dsm.data)
    assert dsm.data[:10] == bytes.fromhex("1F8B08000000000002FF")  # i2np.rst DatabaseStore notes
    assert gzip.decompress(dsm.data) == ri
    assert DatabaseStore.parse(wire).router_info_bytes() == ri


def test_database_store_lease_set2_layout_with_token():
    ls2 = os.urandom(300)
    dsm = DatabaseStore(KEY, StoreType.LEASE_SET2, ls2, reply_token=0x01020304, reply_tunnel_id=77,
                        reply_gateway=GATEWAY)
    wire = dsm.to_bytes()
    assert wire == KEY + b"\x03" + bytes([1, 2, 3, 4]) + (77).to_bytes(4, "big") + GATEWAY + ls2
    assert DatabaseStore.parse(wire) == dsm


@pytest.mark.parametrize("type_byte", [2, 4, 6, 8, 9, 15, 0x12])
def test_database_store_invalid_types(type_byte):
    wire = KEY + bytes([type_byte]) + bytes(4) + b"\x00\x05hello"
    with pytest.raises(ParseError, match="store type"):
        DatabaseStore.parse(wire)


def test_database_store_ignored_bits_kept():
    wire = KEY + b"\x51" + bytes(4) + b"leaseset"
    dsm = DatabaseStore.parse(wire)
    assert dsm.store_type == StoreType.LEASE_SET and dsm.ignored_type_bits == 0x50
    assert dsm.to_bytes() == wire


def test_database_store_rejects_empty_and_truncated():
    with pytest.raises(ParseError):
        DatabaseStore.parse(KEY + b"\x01" + bytes(4))
    with pytest.raises(ParseError):
        DatabaseStore.parse(KEY + b"\x00" + bytes(4) + b"\x00\x00")
    with pytest.raises(ParseError):
        DatabaseStore.parse(KEY + b"\x00" + bytes(4) + b"\x00\x09short")
    with pytest.raises(ParseError):
        DatabaseStore.parse(KEY + b"\x00" + b"\x00\x00\x00\x01" + bytes(10))  # token but no gateway


def test_database_store_constructor_checks():
    with pytest.raises(ValueError):
        DatabaseStore(KEY, StoreType.LEASE_SET, b"x", reply_token=1)
    with pytest.raises(ValueError):
        DatabaseStore(KEY, StoreType.LEASE_SET, b"x", reply_tunnel_id=5)
    with pytest.raises(ValueError):
        DatabaseStore(KEY[:31], StoreType.LEASE_SET, b"x")
    with pytest.raises(ValueError):
        DatabaseStore(KEY, 2, b"x")  # type: ignore[arg-type]


def test_router_info_from_lease_set_store_is_an_error():
    with pytest.raises(ParseError):
        DatabaseStore(KEY, StoreType.LEASE_SET, b"x").router_info_bytes()


def test_gzip_bomb_rejected():
    bomb = compress_router_info(bytes(10 * 1024 * 1024))
    assert len(bomb) < 20_000
    dsm = DatabaseStore(KEY, StoreType.ROUTER_INFO, bomb)
    with pytest.raises(ParseError, match="exceeds"):
        dsm.router_info_bytes()
    with pytest.raises(ParseError, match="exceeds"):
        decompress_router_info(compress_router_info(bytes(MAX_ROUTER_INFO_SIZE + 1)))
    assert len(decompress_router_info(compress_router_info(bytes(MAX_ROUTER_INFO_SIZE)))) == MAX_ROUTER_INFO_SIZE
    with pytest.raises(ParseError, match="exceeds"):
        decompress_router_info(compress_router_info(bytes(2000)), max_size=1999)


def test_gzip_errors_are_parse_errors():
    good = compress_router_info(b"a RouterInfo" * 10)
    with pytest.raises(ParseError, match="truncated"):
        decompress_router_info(good[:-3])
    with pytest.raises(ParseError, match="after"):
        decompress_router_info(good + b"junk")
    bad_crc = bytearray(good)
    bad_crc[-6] ^= 1
    with pytest.raises(ParseError):
        decompress_router_info(bytes(bad_crc))
    with pytest.raises(ParseError):
        decompress_router_info(zlib.compress(b"zlib, not gzip"))
    with pytest.raises(ParseError):
        decompress_router_info(b"")
    # a gzip from another writer (other header fields) still decompresses
    assert decompress_router_info(gzip.compress(b"other writer", mtime=5)) == b"other writer"


@given(st.binary(max_size=200))
def test_random_bytes_into_decompressor(data):
    try:
        decompress_router_info(data)
    except ParseError:
        pass


# DatabaseLookup (type 2)

def test_database_lookup_direct_layout():
    dlm = DatabaseLookup(KEY, FROM, LookupType.ROUTER_INFO)
    assert dlm.to_bytes() == KEY + FROM + b"\x08" + b"\x00\x00"
    assert DatabaseLookup.parse(dlm.to_bytes()) == dlm


def test_database_lookup_ecies_reply_layout():
    reply_key, tag = bytes(range(100, 132)), b"TAG8byte"
    dlm = DatabaseLookup(KEY, FROM, LookupType.LEASE_SET, 0x0A0B0C0D, (GATEWAY,), ReplyEncryption.ECIES,
                         reply_key, (tag,))
    wire = dlm.to_bytes()
    # flag: delivery 0x01 | LS lookup 0x04 | ECIES 0x10, as i2pd and Java send LS lookups
    assert wire == KEY + FROM + b"\x15" + bytes.fromhex("0a0b0c0d") + b"\x00\x01" + GATEWAY + reply_key + b"\x01" + tag
    assert DatabaseLookup.parse(wire) == dlm


def test_database_lookup_elgamal_reply_layout():
    tags = (bytes(32), bytes([1]) * 32)
    dlm = DatabaseLookup(KEY, FROM, LookupType.ANY, 9, (), ReplyEncryption.ELGAMAL, GATEWAY, tags)
    wire = dlm.to_bytes()
    assert wire == KEY + FROM + b"\x03" + (9).to_bytes(4, "big") + b"\x00\x00" + GATEWAY + b"\x02" + b"".join(tags)
    assert DatabaseLookup.parse(wire) == dlm


@pytest.mark.parametrize("count", [0, 1, 512])
def test_database_lookup_excluded_peer_limits(count):
    peers = tuple(i.to_bytes(32, "big") for i in range(count))
    dlm = DatabaseLookup(KEY, FROM, LookupType.EXPLORATION, excluded_peers=peers)
    wire = dlm.to_bytes()
    assert len(wire) == 67 + 32 * count
    assert DatabaseLookup.parse(wire) == dlm


def test_database_lookup_too_many_excluded_peers():
    wire = KEY + FROM + b"\x00" + (513).to_bytes(2, "big") + bytes(513 * 32)
    with pytest.raises(ParseError, match="513"):
        DatabaseLookup.parse(wire)
    with pytest.raises(ValueError):
        DatabaseLookup(KEY, FROM, excluded_peers=(KEY,) * 513)


def test_database_lookup_reply_tag_rules():
    base = KEY + FROM
    with pytest.raises(ParseError, match="exactly 1"):
        DatabaseLookup.parse(base + b"\x10\x00\x00" + GATEWAY + b"\x02" + bytes(16))
    with pytest.raises(ParseError, match="reply tags"):
        DatabaseLookup.parse(base + b"\x02\x00\x00" + GATEWAY + b"\x00")
    with pytest.raises(ParseError, match="reply tags"):
        DatabaseLookup.parse(base + b"\x02\x00\x00" + GATEWAY + b"\x21" + bytes(33 * 32))
    assert len(DatabaseLookup.parse(base + b"\x02\x00\x00" + GATEWAY + b"\x20" + bytes(32 * 32)).reply_tags) == 32
    with pytest.raises(ParseError, match="not defined"):
        DatabaseLookup.parse(base + b"\x12\x00\x00" + GATEWAY + b"\x01" + bytes(8))
    with pytest.raises(ParseError):
        DatabaseLookup.parse(base + b"\x10\x00\x00" + GATEWAY + b"\x01" + bytes(7))


def test_database_lookup_zero_reply_tunnel_rejected():
    with pytest.raises(ParseError, match="nonzero"):
        DatabaseLookup.parse(KEY + FROM + b"\x01" + bytes(4) + b"\x00\x00")


def test_database_lookup_exploration_flags():
    assert DatabaseLookup(KEY, FROM, LookupType.EXPLORATION).is_exploratory
    assert DatabaseLookup(KEY, FROM, LookupType.ANY, excluded_peers=(bytes(32),)).is_exploratory
    assert not DatabaseLookup(KEY, FROM, LookupType.ROUTER_INFO, excluded_peers=(KEY,)).is_exploratory
    dlm = DatabaseLookup.parse(KEY + FROM + b"\xEC\x00\x00")
    assert dlm.lookup_type == LookupType.EXPLORATION and dlm.ignored_flag_bits == 0xE0
    assert dlm.to_bytes() == KEY + FROM + b"\xEC\x00\x00"


# DatabaseSearchReply, DeliveryStatus, Garlic, Data (types 3, 10, 11, 20)

def test_database_search_reply_layout():
    peers = (GATEWAY, KEY, FROM)
    dsrm = DatabaseSearchReply(KEY, peers, FROM)
    assert dsrm.to_bytes() == KEY + b"\x03" + GATEWAY + KEY + FROM + FROM
    assert DatabaseSearchReply.parse(dsrm.to_bytes()) == dsrm
    assert DatabaseSearchReply.parse(KEY + b"\x00" + FROM).peer_hashes == ()
    with pytest.raises(ParseError):
        DatabaseSearchReply.parse(KEY + b"\x02" + GATEWAY + FROM)


def test_delivery_status_layout():
    wire = bytes.fromhex("deadbeef") + bytes.fromhex("0000000000000002")
    assert DeliveryStatus.parse(wire) == DeliveryStatus(0xDEADBEEF, 2)
    with pytest.raises(ParseError):
        DeliveryStatus.parse(wire[:-1])


def test_garlic_and_data_layout():
    assert Garlic(b"abc").to_bytes() == b"\x00\x00\x00\x03abc"
    assert Data(b"").to_bytes() == b"\x00\x00\x00\x00"
    assert Data.parse(b"\x00\x00\x00\x02hi") == Data(b"hi")
    with pytest.raises(ParseError):
        Garlic.parse(b"\x00\x00\x00\x04abc")
    with pytest.raises(ParseError, match="exceeds"):
        Garlic.parse((65537).to_bytes(4, "big") + bytes(65537))
    assert len(Garlic.parse((65536).to_bytes(4, "big") + bytes(65536)).data) == 65536


# TunnelData and TunnelGateway (types 18, 19)

def test_tunnel_data_layout():
    payload = os.urandom(1024)
    msg = TunnelData(0x11223344, payload)
    assert msg.to_bytes() == bytes.fromhex("11223344") + payload
    assert TunnelData.parse(msg.to_bytes()) == msg
    with pytest.raises(ParseError, match="nonzero"):
        TunnelData.parse(bytes(4) + payload)
    for size in (0, 1027, 1029):
        with pytest.raises(ParseError):
            TunnelData.parse(bytes([1]) * size)
    with pytest.raises(ValueError):
        TunnelData(1, bytes(1023))
    with pytest.raises(ValueError):
        TunnelData(0, bytes(1024))


def test_tunnel_gateway_layout():
    inner = I2NPMessage(MessageType.DATABASE_STORE, 42, 1_750_000_000_000, b"some store")
    msg = TunnelGateway(0x01000000, inner)
    standard = encode_standard(inner)
    assert msg.to_bytes() == bytes.fromhex("01000000") + len(standard).to_bytes(2, "big") + standard
    assert TunnelGateway.parse(msg.to_bytes()) == msg


def test_tunnel_gateway_inner_errors():
    inner = encode_standard(I2NPMessage(1, 42, 0, b"some store"))
    bad = bytearray(inner)
    bad[15] ^= 0x80
    with pytest.raises(ParseError, match="checksum"):
        TunnelGateway.parse(b"\x00\x00\x00\x01" + len(bad).to_bytes(2, "big") + bytes(bad))
    with pytest.raises(ParseError):  # length field longer than the inner message
        TunnelGateway.parse(b"\x00\x00\x00\x01" + (len(inner) + 1).to_bytes(2, "big") + inner + b"x")
    with pytest.raises(ParseError):  # length field shorter
        TunnelGateway.parse(b"\x00\x00\x00\x01" + (len(inner) - 1).to_bytes(2, "big") + inner)
    with pytest.raises(ParseError, match="nonzero"):
        TunnelGateway.parse(bytes(4) + len(inner).to_bytes(2, "big") + inner)


# Tunnel build messages (types 21-26)

@pytest.mark.parametrize("cls, size", [(VariableTunnelBuild, 528), (VariableTunnelBuildReply, 528),
                                       (ShortTunnelBuild, 218), (OutboundTunnelBuildReply, 218)])
@pytest.mark.parametrize("count", [1, 4, 8])
def test_variable_build_counts(cls, size, count):
    records = tuple(bytes([i]) * size for i in range(count))
    msg = cls(records)
    wire = msg.to_bytes()
    assert wire == bytes([count]) + b"".join(records)
    assert len(wire) == 1 + count * size
    assert cls.parse(wire) == msg


@pytest.mark.parametrize("cls, size", [(VariableTunnelBuild, 528), (VariableTunnelBuildReply, 528),
                                       (ShortTunnelBuild, 218), (OutboundTunnelBuildReply, 218)])
def test_variable_build_bad_counts_and_sizes(cls, size):
    for count in (0, 9, 255):
        with pytest.raises(ParseError):
            cls.parse(bytes([count]) + bytes(count * size))
        with pytest.raises(ValueError):
            cls(tuple(bytes(size) for _ in range(count)))
    with pytest.raises(ParseError):
        cls.parse(b"\x02" + bytes(size))  # count says 2, one record present
    with pytest.raises(ParseError):
        cls.parse(b"\x01" + bytes(size + 1))
    with pytest.raises(ParseError):
        cls.parse(b"")
    with pytest.raises(ValueError):
        cls((bytes(size - 1),))
    other = 218 if size == 528 else 528
    with pytest.raises(ParseError):
        cls.parse(b"\x01" + bytes(other))


@pytest.mark.parametrize("cls", [TunnelBuild, TunnelBuildReply])
def test_fixed_tunnel_build(cls):
    records = tuple(bytes([i]) * 528 for i in range(8))
    msg = cls(records)
    assert msg.to_bytes() == b"".join(records) and len(msg.to_bytes()) == 4224
    assert cls.parse(msg.to_bytes()) == msg
    with pytest.raises(ParseError):
        cls.parse(bytes(7 * 528))
    with pytest.raises(ParseError):
        cls.parse(bytes(8 * 528 + 1))
    with pytest.raises(ValueError):
        cls(records[:7])


@pytest.mark.parametrize("cls", list(ALL_MESSAGES))
def test_type_codes_match_spec_names(cls):
    assert MessageType(cls.TYPE).name.replace("_", "") == cls.__name__.upper()


def test_database_store_of_an_i2pd_router_info():
    raw = (Path(__file__).parent.parent / "data" / "fixtures" / "i2pd-router.info").read_bytes()
    info = RouterInfo.parse(raw)
    dsm = DatabaseStore.for_router_info(info.hash, raw, reply_token=7, reply_gateway=GATEWAY)
    enveloped = I2NPMessage.build(dsm, 1, 2)
    received = parse_payload(decode_standard(encode_standard(enveloped)))
    assert received.key == info.hash
    assert RouterInfo.parse(received.router_info_bytes()) == info
    assert received.router_info_bytes() == raw
    assert received.router_info() == info


def test_database_store_of_a_lease_set2():
    keys = PrivateKeys.generate()
    ls2 = LeaseSet2.create(keys, published=1_750_000_000, expires_offset=600, encryption_keys=[(4, bytes(range(32)))],
                           leases=[Lease2(GATEWAY, 42, 1_750_000_600)])
    dsm = DatabaseStore.for_lease_set(ls2, reply_token=9, reply_tunnel_id=3, reply_gateway=GATEWAY)
    wire = dsm.to_bytes()
    assert wire[:33] == keys.destination.hash + b"\x03"
    received = DatabaseStore.parse(wire)
    assert received.store_type == StoreType.LEASE_SET2
    assert received.lease_set() == ls2
    with pytest.raises(ParseError):
        DatabaseStore.for_router_info(KEY, b"ri").lease_set()
