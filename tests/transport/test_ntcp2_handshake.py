"""NTCP2 handshake: both roles in memory, KDF cross-checks, every failure path."""
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import FakeClock
from core.crypto.aes import cbc_encrypt
from core.crypto.chacha import ChaChaPoly
from core.crypto.hashes import hkdf, hmac_sha256, sha256
from core.crypto.x25519 import X25519Keypair
from core.data.errors import CryptoError, HandshakeError, ParseError, ProtocolError
from core.data.routerinfo import RouterInfo
from core.transport.ntcp2 import handshake as hs
from core.transport.ntcp2.blocks import OptionsBlock, TerminationReason
from core.transport.ntcp2.session import derive_data_phase_keys

from .test_ntcp2_support import NETID, CountingRng, make_pair, make_router, run_handshake


@pytest.fixture
def clock():
    return FakeClock(1_750_000_000.0)


@pytest.fixture
def alice(clock):
    return make_router("alice", clock)


@pytest.fixture
def bob(clock):
    return make_router("bob", clock)


def craft_request(bob, clock, *, netid=NETID, version=2, pad_len=0, m3p2_len=100, ts=None, seed="craft",
                  x=None, padding=None):
    """An independent SessionRequest builder straight from ntcp2.rst "KDF for handshake message 1"."""
    ephemeral = X25519Keypair(CountingRng(seed)(32))
    x = ephemeral.public_bytes if x is None else x
    h = ck = sha256(hs.PROTOCOL_NAME)
    h = sha256(h)
    h = sha256(h + bob.static_key.public_bytes)
    h = sha256(h + x)
    temp_key = hmac_sha256(ck, ephemeral.dh(bob.static_key.public_bytes))
    ck = hmac_sha256(temp_key, b"\x01")
    k = hmac_sha256(temp_key, ck + b"\x02")
    ts = int(clock.time()) if ts is None else ts
    options = (bytes((netid, version)) + pad_len.to_bytes(2, "big") + m3p2_len.to_bytes(2, "big") + bytes(2)
               + ts.to_bytes(4, "big") + bytes(4))
    frame = ChaChaPoly(k).encrypt(0, options, h)
    return cbc_encrypt(bob.router_hash, bob.iv, x) + frame + (bytes(pad_len) if padding is None else padding)


def responder_for(bob, clock, cache=None, **kwargs):
    return hs.Responder(bob.static_key, bob.router_hash, bob.iv, netid=NETID, clock=clock, rng=CountingRng("r"),
                        replay_cache=cache if cache is not None else hs.ReplayCache(clock), **kwargs)


def test_protocol_name_hashes_match_published_constants():
    # i2pd hard-codes these two values; an independent check of our initial Noise state
    state = hs.SymmetricState(hs.PROTOCOL_NAME)
    assert state.ck.hex().startswith("72e842c545e18080d39c4493bb91d7ed")
    state.mix_hash(b"")
    assert state.h.hex().startswith("49ff483fc404b9b26b11943672ff05b5")


def test_full_handshake_agrees_on_keys(clock, alice, bob):
    initiator, responder = make_pair(clock, alice, bob)
    a, b = run_handshake(initiator, responder)
    assert a.handshake_hash == b.handshake_hash
    assert (a.keys.send_key, a.keys.send_sip_key, a.keys.send_sip_iv) == \
        (b.keys.receive_key, b.keys.receive_sip_key, b.keys.receive_sip_iv)
    assert (a.keys.receive_key, a.keys.receive_sip_key) == (b.keys.send_key, b.keys.send_sip_key)
    assert a.keys.send_key != a.keys.receive_key
    assert b.peer_static_key == alice.static_key.public_bytes
    assert b.peer_router_hash == alice.router_hash
    assert b.peer_router_info == alice.router_info_bytes
    assert b.router_info == alice.router_info
    assert a.peer_router_hash == bob.router_hash and a.peer_static_key == bob.static_key.public_bytes
    assert a.initiator and not b.initiator
    assert abs(a.clock_skew) <= 1 and abs(b.clock_skew) <= 1
    assert initiator.data_to_send() == b"" and responder.unused_data == b""


def test_data_phase_kdf_matches_hkdf_form(clock, alice, bob):
    ck, h = bytes(range(32)), bytes(range(32, 64))
    keys = derive_data_phase_keys(ck, h, initiator=True)
    split = hkdf(ck, b"", b"", 64)
    ask_master = hkdf(ck, b"", b"ask", 32)
    sip_master = hkdf(ask_master, h + b"siphash", b"", 32)
    sipkeys = hkdf(sip_master, b"", b"", 64)
    assert (keys.send_key, keys.receive_key) == (split[:32], split[32:])
    assert (keys.send_sip_key, keys.send_sip_iv) == (sipkeys[:16], sipkeys[16:24])
    assert (keys.receive_sip_key, keys.receive_sip_iv) == (sipkeys[32:48], sipkeys[48:56])
    bob_keys = derive_data_phase_keys(ck, h, initiator=False)
    assert bob_keys.send_key == keys.receive_key and bob_keys.receive_sip_iv == keys.send_sip_iv


