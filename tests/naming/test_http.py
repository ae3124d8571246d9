"""The small HTTP/1.1 reader and writer (sans-I/O), fed in any split and with hostile input."""
from __future__ import annotations

import gzip

import pytest
from hypothesis import given, strategies as st

from apps.naming.http import (HttpError, ResponseParser, format_request, format_response, parse_request_head)


def parse(data: bytes, *, split: int = 0, max_body: int = 1 << 20, eof: bool = True):
    parser = ResponseParser(max_body=max_body)
    pieces = [data[i:i + split] for i in range(0, len(data), split)] if split else [data]
    for piece in pieces:
        parser.feed(piece)
    return parser.response if parser.done else (parser.eof() if eof else None)


@pytest.mark.parametrize("split", [0, 1, 7])
def test_content_length_chunked_and_until_close(split):
    plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\nhello-extra"
    response = parse(plain, split=split)
    assert (response.status, response.body, response.headers["etag"]) == (200, b"hello", '"x"')
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX: y\r\n\r\n"
    assert parse(chunked, split=split, eof=False).body == b"hello!"
    closed = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
    assert parse(closed, split=split).body == b"all of it"
    assert parse(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", split=split, eof=False).status == 304


def test_gzip_bodies_are_inflated_within_the_cap():
    body = gzip.compress(b"a.i2p=x\n" * 100)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
    assert parse(head + body).body == b"a.i2p=x\n" * 100
    bomb = gzip.compress(b"\0" * (5 << 20))
    with pytest.raises(HttpError, match="once inflated"):
        parse(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + bomb, max_body=1 << 20)


def test_size_cap_for_every_framing():
    big = b"x" * (20 << 20)      # a 20 MB feed
    with pytest.raises(HttpError, match="limit"):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big), max_body=10 << 20)
    with pytest.raises(HttpError, match="limit"):
        parse(b"HTTP/1.1 200 OK\r\n\r\n" + big, split=1 << 20, max_body=10 << 20)
    with pytest.raises(HttpError, match="limit"):
        parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(big) + big, max_body=10 << 20)


@pytest.mark.parametrize("bad", [b"garbage\r\n\r\n", b"HTTP/1.1 2000 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                                 b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n", b"x" * 20000])
def test_malformed_responses_raise_http_error(bad):
    with pytest.raises(HttpError):
        parse(bad)


def test_truncated_bodies_are_errors_not_short_feeds():
    with pytest.raises(HttpError, match="middle of the body"):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(HttpError, match="before the response head"):
        parse(b"HTTP/1.1 200 OK\r\n")


@given(st.binary(max_size=3000), st.integers(1, 50))
def test_any_bytes_give_a_response_or_http_error(data, split):
    try:
        parse(data, split=split, max_body=1000)
    except HttpError:
        pass


def test_request_format_and_parse():
    host, port, raw = format_request("GET", "http://reg.i2p:8080/hosts.txt?x=1", {"If-None-Match": '"e"'})
    assert (host, port) == ("reg.i2p", 8080)
    request = parse_request_head(raw.split(b"\r\n\r\n")[0])
    assert (request.method, request.target, request.headers["if-none-match"]) == ("GET", "/hosts.txt?x=1", '"e"')
    with pytest.raises(HttpError):
        format_request("GET", "https://reg.i2p/")
    with pytest.raises(HttpError):
        parse_request_head(b"GET /\r\n")
    response = parse(format_response(200, "OK", {"ETag": '"a"'}, b"body"))
    assert response.body == b"body" and response.headers["connection"] == "close"
