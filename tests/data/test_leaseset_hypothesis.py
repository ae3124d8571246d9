"""LeaseSet family: hypothesis round trips of every structure; random and mutated bytes into every parser."""
import random

from hypothesis import given, strategies as st

from core.data.errors import ProtocolError
from core.data.identity import Destination
from core.data.keytypes import CRYPTO_TYPES, SIG_TYPES
from core.data.leaseset import (FLAG_OFFLINE_KEYS, EncryptedLeaseSet, Lease, Lease2, LeaseSet, LeaseSet2,
                                LeaseSet2Header, MetaLease, MetaLeaseSet, OfflineSignature, parse_leaseset)
from core.data.primitives import Mapping


def seeded_rng(seed):
    gen = random.Random(seed)
    return lambda n: gen.randbytes(n)


def _destination(sig_type: int, crypto_type: int, seed: int) -> Destination:
    rng = seeded_rng(seed)
    return Destination.create(signing_public_key=rng(SIG_TYPES[sig_type].public_key_len), sig_type=sig_type,
                              crypto_type=crypto_type, rng=rng)


# DSA with a NULL certificate, ECDSA, the P521 and RSA keys that spill into the certificate, EdDSA, RedDSA
DESTINATIONS = [_destination(0, 0, 1), _destination(1, 4, 2), _destination(3, 4, 3), _destination(4, 0, 4),
                _destination(7, 4, 5), _destination(7, 0, 6), _destination(11, 4, 7)]
UNKNOWN_CRYPTO_TYPES = st.integers(0, 0xFFFF).filter(lambda t: t not in CRYPTO_TYPES)

hashes = st.binary(min_size=32, max_size=32)
u8, u16, u32, u64 = (st.integers(0, (1 << bits) - 1) for bits in (8, 16, 32, 64))
destinations = st.sampled_from(DESTINATIONS)
sig_types = st.sampled_from(sorted(SIG_TYPES))

leases = st.builds(Lease, hashes, u32, u64)
lease2s = st.builds(Lease2, hashes, u32, u32)
meta_leases = st.builds(MetaLease, hashes, st.integers(0, (1 << 24) - 1), u8, u32)
short_text = st.text(max_size=12)
mappings = st.one_of(
    st.dictionaries(short_text, short_text, max_size=4).map(Mapping.from_dict),
    st.lists(st.tuples(short_text, short_text), max_size=4, unique_by=lambda kv: kv[0]).map(
        lambda items: Mapping(tuple(items))))


def sized(length: int):
    return st.binary(min_size=length, max_size=length)


@st.composite
def offline_signatures(draw, signer_sig_type: int):
    sig_type = draw(sig_types)
    return OfflineSignature(draw(u32), sig_type, draw(sized(SIG_TYPES[sig_type].public_key_len)),
                            draw(sized(SIG_TYPES[signer_sig_type].signature_len)))


@st.composite
def signer_and_offline(draw):
    sig_type = draw(sig_types)
    return sig_type, draw(offline_signatures(sig_type))


@st.composite
def legacy_leasesets(draw):
    dest = draw(destinations)
    return LeaseSet(dest, draw(sized(256)), draw(sized(LeaseSet.signing_key_len(dest))),
                    tuple(draw(st.lists(leases, max_size=16))), draw(sized(dest.signature_len)))


@st.composite
def headers(draw):
    dest = draw(destinations)
    offline = draw(st.none() | offline_signatures(dest.sig_type))
    flags = draw(u16) & ~FLAG_OFFLINE_KEYS | (FLAG_OFFLINE_KEYS if offline else 0)
    return LeaseSet2Header(dest, draw(u32), draw(u16), flags, offline)


@st.composite
def encryption_keys(draw):
    if draw(st.booleans()):
        crypto_type = draw(st.sampled_from(sorted(CRYPTO_TYPES)))
        return crypto_type, draw(sized(CRYPTO_TYPES[crypto_type].public_key_len))
    return draw(UNKNOWN_CRYPTO_TYPES), draw(st.binary(max_size=40))


@st.composite
def leaseset2s(draw):
    header = draw(headers())
    return LeaseSet2(header, draw(mappings), tuple(draw(st.lists(encryption_keys(), min_size=1, max_size=8))),
                     tuple(draw(st.lists(lease2s, max_size=16))), draw(sized(header.signature_len)))


@st.composite
def meta_leasesets(draw):
    header = draw(headers())
    return MetaLeaseSet(header, draw(mappings), tuple(draw(st.lists(meta_leases, min_size=1, max_size=6))),
                        tuple(draw(st.lists(hashes, max_size=4))), draw(sized(header.signature_len)))