def test_deterministic_with_injected_rng(clock, alice, bob):
    def transcript():
        initiator, responder = make_pair(clock, alice, bob, seed="fixed")
        m1 = initiator.data_to_send()
        responder.feed(m1)
        m2 = responder.data_to_send()
        initiator.feed(m2)
        m3 = initiator.data_to_send()
        responder.feed(m3)
        return m1, m2, m3, initiator.result.keys
    first, second = transcript(), transcript()
    assert first == second
    m1, m2, m3, _ = first
    assert 64 <= len(m1) <= 64 + hs.DEFAULT_SENT_PADDING and 64 <= len(m2) <= 64 + hs.DEFAULT_SENT_PADDING


def test_session_request_obfuscation_and_options(clock, alice, bob):
    initiator, _ = make_pair(clock, alice, bob)
    m1 = initiator.data_to_send()
    from core.crypto.aes import cbc_decrypt
    x = cbc_decrypt(bob.router_hash, bob.iv, m1[:32])
    assert x == initiator._ephemeral.public_bytes
    assert m1[:32] != x
    assert x[31] & 0x80 == 0


def test_byte_by_byte_feeding(clock, alice, bob):
    initiator, responder = make_pair(clock, alice, bob, options=OptionsBlock(tmin=1, rmax=16))
    for byte in initiator.data_to_send():
        assert responder.feed(bytes([byte])) is None
    m2 = responder.data_to_send()
    for i, byte in enumerate(m2):
        result = initiator.feed(bytes([byte]))
        assert (result is not None) == (i == len(m2) - 1)
    m3 = initiator.data_to_send()
    for byte in m3[:-1]:
        assert responder.feed(bytes([byte])) is None
    result = responder.feed(m3[-1:] + b"tail")
    assert result.peer_options == OptionsBlock(tmin=1, rmax=16)
    assert responder.unused_data == b"tail"
    assert result.keys.receive_key == initiator.result.keys.send_key


def test_crafted_request_is_accepted(clock, bob):
    responder = responder_for(bob, clock)
    responder.feed(craft_request(bob, clock, pad_len=5))
    assert responder.answered and len(responder.data_to_send()) >= 64


def test_netid_zero_is_accepted(clock, bob):
    responder = responder_for(bob, clock)
    responder.feed(craft_request(bob, clock, netid=0))
    assert responder.answered


def _rejects_silently(responder, data, error=ProtocolError):
    with pytest.raises(error):
        responder.feed(data)
    assert not responder.answered
    assert responder.data_to_send() == b""
    with pytest.raises(error):  # dead for good
        responder.feed(b"more")


def test_bad_mac_in_session_request(clock, bob):
    request = bytearray(craft_request(bob, clock))
    request[40] ^= 1
    _rejects_silently(responder_for(bob, clock), bytes(request), CryptoError)


def test_bad_netid(clock, bob):
    _rejects_silently(responder_for(bob, clock), craft_request(bob, clock, netid=2), HandshakeError)


def test_bad_version(clock, bob):
    _rejects_silently(responder_for(bob, clock), craft_request(bob, clock, version=1), HandshakeError)


@pytest.mark.parametrize("offset", [-61, 61, -3600])
def test_clock_skew_in_session_request(clock, bob, offset):
    request = craft_request(bob, clock, ts=int(clock.time()) + offset)
    responder = responder_for(bob, clock)
    with pytest.raises(hs.ClockSkewError) as info:
        responder.feed(request)
    assert info.value.skew == pytest.approx(offset, abs=1)
    assert not responder.answered and responder.data_to_send() == b""


def test_skew_within_limit_accepted(clock, bob):
    responder = responder_for(bob, clock)
    responder.feed(craft_request(bob, clock, ts=int(clock.time()) + 59))
    assert responder.answered


def test_clock_skew_in_session_created(clock, alice, bob):
    initiator, responder = make_pair(clock, alice, bob)
    responder.feed(initiator.data_to_send())
    reply = responder.data_to_send()
    clock.advance(90)   # Alice's clock is now 90 s ahead of Bob's timestamp
    with pytest.raises(hs.ClockSkewError) as info:
        initiator.feed(reply)
    assert info.value.skew == pytest.approx(-90, abs=1)
    assert initiator.data_to_send() == b""


def test_replay_rejected_across_responders(clock, bob):
    cache = hs.ReplayCache(clock)
    request = craft_request(bob, clock)
    responder_for(bob, clock, cache).feed(request)
    _rejects_silently(responder_for(bob, clock, cache), request, HandshakeError)


