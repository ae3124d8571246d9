"""Build records: layouts, round trips, whole builds answered by our own hop code, rejections, tampering."""
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.clock import FakeClock
from core.crypto.chacha import ChaChaPoly
from core.crypto import x25519
from core.data.errors import CryptoError, ParseError, ProtocolError
from core.data.primitives import Mapping
from core.tunnel.build import (FLAG_INBOUND_GATEWAY, FLAG_OUTBOUND_ENDPOINT, LONG_RECORD_SIZE, SHORT_RECORD_SIZE,
                               BuildRecordDecryptor, BuildReplyRecord, BuildRequestRecord, BuildStatus,
                               ShortBuildReplyRecord, ShortBuildRequestRecord, chacha_record, create_build,
                               derive_short_keys, encrypt_request_record, randbelow, shuffled)
from core.i2np import ShortTunnelBuild, VariableTunnelBuild

from .helpers import routers, seeded_rng

small_mappings = st.dictionaries(st.text("abcmrl", min_size=1, max_size=3), st.text("0123456789", max_size=4),
                                 max_size=4).map(Mapping.from_dict)
u32 = st.integers(0, 0xFFFFFFFF)
tunnel_ids = st.integers(1, 0xFFFFFFFF)
flag_values = st.sampled_from([0, FLAG_INBOUND_GATEWAY, FLAG_OUTBOUND_ENDPOINT])


@st.composite
def short_requests(draw):
    options = draw(small_mappings)
    return ShortBuildRequestRecord(
        draw(tunnel_ids), draw(tunnel_ids), draw(st.binary(min_size=32, max_size=32)), draw(flag_values), draw(u32),
        draw(u32), options, draw(st.binary(min_size=98 - len(options.to_bytes()), max_size=98 - len(options.to_bytes()))),
        draw(u32), draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 255)))


@st.composite
def long_requests(draw):
    options = draw(small_mappings)
    pad = 296 - len(options.to_bytes())
    key = st.binary(min_size=32, max_size=32)
    return BuildRequestRecord(
        draw(tunnel_ids), draw(tunnel_ids), draw(key), draw(key), draw(key), draw(key),
        draw(st.binary(min_size=16, max_size=16)), draw(flag_values), draw(u32), draw(u32), options,
        draw(st.binary(min_size=pad, max_size=pad)), draw(u32), draw(st.integers(0, 0xFFFFFF)))


@st.composite
def replies(draw, cls):
    options = draw(small_mappings)
    pad = cls.SIZE - 1 - len(options.to_bytes())
    return cls(options, draw(st.binary(min_size=pad, max_size=pad)), draw(st.integers(0, 255)))


@given(st.one_of(short_requests(), long_requests(), replies(ShortBuildReplyRecord), replies(BuildReplyRecord)))
def test_records_round_trip(record):
    data = record.to_bytes()
    assert len(data) == record.SIZE
    assert type(record).parse(data) == record
    assert type(record).parse(data).to_bytes() == data


def test_short_request_layout():
    record = ShortBuildRequestRecord(0x01020304, 0x05060708, bytes(range(32)), FLAG_OUTBOUND_ENDPOINT, 0x0A0B0C0D,
                                     0x11121314, Mapping.from_dict({"m": "5"}), b"\xee" * (98 - 8), 600, 0, 0)
    data = record.to_bytes()
    assert data[0:4] == bytes.fromhex("01020304") and data[4:8] == bytes.fromhex("05060708")
    assert data[8:40] == bytes(range(32))
    assert data[40] == 0x40 and data[41:43] == b"\x00\x00" and data[43] == 0
    assert data[44:48] == bytes.fromhex("0A0B0C0D")
    assert int.from_bytes(data[48:52], "big") == 600
    assert data[52:56] == bytes.fromhex("11121314")
    assert data[56:64] == b"\x00\x06\x01m=\x015;"


def test_long_request_layout():
    record = BuildRequestRecord(7, 8, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32, b"\x05" * 16,
                                FLAG_INBOUND_GATEWAY, 1000, 99, Mapping(), b"\x00" * 294)
    data = record.to_bytes()
    assert data[8:40] == b"\x01" * 32 and data[40:72] == b"\x02" * 32 and data[72:104] == b"\x03" * 32
    assert data[104:136] == b"\x04" * 32 and data[136:152] == b"\x05" * 16
    assert data[152] == 0x80 and data[153:156] == b"\x00\x00\x00"
    assert int.from_bytes(data[156:160], "big") == 1000 and int.from_bytes(data[160:164], "big") == 600
    assert int.from_bytes(data[164:168], "big") == 99 and data[168:170] == b"\x00\x00"


