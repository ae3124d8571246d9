"""The sans-I/O core: request parsing, targets, the privacy table, framing both ways."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from apps.proxy.http import (MAX_HEAD, USER_AGENT, ChunkedScanner, Framing, HttpError, RequestHead, ResponseHead,
                             find_head_end, header_rule, incoming_response, outgoing_request, request_framing,
                             request_target, response_framing)

B32 = "a" * 52 + ".b32.i2p"


def head(text: str) -> RequestHead:
    return RequestHead.parse(text.replace("\n", "\r\n").encode())


def sent(data: bytes) -> tuple[str, dict[str, list[str]]]:
    lines = data.decode().split("\r\n")
    assert lines[-2:] == ["", ""]
    fields: dict[str, list[str]] = {}
    for line in lines[1:-2]:
        k, v = line.split(": ", 1)
        fields.setdefault(k.lower(), []).append(v)
    return lines[0], fields


def test_absolute_origin_and_connect_targets():
    t = request_target(head("GET http://Site.I2P/a/b?c=1 HTTP/1.1\nHost: x\n\n"))
    assert (t.scheme, t.host, t.port, t.path, t.absolute, t.connect) == ("http", "site.i2p", 80, "/a/b?c=1", True, False)
    t = request_target(head("GET http://site.i2p:8080 HTTP/1.1\n\n"))
    assert (t.port, t.path, t.authority) == (8080, "/", "site.i2p:8080")
    t = request_target(head("POST /x HTTP/1.1\nHost: site.i2p\n\n"))
    assert (t.host, t.path, t.absolute) == ("site.i2p", "/x", False)
    t = request_target(head("CONNECT site.i2p:443 HTTP/1.1\nHost: site.i2p:443\n\n"))
    assert (t.host, t.port, t.connect, t.scheme) == ("site.i2p", 443, True, "https")


@pytest.mark.parametrize("text,status", [
    ("GET / HTTP/1.1\n\n", 400),                          # origin form without Host
    ("GET http://a.i2p/ HTTP/2.0\n\n", 400),
    ("GET  http://a.i2p/ HTTP/1.1\n\n", 400),
    ("G@T http://a.i2p/ HTTP/1.1\n\n", 400),
    ("GET ftp://a.i2p/ HTTP/1.1\n\n", 400),
    ("GET https://a.i2p/ HTTP/1.1\n\n", 400),
    ("GET http://user@a.i2p/ HTTP/1.1\n\n", 400),
    ("CONNECT a.i2p HTTP/1.1\n\n", 400),
    ("GET http://a.i2p/ HTTP/1.1\nno colon here\n\n", 400),
    ("GET http://a.i2p/ HTTP/1.1\nX: 1\n folded\n\n", 400),
    ("GET http://a b/ HTTP/1.1\n\n", 400),
    ("GET http://a.i2p:99999/ HTTP/1.1\n\n", 400),
    ("\n\n", 400),
])
def test_malformed_requests_are_400(text, status):
    with pytest.raises(HttpError) as err:
        request_target(head(text))
    assert err.value.status == status


def test_oversized_heads_are_431():
    with pytest.raises(HttpError) as err:
        RequestHead.parse(b"GET http://a.i2p/ HTTP/1.1\r\nX: " + b"y" * MAX_HEAD + b"\r\n\r\n")
    assert err.value.status == 431
    many = "".join(f"X-{i}: 1\n" for i in range(150))
    with pytest.raises(HttpError) as err:
        head(f"GET http://a.i2p/ HTTP/1.1\n{many}\n")
    assert err.value.status == 431


def test_head_end_with_crlf_or_bare_lf():
    assert find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nBODY") == 24
    assert find_head_end(b"GET / HTTP/1.1\nA: b\n\nBODY") == 21
    assert find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n") == -1


PRIVATE = ("GET http://site.i2p/page HTTP/1.1\nHost: site.i2p\nUser-Agent: Firefox/1.0\nVia: 1.1 squid\n"
           "From: me@example.com\nForwarded: for=1.2.3.4\nX-Forwarded-For: 1.2.3.4\nX-Forwarded-Proto: http\n"
           "Proxy-Authorization: Basic eA==\nProxy-Connection: keep-alive\nDNT: 1\nAccept: text/html\n"
           "Accept-Language: de\nAccept-Charset: utf-8\nAccept-Encoding: gzip\nX-Requested-With: com.app.id\n"
           "Referer: http://other.i2p/\nCookie: a=b\nAuthorization: Basic eQ==\nKeep-Alive: 300\n"
           "Connection: keep-alive, X-Custom\nX-Custom: hop\nCache-Control: no-cache\n\n")


def test_privacy_table_on_the_way_out():
    h = head(PRIVATE)
    line, fields = sent(outgoing_request(h, request_target(h), B32))
    assert line == "GET /page HTTP/1.1"
    assert fields == {"host": [B32], "user-agent": [USER_AGENT], "accept-encoding": ["gzip"], "cookie": ["a=b"],
                      "authorization": ["Basic eQ=="], "cache-control": ["no-cache"], "connection": ["close"]}


def test_user_agent_added_when_missing_and_rules_by_name():
    h = head("GET http://site.i2p/ HTTP/1.1\n\n")
    assert sent(outgoing_request(h, request_target(h), B32))[1]["user-agent"] == [USER_AGENT]
    assert [header_rule(n) for n in ("Via", "X-Forwarded-Host", "Proxy-Foo", "Accept", "Accept-Encoding",
                                      "Cookie", "Referer", "Host")] == [
        "drop", "drop", "drop", "drop", "keep", "keep", "rewrite", "rewrite"]


@pytest.mark.parametrize("referer,kept", [
    ("http://site.i2p/other?x", f"http://{B32}/other?x"),       # same origin: kept, host rewritten
    ("http://site.i2p:80/", f"http://{B32}/"),
    ("https://site.i2p/", None),                                # scheme differs
    ("http://site.i2p:8080/", None),                            # port differs
    ("http://evil.i2p/", None),
    ("not a url", None),
])
def test_referer_only_from_the_same_scheme_host_and_port(referer, kept):
    h = head(f"GET http://site.i2p/ HTTP/1.1\nReferer: {referer}\nOrigin: {referer}\n\n")
    fields = sent(outgoing_request(h, request_target(h), B32))[1]
    assert fields.get("referer") == ([kept] if kept else None)
    assert fields.get("origin") == ([kept] if kept else None)


def test_xmlhttprequest_kept():
    h = head("GET http://site.i2p/ HTTP/1.1\nX-Requested-With: XMLHttpRequest\n\n")
    assert sent(outgoing_request(h, request_target(h), B32))[1]["x-requested-with"] == ["XMLHttpRequest"]


def test_upgrade_passes_through_for_websockets():
    h = head("GET http://site.i2p/ws HTTP/1.1\nConnection: Upgrade\nUpgrade: websocket\n"
             "Sec-WebSocket-Key: abc\nSec-WebSocket-Version: 13\n\n")
    fields = sent(outgoing_request(h, request_target(h), B32))[1]
    assert fields["connection"] == ["Upgrade"] and fields["upgrade"] == ["websocket"]
    assert fields["sec-websocket-key"] == ["abc"]
    h = head("GET http://site.i2p/ HTTP/1.1\nUpgrade: websocket\n\n")     # no Connection: Upgrade
    fields = sent(outgoing_request(h, request_target(h), B32))[1]
    assert "upgrade" not in fields and fields["connection"] == ["close"]


def test_outproxy_request_keeps_absolute_form_and_host():
    h = head("GET http://example.com:8080/x HTTP/1.1\nHost: example.com:8080\nUser-Agent: x\n\n")
    line, fields = sent(outgoing_request(h, request_target(h), "example.com", absolute=True))
    assert line == "GET http://example.com:8080/x HTTP/1.1"
    assert fields["host"] == ["example.com:8080"]


def test_keep_alive_rules():
    assert head("GET / HTTP/1.1\nHost: a.i2p\n\n").keep_alive
    assert not head("GET / HTTP/1.1\nHost: a.i2p\nConnection: close\n\n").keep_alive
    assert not head("GET / HTTP/1.0\nHost: a.i2p\n\n").keep_alive
    assert head("GET / HTTP/1.0\nHost: a.i2p\nProxy-Connection: keep-alive\n\n").keep_alive


def test_request_framing():
    assert request_framing(head("GET / HTTP/1.1\nHost: a\n\n")) == Framing("none")
    assert request_framing(head("POST / HTTP/1.1\nHost: a\nContent-Length: 5\n\n")) == Framing("length", 5)
    assert request_framing(head("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n")) == Framing("chunked")
    for bad in ("Content-Length: 5\nTransfer-Encoding: chunked", "Content-Length: x", "Content-Length: 1, 2",
                "Transfer-Encoding: gzip"):
        with pytest.raises(HttpError) as err:
            request_framing(head(f"POST / HTTP/1.1\nHost: a\n{bad}\n\n"))
        assert err.value.status == 400


def response(text: str) -> ResponseHead:
    return ResponseHead.parse(text.replace("\n", "\r\n").encode())


def test_response_framing():
    assert response_framing("GET", response("HTTP/1.1 200 OK\nContent-Length: 3\n\n")) == Framing("length", 3)
    assert response_framing("HEAD", response("HTTP/1.1 200 OK\nContent-Length: 3\n\n")) == Framing("none")
    assert response_framing("GET", response("HTTP/1.1 204 No Content\n\n")) == Framing("none")
    assert response_framing("GET", response("HTTP/1.1 304 Not Modified\nContent-Length: 9\n\n")) == Framing("none")
    assert response_framing("GET", response("HTTP/1.1 100 Continue\n\n")) == Framing("none")
    assert response_framing("GET", response("HTTP/1.1 101 Switching\nUpgrade: websocket\n\n")).kind == "upgrade"
    assert response_framing("GET", response("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n")).kind == "chunked"
    assert response_framing("GET", response("HTTP/1.0 200 OK\n\n")).kind == "close"
    with pytest.raises(HttpError) as err:
        response("HTP/1.1 200 OK\n\n")
    assert err.value.status == 502


def test_response_hop_by_hop_replaced():
    r = response("HTTP/1.1 200 OK\nContent-Length: 2\nConnection: close, X-Hop\nX-Hop: 1\nKeep-Alive: 5\nSet-Cookie: a\n\n")
    line, fields = sent(incoming_response(r, Framing("length", 2), keep_alive=True))
    assert line == "HTTP/1.1 200 OK"
    assert fields == {"content-length": ["2"], "set-cookie": ["a"], "connection": ["keep-alive"]}
    up = response("HTTP/1.1 101 Switching Protocols\nConnection: Upgrade\nUpgrade: websocket\n\n")
    fields = sent(incoming_response(up, Framing("upgrade"), keep_alive=True))[1]
    assert fields == {"upgrade": ["websocket"], "connection": ["Upgrade"]}


def test_chunked_scanner_finds_the_end_with_trailers():
    body = b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n"
    scanner = ChunkedScanner()
    assert scanner.feed(body + b"NEXT") == len(body) and scanner.done
    with pytest.raises(HttpError):
        ChunkedScanner().feed(b"zz\r\n")
    with pytest.raises(HttpError):
        ChunkedScanner().feed(b"2\r\nabXY\r\n")


@given(st.lists(st.binary(min_size=1, max_size=40), max_size=8), st.integers(1, 7))
def test_chunked_scanner_any_split(chunks, step):
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    scanner, used = ChunkedScanner(), 0
    for i in range(0, len(body) + 5, step):
        used += scanner.feed((body + b"tail!")[i:i + step])
        if scanner.done:
            break
    assert scanner.done and used == len(body)


@given(st.binary(max_size=300))
def test_parsers_raise_only_http_errors(data):
    for parse in (RequestHead.parse, ResponseHead.parse):
        try:
            parsed = parse(data)
        except HttpError:
            continue
        if isinstance(parsed, RequestHead):
            try:
                request_target(parsed)
                request_framing(parsed)
            except HttpError:
                pass