def test_replay_cache_expiry_and_bound(clock):
    cache = hs.ReplayCache(clock, max_entries=3, lifetime=150)
    assert not cache.check_and_add(b"a")
    assert cache.check_and_add(b"a")
    clock.advance(151)
    assert not cache.check_and_add(b"a")
    for key in (b"b", b"c", b"d"):
        assert not cache.check_and_add(key)
    assert len(cache) == 3
    assert not cache.check_and_add(b"a")     # the oldest went first
    with pytest.raises(ValueError):
        hs.ReplayCache(clock, lifetime=60)


def test_high_bit_ephemeral_rejected(clock, bob):
    x = bytes(31) + b"\x80"
    request = cbc_encrypt(bob.router_hash, bob.iv, x) + bytes(32)
    _rejects_silently(responder_for(bob, clock), request, CryptoError)


def test_low_order_ephemeral_rejected(clock, bob):
    request = cbc_encrypt(bob.router_hash, bob.iv, bytes(32)) + bytes(32)
    _rejects_silently(responder_for(bob, clock), request, CryptoError)


def test_padding_too_long(clock, bob):
    responder = responder_for(bob, clock, max_accepted_padding=100)
    _rejects_silently(responder, craft_request(bob, clock, pad_len=101, padding=b""), HandshakeError)


@pytest.mark.parametrize("m3p2_len", [0, 15, 65488])
def test_m3p2_len_out_of_range(clock, bob, m3p2_len):
    _rejects_silently(responder_for(bob, clock), craft_request(bob, clock, m3p2_len=m3p2_len), HandshakeError)


def test_data_after_session_request(clock, bob):
    _rejects_silently(responder_for(bob, clock), craft_request(bob, clock, pad_len=3) + b"!", HandshakeError)


def test_wrong_iv_fails_as_garbage(clock, alice, bob):
    initiator = hs.Initiator(alice.static_key, alice.router_info_bytes, bob.router_hash,
                             bob.static_key.public_bytes, bytes(16), netid=NETID, clock=clock, rng=CountingRng("w"))
    _rejects_silently(responder_for(bob, clock), initiator.data_to_send(), CryptoError)


def test_truncated_session_request_waits(clock, bob):
    responder = responder_for(bob, clock)
    assert responder.feed(craft_request(bob, clock, pad_len=10)[:-1]) is None
    assert not responder.answered


def test_tampered_request_padding_breaks_session_created(clock, alice, bob):
    initiator, responder = make_pair(clock, alice, bob, seed="pad")
    m1 = bytearray(initiator.data_to_send())
    assert len(m1) > 64
    m1[-1] ^= 1
    responder.feed(bytes(m1))
    with pytest.raises(CryptoError):
        initiator.feed(responder.data_to_send())


def test_tampered_created_padding_breaks_session_confirmed(clock, alice, bob):
    initiator, responder = make_pair(clock, alice, bob, seed="pad")
    responder.feed(initiator.data_to_send())
    m2 = bytearray(responder.data_to_send())
    assert len(m2) > 64
    m2[-1] ^= 1
    initiator.feed(bytes(m2))
    with pytest.raises(CryptoError):
        responder.feed(initiator.data_to_send())


@pytest.mark.parametrize("where", [5, 40, 60, -1])
def test_tampered_session_confirmed(clock, alice, bob, where):
    initiator, responder = make_pair(clock, alice, bob)
    responder.feed(initiator.data_to_send())
    initiator.feed(responder.data_to_send())
    m3 = bytearray(initiator.data_to_send())
    m3[where] ^= 0x40
    with pytest.raises(CryptoError):
        responder.feed(bytes(m3))
    assert responder.data_to_send() == b""


def test_tampered_session_created(clock, alice, bob):
    initiator, responder = make_pair(clock, alice, bob)
    responder.feed(initiator.data_to_send())
    m2 = bytearray(responder.data_to_send())
    m2[50] ^= 1
    with pytest.raises(CryptoError):
        initiator.feed(bytes(m2))
    assert initiator.data_to_send() == b""


def test_data_after_session_created(clock, alice, bob):
    initiator, responder = make_pair(clock, alice, bob)
    responder.feed(initiator.data_to_send())
    with pytest.raises(HandshakeError):
        initiator.feed(responder.data_to_send() + b"x")
    assert initiator.data_to_send() == b""


def _confirm_with(clock, alice_router, bob):
    initiator = hs.Initiator(alice_router.static_key, alice_router.router_info_bytes, bob.router_hash,
                             bob.static_key.public_bytes, bob.iv, netid=NETID, clock=clock, rng=CountingRng("c"))
    responder = responder_for(bob, clock)
    responder.feed(initiator.data_to_send())
    initiator.feed(responder.data_to_send())
    with pytest.raises(hs.RouterInfoRejected) as info:
        responder.feed(initiator.data_to_send())
    assert responder.data_to_send() == b""
    return info.value.reason


