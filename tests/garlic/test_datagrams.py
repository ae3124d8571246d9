"""Datagram formats 17-20: layouts, round trips, signatures (offline too), hostile bytes."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.crypto import signing
from core.crypto.hashes import sha256
from core.data.errors import ParseError, ProtocolError
from core.data.primitives import Mapping
from core.data.privatekeys import PrivateKeys
from core.datagram import (PROTO_DATAGRAM, PROTO_DATAGRAM2, PROTO_DATAGRAM3, PROTO_RAW, Datagram1, Datagram2,
                           Datagram3, RawDatagram, parse_datagram)

from .helpers import CountingRng
from .test_fuzz import mutated

NOW = 1_750_000_000
KEYS = PrivateKeys.generate(rng=CountingRng(b"dg-ed25519"))
OFFLINE = KEYS.with_offline_key(expires=NOW + 3600, rng=CountingRng(b"dg-transient"))
DSA_KEYS = PrivateKeys.generate(sig_type=0, rng=CountingRng(b"dg-dsa"))
P256_KEYS = PrivateKeys.generate(sig_type=1, rng=CountingRng(b"dg-p256"))
TARGET = sha256(b"the receiving destination")
OPTIONS = Mapping.from_dict({"a": "1", "b": "two"})


def test_raw_is_the_payload():
    assert RawDatagram(b"abc").to_bytes() == b"abc" and RawDatagram.parse(b"") == RawDatagram(b"")
    assert parse_datagram(PROTO_RAW, b"xyz") == RawDatagram(b"xyz")


@pytest.mark.parametrize("keys", [KEYS, DSA_KEYS, P256_KEYS], ids=["ed25519", "dsa", "p256"])
def test_datagram1_layout_and_signature(keys):
    dg = Datagram1.create(keys, b"hello")
    data = dg.to_bytes()
    dest = keys.destination.to_bytes()
    assert data[:len(dest)] == dest and data.endswith(b"hello")
    assert len(data) == len(dest) + keys.destination.signature_len + 5
    parsed = parse_datagram(PROTO_DATAGRAM, data)
    assert parsed == dg and parsed.verify()
    # DSA_SHA1 signs the payload's SHA-256, every other type the payload itself
    signed = sha256(b"hello") if keys is DSA_KEYS else b"hello"
    assert signing.verify(keys.destination.sig_type, keys.destination.signing_public_key, signed, dg.signature)
    tampered = Datagram1(dg.from_destination, dg.signature, b"hellp")
    assert not tampered.verify()


def test_datagram1_cannot_carry_offline_keys():
    with pytest.raises(ValueError):
        Datagram1.create(OFFLINE, b"x")


@pytest.mark.parametrize("options", [None, OPTIONS])
def test_datagram2_layout_signature_and_target_binding(options):
    dg = Datagram2.create(KEYS, b"payload", TARGET, options=options)
    data = dg.to_bytes()
    dest = KEYS.destination.to_bytes()
    flags = 0x0002 | (0x10 if options else 0)
    opt = options.to_bytes() if options else b""
    assert data == dest + flags.to_bytes(2, "big") + opt + b"payload" + dg.signature
    assert signing.verify(7, KEYS.destination.signing_public_key, TARGET + data[len(dest):-64], dg.signature)
    parsed = parse_datagram(PROTO_DATAGRAM2, data)
    assert parsed == dg and parsed.verify(TARGET, NOW)
    assert not parsed.verify(sha256(b"another destination"), NOW)   # replayed to someone else


def test_datagram2_with_offline_signature():
    dg = Datagram2.create(OFFLINE, b"p", TARGET)
    assert dg.offline_signature is not None and dg.flags == 0x0022
    parsed = Datagram2.parse(dg.to_bytes())
    assert parsed == dg
    assert parsed.verify(TARGET, NOW)
    assert not parsed.verify(TARGET, NOW + 3601)                     # transient key expired
    forged = Datagram2.create(KEYS.with_offline_key(expires=NOW + 3600, rng=CountingRng(b"other")), b"p", TARGET)
    mixed = Datagram2(dg.from_destination, b"p", forged.signature, None, dg.offline_signature)
    assert not mixed.verify(TARGET, NOW)
    other = PrivateKeys.generate(rng=CountingRng(b"imposter"))
    stolen = Datagram2(other.destination, b"p", dg.signature, None, dg.offline_signature)
    assert not stolen.verify(TARGET, NOW)                             # offline block not signed by this sender


def test_datagram2_future_flag_bits_round_trip_and_version_is_checked():
    dg = Datagram2.create(KEYS, b"x", TARGET)
    data = bytearray(dg.to_bytes())
    at = len(KEYS.destination.to_bytes())
    data[at] |= 0x80
    assert Datagram2.parse(bytes(data)).to_bytes() == bytes(data)
    data[at + 1] = 0x03
    with pytest.raises(ParseError, match="version"):
        Datagram2.parse(bytes(data))


def test_datagram3_layout():
    dg = Datagram3(KEYS.destination.hash, b"data", OPTIONS)
    data = dg.to_bytes()
    assert data == KEYS.destination.hash + bytes.fromhex("0013") + OPTIONS.to_bytes() + b"data"
    assert parse_datagram(PROTO_DATAGRAM3, data) == dg
    assert Datagram3.parse(KEYS.destination.hash + bytes.fromhex("0003")) == Datagram3(KEYS.destination.hash, b"")
    with pytest.raises(ParseError, match="version"):
        Datagram3.parse(KEYS.destination.hash + bytes.fromhex("0002"))
    with pytest.raises(ParseError):
        parse_datagram(6, b"")


_SAMPLES = [Datagram1.create(KEYS, b"d1").to_bytes(), Datagram2.create(KEYS, b"d2", TARGET, options=OPTIONS).to_bytes(),
            Datagram2.create(OFFLINE, b"d2", TARGET).to_bytes(), Datagram3(TARGET, b"d3", OPTIONS).to_bytes()]


@settings(max_examples=300)
@given(st.sampled_from([PROTO_RAW, PROTO_DATAGRAM, PROTO_DATAGRAM2, PROTO_DATAGRAM3]),
       st.one_of(st.binary(max_size=600), mutated(st.sampled_from(_SAMPLES))))
def test_hostile_bytes_give_only_protocol_errors(protocol, data):
    try:
        dg = parse_datagram(protocol, data)
    except ProtocolError:
        return
    assert dg.to_bytes() == data
    if isinstance(dg, Datagram1):
        dg.verify()
    elif isinstance(dg, Datagram2):
        dg.verify(TARGET, NOW)


@given(st.binary(max_size=200), st.booleans())
def test_datagram2_round_trip(payload, with_options):
    dg = Datagram2.create(KEYS, payload, TARGET, options=OPTIONS if with_options else None)
    assert Datagram2.parse(dg.to_bytes()) == dg and dg.verify(TARGET, NOW)
