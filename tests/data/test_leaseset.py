"""LeaseSet family: layouts by hand from the spec, creation, signatures, limits, dispatch by store type."""
import random

import pytest

from core.crypto import signing
from core.crypto.hashes import sha256
from core.data.errors import ParseError, ProtocolError, SignatureError
from core.data.identity import Destination
from core.data.leaseset import (FLAG_BLINDED, FLAG_OFFLINE_KEYS, FLAG_UNPUBLISHED, EncryptedLeaseSet, Lease,
                                Lease2, LeaseSet, LeaseSet2, LeaseSet2Header, MetaLease, MetaLeaseSet,
                                OfflineSignature, parse_leaseset, store_type)
from core.data.primitives import Mapping
from core.data.privatekeys import PrivateKeys
from core.data.reader import Reader

NOW = 1_750_000_000


def seeded_rng(seed):
    gen = random.Random(seed)
    return lambda n: gen.randbytes(n)


RNG = seeded_rng(7)
KEYS = PrivateKeys.generate(7, 4, seeded_rng(1))
OTHER_KEYS = PrivateKeys.generate(7, 4, seeded_rng(2))
OFFLINE_KEYS = KEYS.with_offline_key(expires=NOW + 86400, rng=seeded_rng(3))
X25519_KEY = bytes(range(32))
LEASE2S = (Lease2(b"\x11" * 32, 0x01020304, NOW + 600), Lease2(b"\x22" * 32, 7, NOW + 500))


def make_ls2(keys=KEYS, **overrides):
    args = dict(published=NOW, expires_offset=600, encryption_keys=[(4, X25519_KEY)], leases=LEASE2S,
                options=Mapping.from_dict({"a": "1"}))
    args.update(overrides)
    return LeaseSet2.create(keys, **args)


def flipped_copies(data: bytes):
    """Every byte position with one bit flipped (the bit rotates with the position)."""
    for i in range(len(data)):
        yield data[:i] + bytes([data[i] ^ (1 << (i % 8))]) + data[i + 1:]


def rejects(cls, data: bytes, now=NOW) -> bool:
    try:
        value = cls.parse(data)
    except ProtocolError:
        return True
    return not value.verify(now)


# ---------------------------------------------------------------- leases

def test_lease_layout():
    lease = Lease(b"\xaa" * 32, 0x01020304, 0x0102030405060708)
    assert lease.to_bytes() == b"\xaa" * 32 + bytes.fromhex("01020304" "0102030405060708")
    assert Lease.parse(lease.to_bytes()) == lease
    assert lease.end_date_ms == 0x0102030405060708


def test_lease2_and_meta_lease_layout():
    lease = Lease2(b"\xbb" * 32, 5, 0x61000000)
    assert lease.to_bytes() == b"\xbb" * 32 + bytes.fromhex("00000005" "61000000") and len(lease.to_bytes()) == 40
    assert Lease2.parse(lease.to_bytes()) == lease and lease.end_date_ms == 0x61000000 * 1000
    meta = MetaLease(b"\xcc" * 32, 0x000003, 9, 0x61000000)
    assert meta.to_bytes() == b"\xcc" * 32 + bytes.fromhex("000003" "09" "61000000")
    assert MetaLease.parse(meta.to_bytes()) == meta and meta.entry_type == 3


@pytest.mark.parametrize("cls,size", [(Lease, 44), (Lease2, 40), (MetaLease, 40)])
def test_lease_sizes_are_strict(cls, size):
    for n in (0, size - 1, size + 1):
        with pytest.raises(ParseError):
            cls.parse(bytes(n))
    assert cls.parse(bytes(size)).to_bytes() == bytes(size)


# ---------------------------------------------------------------- LeaseSet (type 1)