@pytest.mark.parametrize("mutate", [
    lambda d: bytes(4) + d[4:],  # zero receive tunnel id
    lambda d: d[:4] + bytes(4) + d[8:],  # zero next tunnel id
    lambda d: d[:40] + b"\xc0" + d[41:],  # gateway and endpoint at once
    lambda d: d[:56] + b"\x00\x63" + d[58:],  # options longer than 98 bytes
    lambda d: d[:56] + b"\x00\x05" + d[58:],  # options that do not parse
    lambda d: d[:-1],
])
def test_short_request_rejects(mutate):
    record = ShortBuildRequestRecord.create(receive_tunnel_id=1, next_tunnel_id=2, next_ident=bytes(32), flags=0,
                                            request_time_minutes=5, next_message_id=6, rng=seeded_rng())
    with pytest.raises(ParseError):
        ShortBuildRequestRecord.parse(mutate(record.to_bytes()))


def test_options_that_do_not_fit_are_refused():
    big = Mapping.from_dict({f"k{i}": "v" * 20 for i in range(5)})
    with pytest.raises(ParseError):
        ShortBuildRequestRecord.create(receive_tunnel_id=1, next_tunnel_id=2, next_ident=bytes(32), flags=0,
                                       request_time_minutes=5, next_message_id=6, rng=seeded_rng(), options=big)


def _run_hops(request, hop_routers, statuses=None, rng=None):
    """Pass the build through each hop in order, as the network would; returns the final records."""
    rng = rng or seeded_rng(7)
    records = request.message.records
    opened = []
    for position, router in enumerate(hop_routers):
        decryptor = BuildRecordDecryptor(router.hash, router.static)
        index = decryptor.find_record(records)
        assert index is not None
        decrypted = decryptor.decrypt(records, index)
        opened.append(decrypted)
        status = statuses[position] if statuses else BuildStatus.ACCEPT
        records = decryptor.reply(records, decrypted, status, rng, Mapping.from_dict({"b": str(position)}))
    return records, opened


