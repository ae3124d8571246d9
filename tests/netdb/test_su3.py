"""SU3 files (updates.rst "SU3 File Specification"): layout, round trips, raw signatures, signer certificates."""
import dataclasses
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given
from hypothesis import strategies as st

from core.data.errors import ParseError, ProtocolError, SignatureError
from core.data.keytypes import SIG_TYPES
from core.netdb.su3 import (MAX_CONTENT_BYTES, ContentType, FileType, Su3File, certificate_file_name,
                            find_signer_certificate, make_signer_certificate, verify_with_certificates)

from .test_reseed_support import NOW, SIGNER, ec_key, ed_key, rsa_key, write_cert

KEYS = {
    "RSA_SHA256_2048": (lambda: rsa_key(2048), 4, 256),
    "RSA_SHA512_4096": (lambda: rsa_key(4096), 6, 512),
    "ECDSA_SHA256_P256": (lambda: ec_key("secp256r1"), 1, 64),
    "ECDSA_SHA384_P384": (lambda: ec_key("secp384r1"), 2, 96),
    "ECDSA_SHA512_P521": (lambda: ec_key("secp521r1"), 3, 132),
    "EdDSA_SHA512_Ed25519ph": (lambda: ed_key(), 8, 64),
}


def expected_bytes(sig_type, sig, version: bytes, version_len, signer: bytes, content, file_type, content_type):
    """The layout written out field by field from the spec's table, independently of the codec."""
    header = (b"I2Psu3" + b"\x00" + b"\x00" + struct.pack(">HH", sig_type, len(sig)) + b"\x00"
              + bytes([version_len]) + b"\x00" + bytes([len(signer)]) + struct.pack(">Q", len(content))
              + b"\x00" + bytes([file_type]) + b"\x00" + bytes([content_type]) + b"\x00" * 12)
    assert len(header) == 40
    return header + version.ljust(version_len, b"\x00") + signer + content + sig


@pytest.mark.parametrize("name", KEYS)
def test_signed_round_trip_for_every_allowed_key(name):
    make_key, sig_type, sig_len = KEYS[name]
    key = make_key()
    su3 = Su3File.create(key, SIGNER, b"PK\x05\x06" + bytes(18), version="1790000000")
    data = su3.to_bytes()
    assert su3.sig_type == sig_type and len(su3.signature) == sig_len
    assert data == expected_bytes(sig_type, su3.signature, b"1790000000", 16, SIGNER.encode(), su3.content,
                                  FileType.ZIP, ContentType.RESEED)
    parsed = Su3File.parse(data)
    assert parsed == su3 and parsed.to_bytes() == data
    parsed.verify(key.public_key())


def test_rsa_signature_is_raw_pkcs1_over_the_bare_hash():
    # updates.rst "Signature Details": hash, then raw ("NONEwithRSA") signing, so no DigestInfo in the block
    key = rsa_key(4096)
    su3 = Su3File.create(key, SIGNER, b"content", version="1")
    digest = hashlib.sha512(su3.signed_bytes()).digest()
    assert key.public_key().recover_data_from_signature(su3.signature, padding.PKCS1v15(), None) == digest
    numbers = key.public_key().public_numbers()
    block = pow(int.from_bytes(su3.signature, "big"), numbers.e, numbers.n).to_bytes(512, "big")
    assert block[:2] == b"\x00\x01" and block[-65] == 0 and block[-64:] == digest   # what i2pd compares


def test_rsa_signature_with_digest_info_is_also_accepted():
    # some signers emit standard PKCS#1 v1.5 (with DigestInfo); the digest is the same, so accept it too
    key = rsa_key(2048)
    unsigned = Su3File.create(key, SIGNER, b"content", version="1")
    standard = key.sign(unsigned.signed_bytes(), padding.PKCS1v15(), hashes.SHA256())
    dataclasses.replace(unsigned, signature=standard).verify(key.public_key())


@pytest.mark.parametrize("name", ["RSA_SHA256_2048", "ECDSA_SHA256_P256", "EdDSA_SHA512_Ed25519ph"])
@pytest.mark.parametrize("where", ["header", "version", "signer", "content", "signature"])
def test_any_changed_byte_breaks_the_signature(name, where):
    key = KEYS[name][0]()
    su3 = Su3File.create(key, SIGNER, b"some content here", version="1790000000")
    data = bytearray(su3.to_bytes())
    offset = {"header": 27, "version": 41, "signer": 40 + 16 + 2, "content": 40 + 16 + len(SIGNER) + 3,
              "signature": len(data) - 5}[where]
    data[offset] ^= {"header": 0x07}.get(where, 0x01)      # content type 3 -> 4 stays a valid header
    with pytest.raises(SignatureError):
        Su3File.parse(bytes(data)).verify(key.public_key())