def test_leaseset_layout_sign_verify():
    elgamal = bytes(range(256))
    leases = [Lease(b"\x01" * 32, 1, 2_000_000), Lease(b"\x02" * 32, 2, 1_000_000)]
    ls = LeaseSet.create(KEYS, elgamal, leases, rng=RNG)
    dest = KEYS.destination.to_bytes()
    body = dest + elgamal + ls.signing_key + b"\x02" + leases[0].to_bytes() + leases[1].to_bytes()
    assert len(ls.signing_key) == 32 and len(ls.signature) == 64
    assert ls.to_bytes() == body + ls.signature
    assert signing.verify(7, KEYS.destination.signing_public_key, body, ls.signature)  # no store type prefix
    assert LeaseSet.parse(ls.to_bytes()) == ls and ls.verify()
    assert ls.published_ms == 1_000_000 and ls.expires == 2_000_000 and ls.hash == KEYS.destination.hash
    assert store_type(ls) == 1 and parse_leaseset(1, ls.to_bytes()) == ls


def test_leaseset_every_flipped_bit_is_rejected():
    ls = LeaseSet.create(KEYS, bytes(256), [Lease(b"\x01" * 32, 1, 5)], rng=RNG)
    assert all(rejects(LeaseSet, bad) for bad in flipped_copies(ls.to_bytes()))


@pytest.mark.parametrize("sig_type,key_len,sig_len", [(0, 128, 40), (1, 64, 64), (3, 132, 132)])
def test_leaseset_signing_key_and_signature_sized_by_destination(sig_type, key_len, sig_len):
    keys = PrivateKeys.generate(sig_type, 0 if sig_type == 0 else 4, seeded_rng(10 + sig_type))
    ls = LeaseSet.create(keys, bytes(256), [Lease(b"\x01" * 32, 1, 5)], rng=RNG)
    assert len(ls.signing_key) == key_len and len(ls.signature) == sig_len
    parsed = LeaseSet.parse(ls.to_bytes())
    assert parsed == ls and parsed.verify()
    assert len(ls.to_bytes()) == len(keys.destination.to_bytes()) + 256 + key_len + 1 + 44 + sig_len


def test_leaseset_rsa_destination_parses_with_full_length_keys():
    rng = seeded_rng(4)
    dest = Destination.create(signing_public_key=rng(256), sig_type=4, crypto_type=0, rng=rng)
    data = dest.to_bytes() + rng(256) + rng(256) + b"\x00" + rng(256)
    ls = LeaseSet.parse(data)
    assert len(ls.signing_key) == 256 and len(ls.signature) == 256 and ls.to_bytes() == data


def test_leaseset_limits():
    ls = LeaseSet.create(KEYS, bytes(256), [], rng=RNG)
    assert LeaseSet.parse(ls.to_bytes()).leases == ()
    prefix = KEYS.destination.to_bytes() + bytes(256 + 32)
    with pytest.raises(ParseError, match="17 leases"):
        LeaseSet.parse(prefix + b"\x11" + bytes(44 * 17 + 64))
    with pytest.raises(ParseError):
        LeaseSet.parse(ls.to_bytes() + b"\x00")
    with pytest.raises(ParseError):
        LeaseSet.parse(ls.to_bytes()[:-1])
    with pytest.raises(SignatureError):
        LeaseSet.create(OFFLINE_KEYS, bytes(256), [], rng=RNG)


# ---------------------------------------------------------------- OfflineSignature

def test_offline_signature_layout_and_verify():
    block = OfflineSignature(OFFLINE_KEYS.transient.expires, 7, OFFLINE_KEYS.transient.public_key,
                             OFFLINE_KEYS.transient.signature)
    data = block.to_bytes()
    assert data == (NOW + 86400).to_bytes(4, "big") + b"\x00\x07" + block.transient_public_key + block.signature
    assert OfflineSignature.parse(data, 7) == block
    assert block.verify(KEYS.destination, NOW) and block.verify(KEYS.destination, None)
    assert not block.verify(KEYS.destination, NOW + 86401)
    assert block.verify(KEYS.destination, NOW + 86400)  # still valid at its expiry second
    assert not block.verify(OTHER_KEYS.destination, NOW)
    with pytest.raises(ParseError, match="unknown transient signing type"):
        OfflineSignature.parse(data[:4] + b"\x00\x63" + data[6:], 7)
    # the signature length follows the signer's type, not the transient one
    with pytest.raises(ParseError):
        OfflineSignature.parse(data, 0)