@st.composite
def encrypted_leasesets(draw):
    sig_type = draw(sig_types)
    offline = draw(st.none() | offline_signatures(sig_type))
    flags = draw(u16) & ~FLAG_OFFLINE_KEYS | (FLAG_OFFLINE_KEYS if offline else 0)
    signer_type = offline.transient_sig_type if offline else sig_type
    return EncryptedLeaseSet(sig_type, draw(sized(SIG_TYPES[sig_type].public_key_len)), draw(u32), draw(u16),
                             flags, offline, draw(st.binary(min_size=1, max_size=300)),
                             draw(sized(SIG_TYPES[signer_type].signature_len)))


def check_round_trip(cls, value, *args):
    data = value.to_bytes()
    parsed = cls.parse(data, *args)
    assert parsed == value
    assert parsed.to_bytes() == data


@given(leases)
def test_lease_round_trip(value):
    check_round_trip(Lease, value)


@given(lease2s)
def test_lease2_round_trip(value):
    check_round_trip(Lease2, value)


@given(meta_leases)
def test_meta_lease_round_trip(value):
    check_round_trip(MetaLease, value)


@given(signer_and_offline())
def test_offline_signature_round_trip(pair):
    signer_sig_type, value = pair
    check_round_trip(OfflineSignature, value, signer_sig_type)


@given(legacy_leasesets())
def test_leaseset_round_trip(value):
    check_round_trip(LeaseSet, value)
    assert parse_leaseset(1, value.to_bytes()) == value


@given(headers())
def test_leaseset2_header_round_trip(value):
    check_round_trip(LeaseSet2Header, value)


@given(leaseset2s())
def test_leaseset2_round_trip(value):
    check_round_trip(LeaseSet2, value)
    assert parse_leaseset(3, value.to_bytes()) == value


@given(meta_leasesets())
def test_meta_leaseset_round_trip(value):
    check_round_trip(MetaLeaseSet, value)
    assert parse_leaseset(7, value.to_bytes()) == value


@given(encrypted_leasesets())
def test_encrypted_leaseset_round_trip(value):
    check_round_trip(EncryptedLeaseSet, value)
    assert parse_leaseset(5, value.to_bytes()) == value


# ---------------------------------------------------------------- hostile input

PARSERS = {
    "Lease": Lease.parse, "Lease2": Lease2.parse, "MetaLease": MetaLease.parse,
    "OfflineSignature": lambda data: OfflineSignature.parse(data, 7),
    "LeaseSet": LeaseSet.parse, "LeaseSet2Header": LeaseSet2Header.parse, "LeaseSet2": LeaseSet2.parse,
    "MetaLeaseSet": MetaLeaseSet.parse, "EncryptedLeaseSet": EncryptedLeaseSet.parse,
}
VALID = {
    "Lease": leases, "Lease2": lease2s, "MetaLease": meta_leases,
    "OfflineSignature": offline_signatures(7), "LeaseSet": legacy_leasesets(), "LeaseSet2Header": headers(),
    "LeaseSet2": leaseset2s(), "MetaLeaseSet": meta_leasesets(), "EncryptedLeaseSet": encrypted_leasesets(),
}


def parse_or_protocol_error(parse, data: bytes) -> None:
    try:
        parse(data)
    except ProtocolError:
        pass


@given(st.sampled_from(sorted(PARSERS)), st.binary(max_size=1200))
def test_random_bytes_raise_only_protocol_errors(name, data):
    parse_or_protocol_error(PARSERS[name], data)


@given(st.sampled_from([1, 3, 5, 7]), st.binary(max_size=1200))
def test_random_bytes_by_store_type(store, data):
    parse_or_protocol_error(lambda d: parse_leaseset(store, d), data)


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(sorted(PARSERS)))
    data = bytearray(draw(VALID[name]).to_bytes())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x07, 0x0B, 0x10, 0x11, 0x80, 0xFF]))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 50))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=50))
        else:
            del data[at:]
    return name, bytes(data)


@given(mutated())
def test_mutated_encodings_raise_only_protocol_errors(case):
    name, data = case
    parse_or_protocol_error(PARSERS[name], data)


@given(mutated())
def test_mutated_encodings_verify_or_fail_cleanly(case):
    """verify() on whatever parses: a bool, or a ProtocolError for a signing type we cannot check."""
    name, data = case
    if name not in ("LeaseSet", "LeaseSet2", "MetaLeaseSet", "EncryptedLeaseSet"):
        return
    try:
        value = PARSERS[name](data)
        assert value.verify(1_750_000_000) in (True, False)
    except ProtocolError:
        pass