def test_other_key_does_not_verify():
    su3 = Su3File.create(ed_key(1), SIGNER, b"x", version="1")
    with pytest.raises(SignatureError):
        su3.verify(ed_key(2).public_key())
    with pytest.raises(SignatureError, match="does not match"):
        su3.verify(rsa_key(2048).public_key())


def test_long_version_is_not_padded_and_short_one_is():
    su3 = Su3File(8, "x" * 20, SIGNER, 0, 3, b"", bytes(64))
    assert su3.version_length == 20
    assert Su3File.parse(su3.to_bytes()).version == "x" * 20
    assert Su3File(8, "1", SIGNER, 0, 3, b"", bytes(64)).to_bytes()[40:56] == b"1" + bytes(15)
    wide = Su3File(8, "1", SIGNER, 0, 3, b"", bytes(64), version_length=32)
    assert Su3File.parse(wide.to_bytes()) == wide and len(wide.to_bytes()) == 40 + 32 + len(SIGNER) + 64


def valid_file() -> bytes:
    return Su3File.create(ed_key(), SIGNER, b"zipdata", version="1790000000").to_bytes()


def patched(offset: int, value: bytes) -> bytes:
    data = bytearray(valid_file())
    data[offset:offset + len(value)] = value
    return bytes(data)


@pytest.mark.parametrize("data, message", [
    (b"", "truncated"),
    (valid_file()[:39], "truncated"),
    (valid_file()[:-1], "truncated"),
    (valid_file() + b"\x00", "trailing"),
    (patched(0, b"I2Psu4"), "magic"),
    (patched(6, b"\x01"), "unused"),
    (patched(7, b"\x01"), "format version"),
    (patched(8, b"\x00\x07"), "not allowed"),          # plain Ed25519 is not an SU3 type
    (patched(8, b"\x00\x0b"), "not allowed"),
    (patched(10, b"\x00\x41"), "signature length"),
    (patched(12, b"\x01"), "unused"),
    (patched(13, b"\x0f"), "below 16"),
    (patched(15, b"\x00"), "empty signer"),
    (patched(16, (MAX_CONTENT_BYTES + 1).to_bytes(8, "big")), "exceeds"),
    (patched(16, b"\xff" * 8), "exceeds"),
    (patched(25, b"\x07"), "file type"),
    (patched(27, b"\x06"), "content type"),
    (patched(30, b"\x01"), "unused"),
    (patched(40, b"17\x0090"), "NUL"),
    (patched(40 + 16, b"\xff"), "UTF-8"),
])
def test_malformed_files_are_parse_errors(data, message):
    with pytest.raises(ParseError, match=message):
        Su3File.parse(data)


def test_content_cap_can_be_lowered_per_use():
    with pytest.raises(ParseError, match="exceeds 3"):
        Su3File.parse(valid_file(), max_content=3)


@pytest.mark.parametrize("kwargs", [
    {"sig_type": 7}, {"signature": bytes(63)}, {"file_type": 9}, {"content_type": 6}, {"signer_id": ""},
    {"signer_id": "x" * 256}, {"version": "v" * 256}, {"version": "a\x00b"}, {"version_length": 15},
    {"version_length": 17, "version": "y" * 18}, {"version": "\ud800"},
])
def test_constructor_rejects_what_cannot_be_written(kwargs):
    fields = dict(sig_type=8, version="1", signer_id=SIGNER, file_type=0, content_type=3, content=b"",
                  signature=bytes(64))
    fields.update(kwargs)
    with pytest.raises(ParseError):
        Su3File(**fields)


