"""HTTP server tunnel head rewriting: caller headers, Connection: close, Host, identifying response headers."""
from __future__ import annotations

import pytest

from core.data.encoding import b64encode
from core.data.errors import ProtocolError
from core.data.privatekeys import PrivateKeys
from apps.tunnels.http import (HeadBuffer, HTTPHeadError, error_response, parse_head, rewrite_request,
                               rewrite_response)

CALLER = PrivateKeys.generate().destination


def fields(head: bytes) -> list[tuple[str, str]]:
    return parse_head(head)[1]


def test_request_gets_caller_headers_and_loses_forged_ones():
    head = (b"GET /index.html HTTP/1.1\r\nHost: site.i2p\r\nX-I2P-DestB32: forged.b32.i2p\r\n"
            b"x-i2p-desthash: forged\r\nX-I2P-DestB64: forged\r\nConnection: keep-alive\r\nKeep-Alive: 300\r\n"
            b"Proxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n")
    out = rewrite_request(head, CALLER)
    assert out.startswith(b"GET /index.html HTTP/1.1\r\n") and out.endswith(b"\r\n\r\n")
    assert fields(out) == [("Host", "site.i2p"), ("Accept", "*/*"), ("X-I2P-DestB32", CALLER.b32_address),
                           ("X-I2P-DestHash", b64encode(CALLER.hash)), ("X-I2P-DestB64", CALLER.b64),
                           ("Connection", "close")]


def test_host_override_and_no_i2p_headers():
    out = rewrite_request(b"POST /x HTTP/1.0\nHost: site.i2p\nContent-Length: 3\n\n", CALLER,
                          host_override="localhost:8080", i2p_headers=False)
    assert fields(out) == [("Host", "localhost:8080"), ("Content-Length", "3"), ("Connection", "close")]
    out = rewrite_request(b"GET / HTTP/1.0\r\n\r\n", CALLER, host_override="h")
    assert fields(out)[0] == ("Host", "h")


@pytest.mark.parametrize("head", [
    b"GARBAGE\r\n\r\n", b"GET / SPDY/3\r\n\r\n", b"GET /\r\n\r\n", b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"])
def test_bad_requests_are_400(head):
    with pytest.raises(HTTPHeadError) as info:
        rewrite_request(head, CALLER)
    assert info.value.status == 400
    assert isinstance(info.value, ProtocolError)


def test_response_loses_identifying_headers():
    head = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1 (Debian)\r\nDate: Sun, 06 Dec 2026 05:00:00 GMT\r\n"
            b"X-Powered-By: PHP/8.2\r\nx-runtime: 0.01\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\n")
    assert rewrite_response(head) == b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\n"
    with pytest.raises(HTTPHeadError) as info:
        rewrite_response(b"SSH-2.0-OpenSSH\r\n\r\n")
    assert info.value.status == 502


def test_head_buffer_splits_head_from_body():
    buffer = HeadBuffer(limit=100)
    assert buffer.feed(b"GET / HTTP/1.1\r\nHost: a\r") is None
    assert buffer.feed(b"\n\r") is None
    assert buffer.feed(b"\nbody") == (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"body")


def test_head_buffer_bounds_the_head():
    buffer = HeadBuffer(limit=64)
    assert buffer.feed(b"GET / HTTP/1.1\r\n") is None
    with pytest.raises(HTTPHeadError) as info:
        buffer.feed(b"X-Long: " + b"a" * 60 + b"\r\n")
    assert info.value.status == 431
    with pytest.raises(HTTPHeadError):        # a complete head that is itself too long
        HeadBuffer(limit=20).feed(b"GET / HTTP/1.1\r\nHost: abcdefgh\r\n\r\n")


def test_error_response_is_complete():
    answer = error_response(431, "too long")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert (b"Content-Length: %d" % len(body)) in head
