import os
import random
import zlib

import pytest
from hypothesis import given, strategies as st

from core.crypto import signing
from core.crypto.hashes import sha256
from core.data.certificate import NULL_CERTIFICATE, Certificate
from core.data.encoding import b32decode, b64decode
from core.data.errors import ParseError, ProtocolError
from core.data.identity import Destination, KeysAndCert, RouterIdentity, compressible_filler


def seeded_rng(seed=1):
    gen = random.Random(seed)
    return lambda n: gen.randbytes(n)


def make_router_identity(seed=1):
    rng = seeded_rng(seed)
    private, public = signing.generate(7, rng)
    return private, RouterIdentity.create(public_key=rng(32), signing_public_key=public, sig_type=7,
                                          crypto_type=4, rng=rng)


def test_router_identity_layout_and_padding():
    _, ident = make_router_identity()
    data = ident.to_bytes()
    assert len(data) == 391 and len(ident) == 391
    assert data[384:] == bytes.fromhex("05000400070004")
    assert data[32:352] == data[32:64] * 10  # proposal 161: ten copies of one 32-byte block
    assert ident.sig_type == 7 and ident.crypto_type == 4 and ident.signature_len == 64
    assert ident.hash == sha256(data)
    assert len(zlib.compress(data)) < 200
    assert RouterIdentity.parse(data) == ident


def test_destination_create_b32_b64():
    rng = seeded_rng(2)
    _, public = signing.generate(7, rng)
    dest = Destination.create(signing_public_key=public, sig_type=7, crypto_type=0, rng=rng)
    data = dest.to_bytes()
    assert data[:352] == data[:32] * 11  # public key field and padding: eleven copies
    assert data[352:384] == public
    assert dest.crypto_type == 0 and dest.sig_type == 7
    assert dest.b32_address.endswith(".b32.i2p") and len(dest.b32_address) == 60
    assert b32decode(dest.b32_address[:-8]) == dest.hash
    assert b64decode(dest.b64) == data
    assert Destination.from_b64(dest.b64) == dest
    assert "+" not in dest.b64 and "/" not in dest.b64


def test_verify_with_identity():
    rng = seeded_rng(3)
    private, public = signing.generate(7, rng)
    dest = Destination.create(signing_public_key=public, sig_type=7, crypto_type=0, rng=rng)
    sig = signing.sign(7, private, b"hello")
    assert dest.verify(b"hello", sig)
    assert not dest.verify(b"hellO", sig)
    assert not dest.verify(b"hello", sig[:-1])


def test_legacy_null_certificate_identity():
    rng = seeded_rng(4)
    ident = KeysAndCert.create(public_key=rng(256), signing_public_key=rng(128), sig_type=0, crypto_type=0, rng=rng)
    assert ident.certificate == NULL_CERTIFICATE and len(ident) == 387
    assert ident.sig_type == 0 and ident.crypto_type == 0 and ident.signature_len == 40
    assert KeysAndCert.parse(ident.to_bytes()) == ident


def test_excess_signing_key_lives_in_certificate():
    rng = seeded_rng(5)
    signing_key = rng(132)  # P521: 128 bytes in the block, 4 in the certificate
    dest = Destination.create(signing_public_key=signing_key, sig_type=3, crypto_type=0, rng=rng)
    data = dest.to_bytes()
    assert len(data) == 384 + 3 + 4 + 4
    assert data[256:384] == signing_key[:128] and data[-4:] == signing_key[128:]
    again = Destination.parse(data)
    assert again.signing_public_key == signing_key and again == dest


def test_rsa4096_excess():
    rng = seeded_rng(6)
    signing_key = rng(512)
    dest = Destination.create(signing_public_key=signing_key, sig_type=6, crypto_type=0, rng=rng)
    assert len(dest) == 384 + 7 + 384
    assert Destination.parse(dest.to_bytes()).signing_public_key == signing_key


def test_other_certificate_types_keep_default_layout():
    rng = seeded_rng(7)
    data = rng(384) + b"\x03\x00\x28" + rng(40)  # SIGNED certificate
    ident = Destination.parse(data)
    assert ident.sig_type == 0 and ident.signing_public_key == data[256:384] and ident.to_bytes() == data


def test_construct_checks_lengths():
    cert = Certificate(Certificate.KEY, bytes.fromhex("00070004"))
    with pytest.raises(ParseError):
        RouterIdentity(bytes(32), bytes(319), bytes(32), cert)
    with pytest.raises(ParseError):
        RouterIdentity(bytes(32), bytes(320), bytes(31), cert)
    p521 = Certificate(Certificate.KEY, bytes.fromhex("00030000") + b"abcd")
    with pytest.raises(ParseError, match="excess"):
        Destination(bytes(256), b"", bytes(132), p521)


@pytest.mark.parametrize("data", [
    bytes(383),
    bytes(384) + b"\x05\x00\x04\x00\x07\x00\xff",     # unknown crypto type
    bytes(384) + b"\x05\x00\x04\x00\x0c\x00\x04",     # unknown signing type
    bytes(384) + b"\x05\x00\x05\x00\x07\x00\x04\x00",  # excess bytes in the certificate
    bytes(384) + b"\x00\x00\x00\x00",                 # trailing byte
])
def test_parse_rejects(data):
    with pytest.raises(ParseError):
        Destination.parse(data)


def test_identity_types_differ():
    _, ident = make_router_identity()
    assert Destination.parse(ident.to_bytes()) != ident
    assert Destination.parse(ident.to_bytes()).hash == ident.hash


def test_filler_is_repeated_block():
    calls = []

    def rng(n):
        calls.append(n)
        return bytes(range(n))
    assert compressible_filler(70, rng) == bytes(range(32)) * 2 + bytes(range(6))
    assert calls == [32]
    assert compressible_filler(0, rng) == b""


type_pairs = st.sampled_from([(7, 4), (7, 0), (11, 0), (1, 0), (2, 4), (3, 0), (4, 0), (6, 4), (0, 0), (8, 0)])


@given(type_pairs, st.binary(min_size=8, max_size=8), st.sampled_from([Destination, RouterIdentity]))
def test_round_trip(types, seed, cls):
    from core.data.keytypes import SIG_TYPES
    sig_type, crypto_type = types
    rng = seeded_rng(seed)
    public = rng(SIG_TYPES[sig_type].public_key_len)
    ident = cls.create(signing_public_key=public, sig_type=sig_type, crypto_type=crypto_type, rng=rng)
    data = ident.to_bytes()
    again = cls.parse(data)
    assert again == ident and again.to_bytes() == data and again.hash == ident.hash


@given(st.binary(min_size=380, max_size=800))
def test_random_bytes(data):
    try:
        Destination.parse(data)
    except ProtocolError:
        pass


@given(st.data())
def test_mutated_bytes(data):
    _, ident = make_router_identity(9)
    raw = bytearray(ident.to_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(384, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, 8))
    try:
        RouterIdentity.parse(bytes(raw[:len(raw) - cut]))
    except ProtocolError:
        pass
