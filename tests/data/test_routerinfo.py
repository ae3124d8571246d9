import random
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from core.crypto import signing
from core.data.encoding import b64encode
from core.data.errors import ParseError, ProtocolError
from core.data.identity import RouterIdentity
from core.data.primitives import Mapping
from core.data.routerinfo import RouterAddress, RouterInfo

FIXTURES = Path(__file__).parent / "fixtures"
I2PD_RI = (FIXTURES / "i2pd-router.info").read_bytes()
# written once with stdlib base64 when the fixture was made: netDb/r<C>/routerInfo-<I2P b64 of hash>.dat
I2PD_NETDB_NAME = "netDb/rr/routerInfo-riB9o9rZXkYhZfC0HrojNLBOBFx7W~wqNjnrgXiA~Fg=.dat"


def seeded_rng(seed=1):
    gen = random.Random(seed)
    return lambda n: gen.randbytes(n)


def make_router(seed=1, options=None, addresses=None):
    rng = seeded_rng(seed)
    private, public = signing.generate(7, rng)
    ident = RouterIdentity.create(public_key=rng(32), signing_public_key=public, sig_type=7, crypto_type=4, rng=rng)
    if addresses is None:
        addresses = [RouterAddress.create("NTCP2", {"host": "198.18.0.7", "port": "20000", "v": "2",
                                                    "s": b64encode(rng(32)), "i": b64encode(rng(16))}, cost=3)]
    if options is None:
        options = {"caps": "XfR", "netId": "42", "router.version": "0.9.67"}
    return private, RouterInfo.create(ident, private, 1_750_000_000_000, addresses, options)


# --- real i2pd data

def test_i2pd_router_info_parses_and_verifies():
    ri = RouterInfo.parse(I2PD_RI)
    assert ri.verify()
    assert ri.to_bytes() == I2PD_RI
    assert ri.identity.sig_type == 7 and ri.identity.crypto_type == 4
    assert ri.netid == 42 and ri.caps == "X" and not ri.is_floodfill and ri.router_version == "0.9.57"
    assert ri.peer_hashes == ()
    styles = [a.transport_style for a in ri.addresses]
    assert styles == ["NTCP2", "SSU2"]
    ntcp2, ssu2 = ri.addresses
    assert ntcp2.host == "198.18.0.1" and ntcp2.port == 23456 and ntcp2.v == "2"
    assert len(ntcp2.s) == 32 and len(ntcp2.i) == 16
    assert len(ssu2.s) == 32 and len(ssu2.i) == 32 and ssu2.caps == "BC"
    assert ri.addresses_of("SSU2") == (ssu2,)


def test_i2pd_router_info_netdb_file_name():
    ri = RouterInfo.parse(I2PD_RI)
    b64 = b64encode(ri.hash)
    assert f"netDb/r{b64[0]}/routerInfo-{b64}.dat" == I2PD_NETDB_NAME


def test_i2pd_router_info_tampered_fails_verify():
    data = bytearray(I2PD_RI)
    data[395] ^= 1  # inside the published date
    ri = RouterInfo.parse(bytes(data))
    assert not ri.verify()


# --- our own

def test_create_sign_verify_round_trip():
    _, ri = make_router()
    assert ri.verify()
    again = RouterInfo.parse(ri.to_bytes())
    assert again == ri and again.verify() and again.to_bytes() == ri.to_bytes()
    assert ri.is_floodfill and ri.netid == 42 and ri.hash == ri.identity.hash
    assert ri.options.is_sorted() and ri.addresses[0].options.is_sorted()
    assert ri.signed_bytes + ri.signature == ri.to_bytes()
    assert ri.published_seconds == 1_750_000_000


def test_netid_default_and_bad():
    _, ri = make_router(options={"caps": "L"})
    assert ri.netid == 2 and not ri.is_floodfill and ri.router_version is None
    _, ri = make_router(options={"netId": "x2"})
    with pytest.raises(ParseError):
        ri.netid


def test_address_accessors_reject_bad_values():
    address = RouterAddress.create("NTCP2", {"port": "99999", "s": "AAAA", "i": "not base64!"})
    with pytest.raises(ParseError):
        address.port
    with pytest.raises(ParseError):
        address.s
    with pytest.raises(ParseError):
        address.i
    empty = RouterAddress.create("SSU2", {})
    assert empty.host is None and empty.port is None and empty.s is None and empty.v is None


def test_address_wire_format():
    address = RouterAddress(5, 0, "SSU2", Mapping.from_dict({"port": "1"}))
    assert address.to_bytes() == b"\x05" + bytes(8) + b"\x04SSU2" + b"\x00\x09\x04port=\x011;"
    assert RouterAddress.parse(address.to_bytes()) == address


def test_peer_hashes_round_trip():
    _, ri = make_router()
    data = bytearray(ri.to_bytes())
    cut = len(ri.signed_bytes) - len(ri.options.to_bytes()) - 1
    with_peers = bytes(data[:cut]) + b"\x01" + bytes(range(32)) + bytes(data[cut + 1:])
    parsed = RouterInfo.parse(with_peers)
    assert parsed.peer_hashes == (bytes(range(32)),) and parsed.to_bytes() == with_peers
    assert not parsed.verify()


@pytest.mark.parametrize("mutate", [
    lambda d: d[:-1],                       # short signature
    lambda d: d + b"\x00",                  # trailing byte
    lambda d: d[:391 + 8] + b"\x05",        # address count beyond the data
])
def test_parse_rejects(mutate):
    _, ri = make_router()
    with pytest.raises(ParseError):
        RouterInfo.parse(mutate(ri.to_bytes()))


def test_duplicate_option_key_rejected():
    _, ri = make_router(options={"a": "1", "b": "2"})
    data = ri.to_bytes().replace(b"\x01b=\x012;", b"\x01a=\x012;")
    with pytest.raises(ParseError, match="duplicate"):
        RouterInfo.parse(data)


option_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=12)


@given(st.dictionaries(option_text, option_text, max_size=6),
       st.lists(st.tuples(st.integers(0, 255), st.sampled_from(["NTCP2", "SSU2", "X"]),
                          st.dictionaries(option_text, option_text, max_size=4)), max_size=3),
       st.integers(0, 2**64 - 1))
def test_round_trip(options, addresses, published):
    rng = seeded_rng(published)
    private, public = signing.generate(7, rng)
    ident = RouterIdentity.create(public_key=rng(32), signing_public_key=public, sig_type=7, crypto_type=4, rng=rng)
    ri = RouterInfo.create(ident, private, published,
                           [RouterAddress.create(style, opts, cost) for cost, style, opts in addresses], options)
    again = RouterInfo.parse(ri.to_bytes())
    assert again == ri and again.to_bytes() == ri.to_bytes() and again.verify()


@given(st.binary(max_size=900))
def test_random_bytes(data):
    for parser in (RouterInfo.parse, RouterAddress.parse):
        try:
            parser(data)
        except ProtocolError:
            pass


@given(st.data())
def test_mutated_i2pd_bytes(data):
    raw = bytearray(I2PD_RI)
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(384, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, 3))
    try:
        ri = RouterInfo.parse(bytes(raw[:len(raw) - cut]))
    except ProtocolError:
        return
    try:
        ri.verify()
    except ProtocolError:  # a mutated certificate may name a signing type not supported here
        pass
    for address in ri.addresses:
        for accessor in ("host", "port", "s", "i", "v"):
            try:
                getattr(address, accessor)
            except ProtocolError:
                pass