def test_router_info_static_key_mismatch(clock, bob):
    mallory = make_router("mallory", clock, static_key_in_ri=bytes(range(32)))
    assert _confirm_with(clock, mallory, bob) == TerminationReason.STATIC_KEY_MISMATCH


def test_router_info_without_version_2(clock, bob):
    old = make_router("old", clock, version="1")
    assert _confirm_with(clock, old, bob) == TerminationReason.STATIC_KEY_MISMATCH


def test_router_info_wrong_netid(clock, bob):
    other = make_router("other", clock, netid=2)
    assert _confirm_with(clock, other, bob) == TerminationReason.MESSAGE_3_ERROR


def test_router_info_too_old(clock, bob):
    stale = make_router("stale", clock, published_offset=-2 * 3600)
    assert _confirm_with(clock, stale, bob) == TerminationReason.MESSAGE_3_ERROR


def test_router_info_bad_signature(clock, bob):
    good = make_router("forger", clock)
    info = good.router_info
    forged = RouterInfo(info.identity, info.published + 1, info.addresses, (), info.options, info.signature)
    good.router_info = forged
    assert _confirm_with(clock, good, bob) == TerminationReason.ROUTER_INFO_SIGNATURE_FAILURE


def test_router_info_unparsable(clock, alice, bob):
    alice.router_info = type("Fake", (), {"to_bytes": lambda self: b"not a router info"})()
    assert _confirm_with(clock, alice, bob) == TerminationReason.MESSAGE_3_ERROR


def test_bad_peer_address_parameters(clock, alice, bob):
    with pytest.raises(HandshakeError):
        hs.Initiator(alice.static_key, alice.router_info_bytes, bob.router_hash, bytes(31), bob.iv,
                     netid=NETID, clock=clock)
    with pytest.raises(CryptoError):  # a low-order "s" from a hostile RouterInfo
        hs.Initiator(alice.static_key, alice.router_info_bytes, bob.router_hash, bytes(32), bob.iv,
                     netid=NETID, clock=clock)


def test_options_blocks_round_trip():
    request = hs.SessionRequestOptions(42, 2, 300, 1200, 0x12345678)
    assert request.to_bytes() == bytes.fromhex("2a02012c04b00000" "1234567800000000")
    assert hs.SessionRequestOptions.parse(request.to_bytes()) == request
    created = hs.SessionCreatedOptions(17, 0x01020304)
    assert created.to_bytes() == bytes.fromhex("0000001100000000" "0102030400000000")
    assert hs.SessionCreatedOptions.parse(created.to_bytes()) == created
    with pytest.raises(ParseError):
        hs.SessionCreatedOptions.parse(bytes(15))


@given(st.binary(min_size=16, max_size=16))
def test_options_blocks_exact_round_trip(data):
    assert hs.SessionRequestOptions.parse(data).to_bytes() == data
    assert hs.SessionCreatedOptions.parse(data).to_bytes() == data


@settings(max_examples=60)
@given(st.binary(max_size=400))
def test_garbage_into_responder(data):
    clock = FakeClock(time.time())
    bob = _BOB_CACHE.setdefault("bob", make_router("bob", FakeClock(1_750_000_000.0)))
    responder = hs.Responder(bob.static_key, bob.router_hash, bob.iv, netid=NETID, clock=clock,
                             rng=CountingRng("g"), replay_cache=hs.ReplayCache(clock))
    try:
        responder.feed(data)
    except ProtocolError:
        pass
    assert not responder.answered


_BOB_CACHE: dict = {}


@settings(max_examples=60)
@given(st.data())
def test_mutated_handshake_messages(data):
    clock = FakeClock(1_750_000_000.0)
    routers = _BOB_CACHE.setdefault("pair", (make_router("alice", clock), make_router("bob", clock)))
    initiator, responder = make_pair(clock, *routers, seed="m")
    message = data.draw(st.sampled_from([1, 2, 3]))
    try:
        wire = initiator.data_to_send()
        if message == 1:
            wire = _mutate(data, wire)
        responder.feed(wire)
        wire = responder.data_to_send()
        if message == 2:
            wire = _mutate(data, wire)
        initiator.feed(wire)
        wire = initiator.data_to_send()
        if message == 3:
            wire = _mutate(data, wire)
        responder.feed(wire)
    except ProtocolError:
        return
    assert not responder.complete or responder.result.keys.receive_key == initiator.result.keys.send_key


def _mutate(data, wire: bytes) -> bytes:
    wire = bytearray(wire)
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] ^= data.draw(st.integers(1, 255))
    return bytes(wire[:data.draw(st.integers(0, len(wire)))])