def test_offline_signature_create_by_any_signer():
    transient_private, transient_public = signing.generate(7, seeded_rng(5))
    block = OfflineSignature.create(KEYS.sign, expires=NOW + 60, transient_sig_type=7,
                                    transient_public_key=transient_public)
    assert block.verify(KEYS.destination, NOW)
    assert block.verify_with_key(7, KEYS.destination.signing_public_key, NOW)
    signature = signing.sign(7, transient_private, b"data")
    assert block.verify_transient(b"data", signature) and not block.verify_transient(b"datA", signature)


# ---------------------------------------------------------------- LeaseSet2 (type 3)

def test_leaseset2_layout_by_hand():
    ls = make_ls2()
    dest = KEYS.destination.to_bytes()
    header = dest + NOW.to_bytes(4, "big") + (600).to_bytes(2, "big") + b"\x00\x00"
    options = b"\x00\x06" + b"\x01a=\x011;"
    keys = b"\x01" + b"\x00\x04" + b"\x00\x20" + X25519_KEY
    leases = b"\x02" + LEASE2S[0].to_bytes() + LEASE2S[1].to_bytes()
    body = header + options + keys + leases
    assert ls.header.to_bytes() == header
    assert ls.to_bytes() == body + ls.signature and len(ls.signature) == 64
    assert ls.signed_data() == b"\x03" + body
    assert signing.verify(7, KEYS.destination.signing_public_key, b"\x03" + body, ls.signature)
    assert LeaseSet2.parse(ls.to_bytes()) == ls and ls.verify(NOW)
    assert ls.published_ms == NOW * 1000 and ls.expires == (NOW + 600) * 1000
    assert ls.hash == KEYS.destination.hash and ls.destination == KEYS.destination
    assert not ls.header.offline_keys and not ls.unpublished and not ls.header.blinded


def test_leaseset2_signature_covers_the_store_type():
    ls = make_ls2()
    body = ls.to_bytes()[:-64]
    for wrong in (body, b"\x07" + body, b"\x05" + body, b"\x01" + body):
        forged = LeaseSet2.parse(body + KEYS.sign(wrong))
        assert not forged.verify(NOW)


def test_leaseset2_every_flipped_bit_is_rejected():
    ls = make_ls2(leases=LEASE2S[:1])
    assert all(rejects(LeaseSet2, bad) for bad in flipped_copies(ls.to_bytes()))


def test_leaseset2_signed_by_someone_else_is_rejected():
    ls = make_ls2()
    forged = LeaseSet2(ls.header, ls.options, ls.encryption_keys, ls.leases, OTHER_KEYS.sign(ls.signed_data()))
    assert not forged.verify(NOW)


def test_leaseset2_offline_keys():
    ls = make_ls2(OFFLINE_KEYS)
    header = ls.header
    assert header.offline_keys and header.flags == FLAG_OFFLINE_KEYS
    assert header.offline_signature.transient_public_key == OFFLINE_KEYS.transient.public_key
    data = ls.to_bytes()
    dest_len = len(KEYS.destination.to_bytes())
    assert data[dest_len + 8:dest_len + 8 + 102] == OFFLINE_KEYS.transient.offline_signature_bytes
    parsed = LeaseSet2.parse(data)
    assert parsed == ls and parsed.verify(NOW)
    assert signing.verify(7, OFFLINE_KEYS.transient.public_key, ls.signed_data(), ls.signature)
    assert not signing.verify(7, KEYS.destination.signing_public_key, ls.signed_data(), ls.signature)
    # expired transient key: rejected once `now` passes its expiry
    assert not parsed.verify(NOW + 86401)
    assert parsed.verify(None)
    assert all(rejects(LeaseSet2, bad) for bad in flipped_copies(data))


def test_leaseset2_offline_block_not_from_the_destination_is_rejected():
    foreign = OTHER_KEYS.with_offline_key(expires=NOW + 3600, rng=seeded_rng(6))
    stolen = OfflineSignature(foreign.transient.expires, 7, foreign.transient.public_key, foreign.transient.signature)
    header = LeaseSet2Header(KEYS.destination, NOW, 600, FLAG_OFFLINE_KEYS, stolen)
    unsigned = LeaseSet2(header, Mapping(), ((4, X25519_KEY),), LEASE2S, b"")
    forged = LeaseSet2(header, Mapping(), ((4, X25519_KEY),), LEASE2S, foreign.sign(unsigned.signed_data()))
    assert LeaseSet2.parse(forged.to_bytes()) == forged
    assert not forged.verify(NOW)