@pytest.mark.parametrize("short", [True, False])
@pytest.mark.parametrize("inbound", [True, False])
def test_three_hop_build_accepted(short, inbound):
    clock = FakeClock(1_750_000_123.0)
    hops = routers(4)
    me, hop_routers = hops[0], hops[1:]
    reply_gateway = b"\x42" * 32
    request = create_build([r.identity for r in hop_routers], inbound=inbound, our_hash=me.hash, clock=clock,
                           rng=seeded_rng(3), reply_gateway=reply_gateway, reply_tunnel_id=777, short=short)
    assert isinstance(request.message, ShortTunnelBuild if short else VariableTunnelBuild)
    assert len(request.message.records) == 4
    assert request.first_hop == hop_routers[0].hash
    records, opened = _run_hops(request, hop_routers)
    result = request.pending.process_reply(records)
    assert result.success and result.statuses == (0, 0, 0) and not result.tampered
    assert [opt.as_dict() for opt in result.reply_options] == [{"b": "0"}, {"b": "1"}, {"b": "2"}]
    pending = request.pending
    for position, (config, decrypted) in enumerate(zip(pending.hops, opened)):
        record = decrypted.record
        assert decrypted.short == short
        assert decrypted.keys.layer_key == config.keys.layer_key and decrypted.keys.iv_key == config.keys.iv_key
        assert record.receive_tunnel_id == config.receive_tunnel_id
        assert record.request_time_minutes == int(clock.time() // 60)
        assert record.expiration_seconds == 600
        assert record.is_inbound_gateway == (inbound and position == 0)
        assert record.is_outbound_endpoint == (not inbound and position == 2)
        if position < 2:
            assert record.next_ident == hop_routers[position + 1].hash
            assert record.next_tunnel_id == pending.hops[position + 1].receive_tunnel_id
    last = opened[-1].record
    assert last.next_message_id == pending.reply_msg_id
    if inbound:
        assert last.next_ident == me.hash and last.next_tunnel_id == pending.own_tunnel_id
    else:
        assert last.next_ident == reply_gateway and last.next_tunnel_id == 777
        if short:
            assert opened[-1].keys.garlic_reply_key and len(opened[-1].keys.garlic_reply_tag) == 8


@pytest.mark.parametrize("short", [True, False])
def test_rejection_reported_per_hop(short):
    hops = routers(4)
    request = create_build([r.identity for r in hops[1:]], inbound=False, our_hash=hops[0].hash, clock=FakeClock(),
                           rng=seeded_rng(4), reply_gateway=b"\x01" * 32, reply_tunnel_id=9, short=short)
    records, _ = _run_hops(request, hops[1:], statuses=[0, BuildStatus.BANDWIDTH, BuildStatus.TRANSIENT_OVERLOAD])
    result = request.pending.process_reply(records)
    assert result.statuses == (0, 30, 20) and not result.success


@pytest.mark.parametrize("short", [True, False])
def test_corrupted_reply_record_fails_only_that_hop(short):
    hops = routers(4)
    request = create_build([r.identity for r in hops[1:]], inbound=False, our_hash=hops[0].hash, clock=FakeClock(),
                           rng=seeded_rng(5), reply_gateway=b"\x01" * 32, reply_tunnel_id=9, short=short)
    records, _ = _run_hops(request, hops[1:])
    index = request.pending.hops[1].record_index
    broken = list(records)
    broken[index] = bytes([broken[index][0] ^ 1]) + broken[index][1:]
    result = request.pending.process_reply(broken)
    assert result.statuses == (0, None, 0) and not result.success


@pytest.mark.parametrize("short", [True, False])
def test_inbound_own_record_must_come_back_unchanged(short):
    hops = routers(4)
    request = create_build([r.identity for r in hops[1:]], inbound=True, our_hash=hops[0].hash, clock=FakeClock(),
                           rng=seeded_rng(6), short=short)
    own_index, own_bytes = request.pending.own_record
    assert own_bytes[:16] == hops[0].hash[:16]
    records, _ = _run_hops(request, hops[1:])
    assert records[own_index] == own_bytes
    tampered = list(records)
    tampered[own_index] = own_bytes[:100] + bytes([own_bytes[100] ^ 0x80]) + own_bytes[101:]
    result = request.pending.process_reply(tampered)
    assert result.tampered and not result.success and result.statuses == (0, 0, 0)


def test_reply_with_wrong_record_count_is_a_parse_error():
    hops = routers(3)
    request = create_build([r.identity for r in hops[1:]], inbound=True, our_hash=hops[0].hash, clock=FakeClock(),
                           rng=seeded_rng(8))
    with pytest.raises(ParseError):
        request.pending.process_reply(request.message.records[:3])
    with pytest.raises(ParseError):
        request.pending.process_reply(tuple(r[:-1] for r in request.message.records))


@pytest.mark.parametrize("count", [1, 4, 7])
def test_record_count_and_positions(count):
    hops = routers(count + 1)
    positions = set()
    for seed in range(6):
        request = create_build([r.identity for r in hops[1:]], inbound=True, our_hash=hops[0].hash,
                               clock=FakeClock(), rng=seeded_rng(seed))
        expected = 4 if count + 1 <= 4 else 8
        assert request.pending.record_count == expected == len(request.message.records)
        positions.add(tuple(h.record_index for h in request.pending.hops))
        records, _ = _run_hops(request, hops[1:])
        assert request.pending.process_reply(records).success
    assert len(positions) > 1  # record order is random


def test_each_record_has_its_own_ephemeral_key():
    hops = routers(4)
    request = create_build([r.identity for r in hops[1:]], inbound=True, our_hash=hops[0].hash, clock=FakeClock(),
                           rng=seeded_rng(9))
    _, opened = _run_hops(request, hops[1:])
    assert len({d.ephemeral_key for d in opened}) == 3


def test_create_build_argument_checks():
    hops = routers(9)
    with pytest.raises(ValueError):
        create_build([], inbound=True, our_hash=bytes(32), clock=FakeClock(), rng=seeded_rng())
    with pytest.raises(ValueError):
        create_build([r.identity for r in hops[1:]], inbound=True, our_hash=bytes(32), clock=FakeClock(),
                     rng=seeded_rng())
    with pytest.raises(ValueError):
        create_build([hops[1].identity], inbound=False, our_hash=bytes(32), clock=FakeClock(), rng=seeded_rng())
    with pytest.raises(ValueError):
        create_build([hops[1].identity] * 4, inbound=True, our_hash=bytes(32), clock=FakeClock(), rng=seeded_rng(),
                     record_count=4)


def _spec_hkdf(salt, ikm, info):
    prk = hmac.digest(salt, ikm, "sha256")
    t1 = hmac.digest(prk, info + b"\x01", "sha256")
    return t1 + hmac.digest(prk, t1 + info + b"\x02", "sha256")


def test_request_encryption_follows_the_spec_kdf_text():
    """Recompute "KDF for Initial ck and h" and "KDF for Request Record" step by step from the spec text."""
    rng = seeded_rng(11)
    hop = routers(1)[0]
    cleartext = rng(154)
    ephemeral_private = seeded_rng(12)(32)
    record, state, ephemeral_public = encrypt_request_record(cleartext, hop.hash, hop.static.public_bytes,
                                                             seeded_rng(12))
    assert ephemeral_public == x25519.public_from_private(ephemeral_private)
    h = b"Noise_N_25519_ChaChaPoly_SHA256" + b"\x00"
    ck = h
    h = hashlib.sha256(h).digest()
    h = hashlib.sha256(h + hop.static.public_bytes).digest()
    h = hashlib.sha256(h + ephemeral_public).digest()
    shared = x25519.dh(ephemeral_private, hop.static.public_bytes)
    keydata = _spec_hkdf(ck, shared, b"")
    ck, k = keydata[:32], keydata[32:]
    ciphertext = ChaChaPoly(k).encrypt(0, cleartext, h)
    assert record == hop.hash[:16] + ephemeral_public + ciphertext
    assert state.ck == ck and state.h == hashlib.sha256(h + ciphertext).digest()
    keys = derive_short_keys(ck, outbound_endpoint=True)
    kd = _spec_hkdf(ck, b"", b"SMTunnelReplyKey")
    assert keys.reply_key == kd[32:]
    kd = _spec_hkdf(kd[:32], b"", b"SMTunnelLayerKey")
    assert keys.layer_key == kd[32:]
    assert derive_short_keys(ck, outbound_endpoint=False).iv_key == kd[:32]
    kd = _spec_hkdf(kd[:32], b"", b"TunnelLayerIVKey")
    assert keys.iv_key == kd[32:]
    kd = _spec_hkdf(kd[:32], b"", b"RGarlicKeyAndTag")
    assert keys.garlic_reply_key == kd[32:] and keys.garlic_reply_tag == kd[:8]


def test_chacha_record_is_an_involution_with_the_index_in_the_nonce():
    key, record = b"\x07" * 32, bytes(range(218))
    once = chacha_record(key, 3, record)
    assert once != record and chacha_record(key, 3, once) == record
    assert chacha_record(key, 4, record) != once


def test_decrypt_refuses_records_not_for_us_and_tampered_ones():
    hops = routers(3)
    request = create_build([r.identity for r in hops[1:]], inbound=True, our_hash=hops[0].hash, clock=FakeClock(),
                           rng=seeded_rng(13))
    first = hops[1]
    decryptor = BuildRecordDecryptor(first.hash, first.static)
    records = request.message.records
    index = decryptor.find_record(records)
    other = next(i for i in range(len(records)) if i != index)
    with pytest.raises(CryptoError):
        decryptor.decrypt(records, other)
    record = records[index]
    for position in (20, 60, 217):
        broken = list(records)
        broken[index] = record[:position] + bytes([record[position] ^ 1]) + record[position + 1:]
        with pytest.raises(CryptoError):
            decryptor.decrypt(broken, index)


@given(st.sampled_from([SHORT_RECORD_SIZE, LONG_RECORD_SIZE]).flatmap(
    lambda size: st.binary(min_size=size - 170, max_size=size - 16)))
def test_random_record_bodies_into_decryptor(body):
    hop = routers(1)[0]
    size = SHORT_RECORD_SIZE if len(body) <= SHORT_RECORD_SIZE - 16 else LONG_RECORD_SIZE
    record = (hop.hash[:16] + body + bytes(size))[:size]
    try:
        BuildRecordDecryptor(hop.hash, hop.static).decrypt([record], 0)
    except ProtocolError:
        pass


@given(st.binary(max_size=600))
def test_random_bytes_into_record_parsers(data):
    for cls in (ShortBuildRequestRecord, BuildRequestRecord, ShortBuildReplyRecord, BuildReplyRecord):
        try:
            cls.parse(data)
        except ProtocolError:
            pass


@given(st.integers(1, 300), st.integers(0, 1000))
def test_randbelow_and_shuffled(n, seed):
    rng = seeded_rng(seed)
    assert 0 <= randbelow(rng, n) < n
    items = list(range(n % 20))
    assert sorted(shuffled(items, rng)) == items


@given(st.lists(st.binary(min_size=SHORT_RECORD_SIZE, max_size=SHORT_RECORD_SIZE), min_size=4, max_size=4))
def test_random_reply_records_give_no_success(records):
    hops = routers(3)
    request = create_build([r.identity for r in hops[1:]], inbound=False, our_hash=hops[0].hash, clock=FakeClock(),
                           rng=seeded_rng(14), reply_gateway=b"\x01" * 32, reply_tunnel_id=9)
    result = request.pending.process_reply(records)
    assert result.statuses == (None, None) and not result.success
    assert request.pending.reply_garlic == (request.pending.hops[-1].keys.garlic_reply_key,
                                            request.pending.hops[-1].keys.garlic_reply_tag)
