import pytest
from hypothesis import given, strategies as st

from core.data.certificate import (NULL_CERTIFICATE, Certificate, KeyCertificate, key_layout)
from core.data.errors import ParseError, ProtocolError
from core.data.keytypes import CRYPTO_TYPES, SIG_TYPES


def test_null_certificate():
    assert NULL_CERTIFICATE.to_bytes() == b"\x00\x00\x00"
    assert Certificate.parse(b"\x00\x00\x00") == NULL_CERTIFICATE
    assert len(NULL_CERTIFICATE) == 3


def test_key_certificate_ed25519_x25519():
    cert = Certificate.parse(bytes.fromhex("050004" "0007" "0004"))
    key_cert = KeyCertificate.from_certificate(cert)
    assert (key_cert.sig_type, key_cert.crypto_type) == (7, 4)
    assert key_cert.sig_type_info.name == "EdDSA_SHA512_Ed25519"
    assert key_cert.crypto_type_info.name == "X25519"
    assert key_cert.to_certificate() == cert


@pytest.mark.parametrize("sig_type, padding, excess", [
    # the spec's "Example layouts" table (ElGamal crypto key)
    (0, 0, 0), (1, 64, 0), (2, 32, 0), (3, 0, 4), (4, 0, 128), (5, 0, 256), (6, 0, 384), (7, 96, 0), (8, 96, 0),
])
def test_layouts_match_spec_table(sig_type, padding, excess):
    layout = key_layout(sig_type, 0)
    assert layout.padding == padding and layout.excess_signing == excess


def test_x25519_ed25519_layout():
    assert key_layout(7, 4) == (32, 320, 32, 0, 0)


def test_all_named_types_known():
    for code in range(12):
        assert SIG_TYPES[code].name
    for code in (0, 4, 5, 6, 7):
        assert CRYPTO_TYPES[code].name


@pytest.mark.parametrize("data", [
    b"\x00\x00\x01\x00",               # NULL with payload
    b"\x02\x00\x01\x00",               # HIDDEN with payload
    b"\x03\x00\x01\x00",               # SIGNED of a wrong size
    b"\x05\x00\x02\x00\x07",           # KEY too short
    b"\x05\x00\x04\x00",               # truncated
    b"\x00\x00",                       # truncated header
    b"\x00\x00\x00\x00",               # trailing byte
])
def test_certificate_rejects(data):
    with pytest.raises(ParseError):
        Certificate.parse(data)


@pytest.mark.parametrize("payload", [
    bytes.fromhex("00070004ff"),       # excess data for types that have none
    bytes.fromhex("000c0004"),         # unknown signing type
    bytes.fromhex("000700ff"),         # unknown crypto type
    bytes.fromhex("00030000"),         # P521 without its 4 excess bytes
])
def test_key_certificate_rejects(payload):
    with pytest.raises(ParseError):
        KeyCertificate.from_certificate(Certificate(Certificate.KEY, payload))


def test_key_certificate_excess_split():
    key_cert = KeyCertificate.from_certificate(Certificate(Certificate.KEY, bytes.fromhex("00030000") + b"wxyz"))
    assert key_cert.excess_signing_key == b"wxyz" and key_cert.excess_crypto_key == b""
    with pytest.raises(ParseError):
        KeyCertificate.from_certificate(NULL_CERTIFICATE)


certificates = st.one_of(
    st.builds(Certificate, st.sampled_from([0, 2]), st.just(b"")),
    st.builds(Certificate, st.just(3), st.sampled_from([b"s" * 40, b"s" * 72])),
    st.builds(Certificate, st.sampled_from([1, 4, 6, 200]), st.binary(max_size=50)),
    st.builds(Certificate, st.just(5), st.binary(min_size=4, max_size=20)),
)


@given(certificates)
def test_certificate_round_trip(cert):
    assert Certificate.parse(cert.to_bytes()) == cert


@given(st.binary(max_size=40))
def test_certificate_random_bytes(data):
    try:
        cert = Certificate.parse(data)
    except ProtocolError:
        return
    assert cert.to_bytes() == data
    try:
        KeyCertificate.from_certificate(cert)
    except ProtocolError:
        pass


@given(st.sampled_from(sorted(SIG_TYPES)), st.sampled_from([0, 4, 5, 6, 7]), st.binary(min_size=400, max_size=400))
def test_key_certificate_round_trip(sig_type, crypto_type, filler):
    layout = key_layout(sig_type, crypto_type)
    key_cert = KeyCertificate(sig_type, crypto_type, filler[:layout.excess_signing], b"")
    cert = Certificate.parse(key_cert.to_certificate().to_bytes())
    assert KeyCertificate.from_certificate(cert) == key_cert