def test_leaseset2_transient_key_of_another_type_sets_signature_length():
    keys = KEYS.with_offline_key(expires=NOW + 3600, rng=seeded_rng(8), transient_sig_type=1)
    ls = make_ls2(keys)
    assert len(ls.signature) == 64 and ls.header.signature_len == 64
    keys = KEYS.with_offline_key(expires=NOW + 3600, rng=seeded_rng(8), transient_sig_type=3)
    ls = make_ls2(keys)
    assert len(ls.signature) == 132 and ls.header.offline_signature.transient_sig_type == 3
    parsed = LeaseSet2.parse(ls.to_bytes())
    assert parsed == ls and parsed.verify(NOW)


def test_leaseset2_ecdsa_destination():
    keys = PrivateKeys.generate(1, 4, seeded_rng(9))
    ls = make_ls2(keys)
    assert LeaseSet2.parse(ls.to_bytes()).verify(NOW)


def test_leaseset2_flags_unpublished_and_blinded():
    assert make_ls2(unpublished=True).header.flags == FLAG_UNPUBLISHED
    blinded = make_ls2(blinded=True)
    assert blinded.header.flags == FLAG_UNPUBLISHED | FLAG_BLINDED  # bit 2 requires bit 1
    assert blinded.unpublished and blinded.header.blinded and blinded.verify(NOW)
    assert make_ls2(OFFLINE_KEYS, unpublished=True).header.flags == FLAG_OFFLINE_KEYS | FLAG_UNPUBLISHED


def test_leaseset2_keys_by_type_and_preference():
    elgamal = bytes(256)
    ls = make_ls2(encryption_keys=[(0, elgamal), (4, X25519_KEY), (6, b"\x06" * 32)])
    assert list(ls.keys_by_type) == [4, 0, 6]
    assert ls.keys_by_type[0] == elgamal and ls.encryption_key(4) == X25519_KEY and ls.encryption_key(1) is None
    assert ls.select_encryption_key({4, 0}) == (0, elgamal)  # the server's order wins
    assert ls.select_encryption_key({4}) == (4, X25519_KEY)
    assert ls.select_encryption_key({2}) is None
    assert LeaseSet2.parse(ls.to_bytes()) == ls


def test_leaseset2_unknown_crypto_type_keeps_its_length():
    ls = make_ls2(encryption_keys=[(4, X25519_KEY), (999, b"\x09" * 17)])
    parsed = LeaseSet2.parse(ls.to_bytes())
    assert parsed.encryption_keys == ((4, X25519_KEY), (999, b"\x09" * 17)) and parsed.verify(NOW)


def _ls2_body_parts(ls):
    header = ls.header.to_bytes() + ls.options.to_bytes()
    keys = bytes([len(ls.encryption_keys)]) + b"".join(
        t.to_bytes(2, "big") + len(k).to_bytes(2, "big") + k for t, k in ls.encryption_keys)
    leases = bytes([len(ls.leases)]) + b"".join(lease.to_bytes() for lease in ls.leases)
    return header, keys, leases


def test_leaseset2_limits():
    ls = make_ls2()
    header, keys, leases = _ls2_body_parts(ls)
    sig = ls.signature
    assert LeaseSet2.parse(header + keys + leases + sig) == ls
    assert LeaseSet2.parse(header + keys + b"\x00" + sig).leases == ()
    with pytest.raises(ParseError, match="17 leases"):
        LeaseSet2.parse(header + keys + b"\x11" + bytes(40 * 17) + sig)
    with pytest.raises(ParseError, match="0 encryption keys"):
        LeaseSet2.parse(header + b"\x00" + leases + sig)
    nine = b"\x09" + (b"\x00\x04\x00\x20" + X25519_KEY) * 9
    with pytest.raises(ParseError, match="9 encryption keys"):
        LeaseSet2.parse(header + nine + leases + sig)
    wrong_len = b"\x01\x00\x04\x00\x21" + X25519_KEY + b"\x00"
    with pytest.raises(ParseError, match="crypto type 4"):
        LeaseSet2.parse(header + wrong_len + leases + sig)
    with pytest.raises(ParseError):
        LeaseSet2.parse(ls.to_bytes() + b"\x00")
    with pytest.raises(ParseError):
        LeaseSet2.parse(ls.to_bytes()[:-1])