@st.composite
def any_su3(draw):
    sig_type = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 8]))
    version = draw(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20))
    signer = draw(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
    extra = draw(st.integers(0, 20))
    return Su3File(sig_type, version, signer, draw(st.sampled_from(list(FileType))),
                   draw(st.sampled_from(list(ContentType))), draw(st.binary(max_size=200)),
                   draw(st.binary(min_size=SIG_TYPES[sig_type].signature_len,
                                  max_size=SIG_TYPES[sig_type].signature_len)),
                   version_length=max(16, len(version.encode())) + extra)


@given(any_su3())
def test_round_trip_of_any_valid_file(su3):
    data = su3.to_bytes()
    assert Su3File.parse(data) == su3
    assert Su3File.parse(data).to_bytes() == data


@given(st.binary(max_size=400))
def test_random_bytes_raise_only_protocol_errors(data):
    try:
        Su3File.parse(data)
    except ProtocolError:
        pass


@given(st.binary(max_size=400))
def test_random_bytes_after_the_magic_raise_only_protocol_errors(data):
    try:
        Su3File.parse(b"I2Psu3\x00\x00" + data)
    except ProtocolError:
        pass


@given(st.data())
def test_mutated_valid_files_raise_only_protocol_errors(data):
    raw = bytearray(valid_file())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        su3 = Su3File.parse(bytes(raw[:cut]))
        su3.verify(ed_key().public_key())
    except ProtocolError:
        pass


# --- signer certificates

def test_certificate_file_name_follows_the_routers_convention():
    assert certificate_file_name("hottuna@mail.i2p") == "hottuna_at_mail.i2p.crt"
    assert certificate_file_name("r4sas-reseed@mail.i2p") == "r4sas-reseed_at_mail.i2p.crt"


@pytest.mark.parametrize("name", ["RSA_SHA512_4096", "ECDSA_SHA384_P384", "EdDSA_SHA512_Ed25519ph"])
def test_verification_against_a_certificate_folder(tmp_path, name):
    key = KEYS[name][0]()
    write_cert(tmp_path / "certs", key)
    su3 = Su3File.create(key, SIGNER, b"zip", version="1")
    cert = verify_with_certificates(su3, [tmp_path / "empty", tmp_path / "certs"],
                                    content_type=ContentType.RESEED, now=NOW)
    assert cert.subject.rfc4514_string().startswith("CN=tester@mail.i2p")


def test_certificate_found_by_common_name_when_the_file_is_named_otherwise(tmp_path):
    write_cert(tmp_path, ed_key(), name="whatever.crt")
    assert find_signer_certificate(SIGNER, [tmp_path]) is not None


def test_unknown_signer_is_refused_with_the_expected_file_name(tmp_path):
    write_cert(tmp_path, ed_key(), signer="someone@else.i2p")
    su3 = Su3File.create(ed_key(), SIGNER, b"zip", version="1")
    with pytest.raises(SignatureError, match="unknown signer 'tester@mail.i2p'.*tester_at_mail.i2p.crt"):
        verify_with_certificates(su3, [tmp_path], content_type=ContentType.RESEED, now=NOW)


def test_certificate_whose_cn_is_another_signer_is_not_used(tmp_path):
    write_cert(tmp_path, ed_key(), signer="impostor@mail.i2p", name=certificate_file_name(SIGNER))
    with pytest.raises(SignatureError, match="unknown signer"):
        find_signer_certificate(SIGNER, [tmp_path])


@pytest.mark.parametrize("signer", ["../../etc/passwd", "a/b", ".", "x\x00y"])
def test_signer_ids_that_are_paths_are_refused(tmp_path, signer):
    with pytest.raises(SignatureError):
        find_signer_certificate(signer, [tmp_path])


def test_signature_by_another_key_than_the_certificates_fails(tmp_path):
    write_cert(tmp_path, ed_key(1))
    su3 = Su3File.create(ed_key(2), SIGNER, b"zip", version="1")
    with pytest.raises(SignatureError, match="does not verify"):
        verify_with_certificates(su3, [tmp_path], content_type=ContentType.RESEED, now=NOW)


def test_certificate_out_of_its_validity_period_is_refused(tmp_path):
    write_cert(tmp_path, ed_key(), now=NOW - 400 * 86400, days=365)
    su3 = Su3File.create(ed_key(), SIGNER, b"zip", version="1")
    with pytest.raises(SignatureError, match="valid only"):
        verify_with_certificates(su3, [tmp_path], content_type=ContentType.RESEED, now=NOW)
    with pytest.raises(SignatureError, match="valid only"):
        verify_with_certificates(su3, [tmp_path], content_type=ContentType.RESEED, now=NOW - 800 * 86400)


def test_content_type_is_the_trust_domain(tmp_path):
    write_cert(tmp_path, ed_key())
    news = Su3File.create(ed_key(), SIGNER, b"<feed/>", version="1", file_type=FileType.XML,
                          content_type=ContentType.NEWS)
    with pytest.raises(SignatureError, match="content type 4, expected 3"):
        verify_with_certificates(news, [tmp_path], content_type=ContentType.RESEED, now=NOW)


def test_dsa_signed_files_parse_but_are_not_accepted(tmp_path):
    write_cert(tmp_path, ed_key())
    su3 = Su3File.parse(Su3File(0, "1", SIGNER, 0, 3, b"", bytes(40)).to_bytes())
    with pytest.raises(SignatureError, match="DSA"):
        verify_with_certificates(su3, [tmp_path], content_type=ContentType.RESEED, now=NOW)


def test_garbage_certificate_file_is_a_signature_error(tmp_path):
    (tmp_path / certificate_file_name(SIGNER)).write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n")
    with pytest.raises(SignatureError):
        find_signer_certificate(SIGNER, [tmp_path])


@pytest.mark.parametrize("signer", ["", "x" * 65, "a/b@mail.i2p"])
def test_certificates_are_not_made_for_unusable_signer_ids(signer):
    with pytest.raises(ParseError, match="signer id"):
        make_signer_certificate(ed_key(), signer, now=NOW)


def test_made_certificate_names_only_the_signer_and_is_self_signed():
    cert = make_signer_certificate(rsa_key(2048), SIGNER, now=NOW)
    assert cert.subject == cert.issuer and cert.subject.rfc4514_string() == f"CN={SIGNER}"
    cert.verify_directly_issued_by(cert)
