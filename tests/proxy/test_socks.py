"""The SOCKS 4/4a/5 handshake codec and the client messages for a socks:// outproxy."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, strategies as st

from apps.proxy import socks
from apps.proxy.socks import SocksError, SocksHandshake, SocksRequest


def run(hs: SocksHandshake, *parts: bytes) -> bytes:
    out = b""
    for part in parts:
        hs.receive(part)
        out += hs.data_to_send()
    return out


def test_socks5_no_auth_domain_byte_by_byte():
    msg = b"\x05\x01\x00" + b"\x05\x01\x00\x03\x08site.i2p\x00\x50" + b"GET"
    hs = SocksHandshake()
    out = run(hs, *(msg[i:i + 1] for i in range(len(msg))))
    assert out == b"\x05\x00"
    assert hs.request == SocksRequest(5, 1, "site.i2p", 80)
    assert hs.leftover == b"GET"
    assert hs.reply(socks.REPLY_SUCCEEDED) == b"\x05\x00\x00\x01" + b"\0" * 6
    assert hs.reply(socks.REPLY_HOST_UNREACHABLE)[1] == 4


def test_socks5_ipv4_and_ipv6():
    hs = SocksHandshake()
    run(hs, b"\x05\x01\x00", b"\x05\x01\x00\x01\x0a\x00\x00\x01\x01\xbb")
    assert hs.request == SocksRequest(5, 1, "10.0.0.1", 443)
    hs = SocksHandshake()
    run(hs, b"\x05\x01\x00", b"\x05\x01\x00\x04" + b"\0" * 15 + b"\x01" + b"\x00\x16")
    assert hs.request.host == "::1"


def test_socks5_user_password():
    hs = SocksHandshake(("alice", "secret"))
    assert run(hs, b"\x05\x02\x00\x02") == b"\x05\x02"
    assert run(hs, b"\x01\x05alice\x06secret") == b"\x01\x00"
    run(hs, b"\x05\x01\x00\x03\x05a.i2p\x00\x50")
    assert hs.request.username == "alice"
    hs = SocksHandshake(("alice", "secret"))
    run(hs, b"\x05\x01\x02")
    with pytest.raises(SocksError) as err:
        hs.receive(b"\x01\x05alice\x05wrong")
    assert err.value.reply == b"\x01\x01"
    with pytest.raises(SocksError) as err:           # only "no auth" offered, credentials required
        SocksHandshake(("a", "b")).receive(b"\x05\x01\x00")
    assert err.value.reply == b"\x05\xff"


def test_socks5_any_credentials_when_none_configured():
    hs = SocksHandshake()
    assert run(hs, b"\x05\x01\x02", b"\x01\x01u\x01p") == b"\x05\x02\x01\x00"


def test_socks5_unsupported_commands_and_address_types():
    for cmd in (2, 3):
        hs = SocksHandshake()
        run(hs, b"\x05\x01\x00")
        with pytest.raises(SocksError) as err:
            hs.receive(bytes([5, cmd, 0, 1, 1, 2, 3, 4, 0, 80]))
        assert err.value.reply[:2] == b"\x05\x07"
    hs = SocksHandshake()
    run(hs, b"\x05\x01\x00")
    with pytest.raises(SocksError) as err:
        hs.receive(b"\x05\x01\x00\x09\x00\x00")
    assert err.value.reply[:2] == b"\x05\x08"


def test_socks4_and_4a():
    hs = SocksHandshake()
    hs.receive(b"\x04\x01\x00\x50\x7f\x00\x00\x01user\x00")
    assert hs.request == SocksRequest(4, 1, "127.0.0.1", 80, "user")
    assert hs.reply(socks.REPLY_SUCCEEDED) == b"\x00\x5a" + b"\0" * 6
    assert hs.reply(socks.REPLY_NOT_ALLOWED)[1] == 0x5B
    hs = SocksHandshake()
    msg = b"\x04\x01\x01\xbb\x00\x00\x00\x01\x00site.i2p\x00data"
    run(hs, msg[:12], msg[12:])
    assert hs.request == SocksRequest(4, 1, "site.i2p", 443)
    assert hs.leftover == b"data"
    with pytest.raises(SocksError) as err:
        SocksHandshake().receive(b"\x04\x02\x00\x50\x01\x02\x03\x04\x00")
    assert err.value.reply[1] == 0x5B


def test_not_socks_and_too_long():
    with pytest.raises(SocksError):
        SocksHandshake().receive(b"GET / HTTP/1.1\r\n")
    with pytest.raises(SocksError):
        SocksHandshake().receive(b"\x04\x01\x00\x50\x7f\x00\x00\x01" + b"u" * 2000)


@given(st.binary(max_size=600))
def test_any_bytes_give_a_request_or_a_socks_error(data):
    hs = SocksHandshake()
    try:
        hs.receive(data)
    except SocksError:
        return
    if hs.request is not None:
        assert 0 <= hs.request.port < 65536


def test_client_messages():
    assert socks.client_greeting() == b"\x05\x01\x00"
    assert socks.client_connect("example.com", 443) == b"\x05\x01\x00\x03\x0bexample.com" + struct.pack(">H", 443)
    assert socks.client_connect("198.18.1.1", 80) == b"\x05\x01\x00\x01" + bytes([198, 18, 1, 1]) + b"\x00\x50"
    assert socks.client_reply_length(b"\x05\x00\x00\x01\x00") == 10
    assert socks.client_reply_length(b"\x05\x00\x00\x03\x04") == 11
    with pytest.raises(SocksError):
        socks.client_reply_length(b"\x04\x00\x00\x01\x00")


def test_udp_associate_and_datagram_header():
    hs = SocksHandshake(udp=True)
    run(hs, b"\x05\x01\x00", b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
    assert hs.request == SocksRequest(5, socks.CMD_UDP, "0.0.0.0", 0)
    assert hs.reply(socks.REPLY_SUCCEEDED, ("127.0.0.1", 5000)) == b"\x05\x00\x00\x01\x7f\x00\x00\x01\x13\x88"
    b32 = "a" * 52 + ".b32.i2p"
    packet = socks.build_udp(b32, 53, b"query")
    assert packet[:5] == b"\x00\x00\x00\x03\x3c" and socks.parse_udp(packet) == (b32, 53, b"query")
    assert socks.parse_udp(b"\x00\x00\x00\x01\x0a\x00\x00\x01\x00\x35hi") == ("10.0.0.1", 53, b"hi")
    for bad in (b"\x00\x00\x01\x01\x0a\x00\x00\x01\x00\x35hi", b"\x01\x00\x00\x01", b"\x00\x00\x00\x03\x09ab",
                b"\x00\x00\x00\x07xx"):
        with pytest.raises(SocksError):
            socks.parse_udp(bad)