def test_leaseset2_unsorted_options_round_trip_as_sent():
    options = Mapping((("z", "1"), ("a", "2")))
    ls = make_ls2(options=options)
    parsed = LeaseSet2.parse(ls.to_bytes())
    assert parsed.options.items == (("z", "1"), ("a", "2")) and parsed.verify(NOW)


# ---------------------------------------------------------------- MetaLeaseSet (type 7)

def test_meta_leaseset_layout_sign_verify():
    leases = [MetaLease(b"\x44" * 32, 3, 1, NOW + 100), MetaLease(b"\x55" * 32, 5, 2, NOW + 200)]
    revoked = [b"\x66" * 32]
    meta = MetaLeaseSet.create(KEYS, published=NOW, expires_offset=65535, leases=leases, revocations=revoked)
    body = (meta.header.to_bytes() + b"\x00\x00" + b"\x02" + leases[0].to_bytes() + leases[1].to_bytes()
            + b"\x01" + revoked[0])
    assert meta.to_bytes() == body + meta.signature and meta.signed_data() == b"\x07" + body
    parsed = MetaLeaseSet.parse(meta.to_bytes())
    assert parsed == meta and parsed.verify(NOW) and store_type(meta) == 7
    assert meta.expires == (NOW + 65535) * 1000
    forged = MetaLeaseSet.parse(body + KEYS.sign(b"\x03" + body))
    assert not forged.verify(NOW)
    assert all(rejects(MetaLeaseSet, bad) for bad in flipped_copies(meta.to_bytes()))


def test_meta_leaseset_offline_and_limits():
    meta = MetaLeaseSet.create(OFFLINE_KEYS, published=NOW, expires_offset=600,
                               leases=[MetaLease(b"\x44" * 32, 3, 1, NOW + 100)])
    assert MetaLeaseSet.parse(meta.to_bytes()).verify(NOW)
    assert not meta.verify(NOW + 86401)
    header = meta.header.to_bytes() + b"\x00\x00"
    with pytest.raises(ParseError, match="at least one MetaLease"):
        MetaLeaseSet.parse(header + b"\x00\x00" + meta.signature)


# ---------------------------------------------------------------- EncryptedLeaseSet (type 5)

BLINDED_PRIVATE, BLINDED_PUBLIC = signing.generate(11, seeded_rng(20))


def blinded_sign(data: bytes) -> bytes:
    return signing.sign(11, BLINDED_PRIVATE, data, seeded_rng(21))


def make_encrypted(**overrides):
    args = dict(blinded_sig_type=11, blinded_public_key=BLINDED_PUBLIC, published=NOW, expires_offset=600,
                encrypted_data=bytes(range(100)))
    sign = overrides.pop("sign", blinded_sign)
    args.update(overrides)
    return EncryptedLeaseSet.create(sign, **args)


def test_encrypted_leaseset_layout_and_red25519_signature():
    els = make_encrypted()
    body = (b"\x00\x0b" + BLINDED_PUBLIC + NOW.to_bytes(4, "big") + b"\x02\x58" + b"\x00\x00"
            + b"\x00\x64" + bytes(range(100)))
    assert els.to_bytes() == body + els.signature and len(els.signature) == 64
    assert els.signed_data() == b"\x05" + body
    parsed = EncryptedLeaseSet.parse(els.to_bytes())
    assert parsed == els and parsed.verify(NOW)
    assert els.hash == sha256(b"\x00\x0b" + BLINDED_PUBLIC)
    assert els.published_ms == NOW * 1000 and els.expires == (NOW + 600) * 1000
    assert store_type(els) == 5 and parse_leaseset(5, els.to_bytes()) == els
    forged = EncryptedLeaseSet.parse(body + blinded_sign(b"\x03" + body))
    assert not forged.verify(NOW)
    assert all(rejects(EncryptedLeaseSet, bad) for bad in flipped_copies(els.to_bytes()))


def test_encrypted_leaseset_offline_keys():
    transient_private, transient_public = signing.generate(7, seeded_rng(22))
    block = OfflineSignature.create(blinded_sign, expires=NOW + 3600, transient_sig_type=7,
                                    transient_public_key=transient_public)
    els = EncryptedLeaseSet.create(lambda d: signing.sign(7, transient_private, d), blinded_sig_type=11,
                                   blinded_public_key=BLINDED_PUBLIC, published=NOW, expires_offset=600,
                                   encrypted_data=b"\x01" * 40, offline_signature=block, unpublished=True)
    assert els.flags == FLAG_OFFLINE_KEYS | FLAG_UNPUBLISHED and els.offline_keys and els.unpublished
    parsed = EncryptedLeaseSet.parse(els.to_bytes())
    assert parsed == els and parsed.verify(NOW)
    assert not parsed.verify(NOW + 3601)
    assert all(rejects(EncryptedLeaseSet, bad) for bad in flipped_copies(els.to_bytes()))
    # signed by the blinded key although the header names a transient key
    wrong = EncryptedLeaseSet.create(blinded_sign, blinded_sig_type=11, blinded_public_key=BLINDED_PUBLIC,
                                     published=NOW, expires_offset=600, encrypted_data=b"\x01" * 40,
                                     offline_signature=block)
    assert not wrong.verify(NOW)


def test_encrypted_leaseset_ed25519_outer_layer():
    els = make_encrypted(blinded_sig_type=7, blinded_public_key=KEYS.destination.signing_public_key, sign=KEYS.sign)
    assert EncryptedLeaseSet.parse(els.to_bytes()).verify(NOW)


def test_encrypted_leaseset_limits():
    els = make_encrypted()
    data = els.to_bytes()
    head = data[:2 + 32 + 8]
    with pytest.raises(ParseError, match="empty encrypted data"):
        EncryptedLeaseSet.parse(head + b"\x00\x00" + els.signature)
    with pytest.raises(ParseError, match="unknown blinded signing type"):
        EncryptedLeaseSet.parse(b"\x00\x63" + data[2:])
    with pytest.raises(ParseError):
        EncryptedLeaseSet.parse(data + b"\x00")
    with pytest.raises(ParseError):
        EncryptedLeaseSet.parse(data[:-1])


# ---------------------------------------------------------------- dispatch

def test_parse_leaseset_by_store_type():
    ls = make_ls2()
    assert parse_leaseset(3, ls.to_bytes()) == ls and store_type(ls) == 3
    for wrong in (0, 2, 4, 6, 8, 255):
        with pytest.raises(ParseError, match="not a leaseset"):
            parse_leaseset(wrong, ls.to_bytes())
    # the same bytes under another store type do not pass as that type
    with pytest.raises(ProtocolError):
        parse_leaseset(7, ls.to_bytes())
    with pytest.raises(ProtocolError):
        parse_leaseset(1, ls.to_bytes())
    with pytest.raises(TypeError):
        store_type(LEASE2S[0])


def test_header_reader_position():
    ls = make_ls2(OFFLINE_KEYS)
    r = Reader(ls.to_bytes(), "LeaseSet2")
    header = LeaseSet2Header.read(r)
    assert header == ls.header and r.pos == len(ls.header.to_bytes())
    assert header.expires == NOW + 600


def test_constructors_reject_bad_values_with_parse_error():
    with pytest.raises(ParseError, match="Lease"):
        Lease(b"\x00" * 31, 1, 1)
    with pytest.raises(ParseError):
        Lease2(b"\x00" * 32, 1 << 32, 1)
    with pytest.raises(ParseError, match="disagree"):
        LeaseSet2Header(KEYS.destination, NOW, 600, FLAG_OFFLINE_KEYS, None)
    with pytest.raises(ParseError, match="key length"):
        make_ls2(encryption_keys=[(4, b"\x00" * 31)])
    with pytest.raises(ParseError, match="1 to 8"):
        make_ls2(encryption_keys=[])
    with pytest.raises(ParseError, match="unknown transient"):
        OfflineSignature(NOW, 99, b"", b"")
    with pytest.raises(ParseError, match="1 to 65535"):
        make_encrypted(encrypted_data=b"")
