"""The naming service over a real in-memory I2P: subscriptions with conditional GET, the schedule,
bad feeds, the publisher and jump service, control methods, b32 aliases."""
from __future__ import annotations

import asyncio
import random

import pytest

from apps.naming.feed import FeedLine, parse_line, sign_line, signed_text, verify_line
from apps.naming.http import Request, Response, format_response, http_get, serve_http_stream
from apps.naming.service import NamingService
from apps.naming.subscriptions import Subscriptions
from apps.network import IncomingStream, InProcessNetwork
from apps.service import ServiceError
from core.client import ClientAPI
from core.clock import FakeClock
from core.data.encoding import b64encode

FEED_URL = "http://feed.i2p/hosts.txt"


@pytest.fixture
async def network():
    net = InProcessNetwork(ClientAPI())
    yield net
    await net.close()


class FeedServer:
    """hosts.txt from a session of its own; answers 304 to a matching If-None-Match; records requests."""

    def __init__(self):
        self.body = b""
        self.etag = '"v1"'
        self.requests: list[Request] = []
        self.raw: bytes | None = None

    def handle(self, request: Request) -> bytes:
        self.requests.append(request)
        if self.raw is not None:
            return self.raw
        headers = {"ETag": self.etag, "Last-Modified": "Sun, 06 Dec 2026 00:00:00 GMT"}
        if request.headers.get("if-none-match") == self.etag:
            return format_response(304, "Not Modified", headers)
        return format_response(200, "OK", headers, self.body)

    async def start(self, network) -> None:
        self.session = await network.open_session(name="feed")

        async def on_stream(stream: IncomingStream) -> None:
            await serve_http_stream(stream.reader, stream.writer, self.handle)
        await self.session.serve(on_stream, port=80)


@pytest.fixture
async def feed(network):
    server = FeedServer()
    await server.start(network)
    network.resolver = {"feed.i2p": server.session.destination}.get
    return server


def service(tmp_path, network, **config) -> NamingService:
    (tmp_path / "addressbook").mkdir(parents=True, exist_ok=True)
    (tmp_path / "addressbook" / "subscriptions.txt").write_text(f"{FEED_URL}\n")
    return NamingService(config, tmp_path, network)


async def test_conditional_fetch_with_persisted_etag(tmp_path, network, feed, keys):
    feed.body = f"site.i2p={keys[0].destination.b64}\n".encode()
    naming = service(tmp_path, network)
    state = await naming.subscriptions.update(FEED_URL)
    assert state.result.startswith("ok: 1 added") and state.etag == '"v1"' and state.last_feed["added"] == 1
    assert naming.book.lookup("site.i2p") == keys[0].destination
    assert "if-none-match" not in feed.requests[0].headers and feed.requests[0].target == "/hosts.txt"
    state = await naming.subscriptions.update(FEED_URL)
    assert state.result == "not modified" and feed.requests[1].headers["if-none-match"] == '"v1"'
    assert feed.requests[1].headers["if-modified-since"] == "Sun, 06 Dec 2026 00:00:00 GMT"
    # a restarted node asks conditionally too; a new version is applied
    again = service(tmp_path, network)
    feed.etag, feed.body = '"v2"', feed.body + f"more.i2p={keys[1].destination.b64}\n".encode()
    state = await again.subscriptions.update(FEED_URL)
    assert feed.requests[2].headers["if-none-match"] == '"v1"'
    assert state.result.startswith("ok: 1 added") and state.last_feed["unchanged"] == 1 and state.total_added == 2
    state = await again.subscriptions.update(FEED_URL, force=True)
    assert "if-none-match" not in feed.requests[3].headers and state.result.startswith("ok: 0 added")


async def test_a_20_mb_feed_is_cut_at_the_cap(tmp_path, network, feed, keys):
    naming = service(tmp_path, network, max_feed_bytes=1 << 20)
    line = f"x.i2p={keys[0].destination.b64}\n".encode()
    feed.raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + line * ((20 << 20) // len(line))
    state = await naming.subscriptions.update(FEED_URL)
    assert state.result.startswith("failed: HttpError") and "limit" in state.result and state.failures == 1
    assert naming.book.count() == 0


async def test_junk_and_forged_changes_are_reported(tmp_path, network, feed, keys):
    naming = service(tmp_path, network)
    naming.book.add("victim.i2p", keys[0].destination, book="router")
    good = sign_line("thief.i2p", keys[1], action="changedest", old_keys=keys[0])
    props = dict(good.properties)
    props["sig"] = b64encode(keys[2].sign(signed_text(FeedLine("victim.i2p", keys[1].destination.b64, props),
                                                      inner=False)))
    forged = FeedLine("victim.i2p", keys[1].destination.b64, props).to_text()
    feed.body = b"\x00\xff\xfe junk\n" * 100 + forged.encode() + b"\nok.i2p=" + keys[3].destination.b64.encode()
    state = await naming.subscriptions.update(FEED_URL)
    assert state.last_feed["skipped_by_reason"] == {"malformed": 100, "bad signature": 1}
    assert state.last_feed["added"] == 1 and "101 skipped" in state.result
    assert naming.book.lookup("victim.i2p") == keys[0].destination
    assert naming._ctl_subscriptions({})[0]["last_feed"]["skipped"] == 101


async def test_http_errors_and_unreachable_feeds_back_off(tmp_path, network, feed):
    naming = service(tmp_path, network, retry_delay=100, update_interval=1000)
    feed.raw = format_response(500, "Oops", {})
    first = await naming.subscriptions.update(FEED_URL)
    assert first.result == "failed: ProtocolError: HTTP 500 Oops"
    network.resolver = {}.get
    second = await naming.subscriptions.update(FEED_URL)
    assert "NameNotFound" in second.result and second.failures == 2
    assert second.next_fetch - second.last_fetch == pytest.approx(200, abs=1)


async def test_schedule_first_delay_interval_jitter_and_backoff(tmp_path):
    from apps.naming.book import AddressBook
    clock = FakeClock()
    calls: list[tuple[str, dict]] = []
    answers = [Response(200, "OK", {"etag": '"1"'}, b""), Response(503, "Busy", {}),
               Response(503, "Busy", {}), Response(304, "Not Modified", {})]

    async def fetch(url, headers, max_bytes):
        calls.append((url, headers))
        return answers.pop(0)
    urls = ["http://a.i2p/hosts.txt"]
    subs = Subscriptions(AddressBook(tmp_path, now=clock.time), lambda: urls, fetch, clock=clock,
                         rng=random.Random(1), interval=3600, jitter=600, first_delay=300, retry_delay=60)
    assert await subs.update_due() == [] and not calls
    clock.advance(299)
    assert await subs.update_due() == []
    clock.advance(62)                       # first_delay plus at most 60 s of jitter
    assert [s.result for s in await subs.update_due()] == ["ok: 0 added, 0 changed, 0 removed, 0 skipped"]
    wait = subs.next_due() - clock.time()
    assert 3600 <= wait <= 4200
    clock.advance(wait)
    assert (await subs.update_due())[0].failures == 1 and subs.next_due() - clock.time() == 60
    clock.advance(60)
    assert (await subs.update_due())[0].failures == 2 and subs.next_due() - clock.time() == 120
    clock.advance(120)
    state = (await subs.update_due())[0]
    assert state.result == "not modified" and state.failures == 0 and calls[-1][1] == {"If-None-Match": '"1"'}
    # the list is followed while running: a new URL waits first_delay, a removed one is dropped
    urls[:] = ["http://b.i2p/hosts.txt"]
    subs.sync()
    assert list(subs.states) == urls and subs.next_due() - clock.time() >= 300
    assert len(calls) == 4


async def test_run_loop_fetches_when_due(tmp_path, network, feed, keys):
    feed.body = f"site.i2p={keys[0].destination.b64}\n".encode()
    naming = service(tmp_path, network, first_update_delay=0, update_jitter=0)
    naming.subscriptions.rng = random.Random(0)
    for state in naming.subscriptions.states.values():
        state.next_fetch = 0
    await naming.start()
    try:
        for _ in range(100):
            if naming.book.get("site.i2p"):
                break
            await asyncio.sleep(0.05)
        assert naming.book.lookup("site.i2p") == keys[0].destination
        assert naming.status()["state"] == "running"
    finally:
        await naming.stop()
    assert naming.status()["state"] == "stopped"


async def test_publisher_serves_hosts_newhosts_and_jumps(tmp_path, network, keys):
    clock = FakeClock(1_800_000_000)
    naming = NamingService({"publish": True, "subscribe": False, "newhosts_hours": 1}, tmp_path, network,
                           clock=clock)
    await naming.start()
    try:
        b32 = await naming.wait_published(30)
        assert (tmp_path / "addressbook" / "publish.keys").stat().st_mode & 0o777 == 0o600
        naming.book.add("old.i2p", keys[0].destination)
        clock.advance(7200)
        signed = sign_line("signed.i2p", keys[1])
        naming.book.add("signed.i2p", keys[1].destination, book="router", properties=dict(signed.properties))
        naming.book.add("secret.i2p", keys[2].destination, book="private")
        naming.book.add("alias.i2p", keys[3].destination.b32_address)
        client = await network.open_session()
        network.resolver = {"reg.i2p": naming._publish_session.destination}.get
        hosts = await http_get(client, "http://reg.i2p/hosts.txt", max_body=1 << 20, timeout=10)
        lines = hosts.body.decode().splitlines()
        assert sorted(line.split("=")[0] for line in lines) == ["old.i2p", "signed.i2p"]
        assert signed.to_text() in lines and verify_line(parse_line(signed.to_text()))
        assert all("@" not in line for line in lines)
        again = await http_get(client, f"http://{b32}/hosts.txt", {"If-None-Match": hosts.headers["etag"]},
                               max_body=1 << 20, timeout=10)
        assert again.status == 304
        since = await http_get(client, "http://reg.i2p/hosts.txt", {"If-Modified-Since": hosts.headers["last-modified"]},
                               max_body=1 << 20, timeout=10)
        assert since.status == 304
        new = await http_get(client, "http://reg.i2p/newhosts.txt", max_body=1 << 20, timeout=10)
        assert new.body.decode() == signed.to_text() + "\n"
        jump = await http_get(client, "http://reg.i2p/jump/Old.i2p/some/page", max_body=1 << 20, timeout=10)
        assert jump.status == 301
        assert jump.headers["location"] == f"http://old.i2p/some/page?i2paddresshelper={keys[0].destination.b64}"
        for missing in ("/jump/nothere.i2p", "/jump/secret.i2p", "/nothing"):
            assert (await http_get(client, "http://reg.i2p" + missing, max_body=1 << 20, timeout=10)).status == 404
        status = naming.status()
        assert status["listen"]["hosts.txt"] == f"http://{b32}/hosts.txt" and status["requests"] == 8
    finally:
        await naming.stop()


async def test_subscribing_to_our_publisher_then_connecting_by_name(tmp_path, network, keys):
    registrar = NamingService({"publish": True, "subscribe": False}, tmp_path / "reg", network)
    await registrar.start()
    await registrar.wait_published(30)
    site = await network.open_session(keys[4], name="site")

    async def hello(stream: IncomingStream) -> None:
        stream.writer.write(b"hello from the site")
        stream.writer.close()
    await site.serve(hello, port=80)
    registrar.book.add("site.i2p", site.destination)
    user = service(tmp_path / "user", network)
    network.resolver = {"feed.i2p": registrar._publish_session.destination}.get
    state = await user.subscriptions.update(FEED_URL)
    assert state.result.startswith("ok: 1 added")
    network.resolver = user.book.lookup          # what the node does
    client = await network.open_session()
    reader, writer = await client.connect("site.i2p", 80, timeout=10)
    assert await asyncio.wait_for(reader.read(100), 10) == b"hello from the site"
    writer.close()
    await registrar.stop()


async def test_b32_alias_resolves_through_the_network_and_is_kept(tmp_path, network, keys):
    site = await network.open_session(keys[5], name="site")
    naming = NamingService({"subscribe": False}, tmp_path, network)
    naming.book.add("alias.i2p", site.b32)
    assert naming.book.lookup("alias.i2p") is None
    assert await naming.resolve("alias.i2p") == site.destination
    assert naming.book.lookup("alias.i2p") == site.destination and not naming.book.get("alias.i2p").is_alias
    assert await naming.resolve("unknown.i2p") is None
    await naming.stop()


async def test_control_methods(tmp_path, network, keys):
    naming = NamingService({"subscribe": False}, tmp_path, network)
    methods = naming.control_methods()
    assert set(methods) == {"Lookup", "Add", "Remove", "List", "Subscriptions", "Update"}
    for i in range(25):
        methods["Add"]({"name": f"n{i:02d}.i2p", "destination": keys[i % 4].destination.b64})
    added = methods["Add"]({"name": "x.i2p", "destination": keys[0].destination.b32_address, "book": "private"})
    assert added["book"] == "private" and added["destination"] is None
    assert methods["Lookup"]({"name": "n03.i2p"})["b32"] == keys[3].destination.b32_address
    assert methods["Lookup"]({"name": "zz.i2p"}) is None
    page = methods["List"]({"offset": 10, "limit": 5, "book": "local"})
    assert page["total"] == 25 and [e["name"] for e in page["entries"]] == [f"n{i}.i2p" for i in range(10, 15)]
    assert methods["List"]({"search": "n2"})["total"] == 5
    assert methods["Remove"]({"name": "n00.i2p"}) is True and methods["Remove"]({"name": "n00.i2p"}) is False
    for bad in ({"name": "bad_.i2p", "destination": keys[0].destination.b64}, {"name": "a.i2p"},
                {"name": "a.i2p", "destination": "x", "book": "local"}):
        with pytest.raises(ValueError):
            methods["Add"](bad)
    with pytest.raises(ValueError):
        methods["List"]({"book": "nope"})
    assert methods["Subscriptions"]({}) == [] and await methods["Update"]({}) == []


def test_config_is_checked(tmp_path, network):
    for bad in ({"publish": "yes"}, {"update_interval": -1}, {"publish_port": 0}, {"publish_books": ["public"]},
                {"subscriptions": "http://x.i2p/"}):
        with pytest.raises(ServiceError, match=next(iter(bad))):
            NamingService(bad, tmp_path, network)
    NamingService({"unknown_key": 1}, tmp_path, network)     # a warning only


async def test_publisher_gzips_for_clients_that_ask(tmp_path, network, keys):
    from apps.naming.http import ResponseParser, parse_request_head
    naming = NamingService({"subscribe": False}, tmp_path, network)
    for i in range(50):
        naming.book.add(f"n{i}.i2p", keys[i % 4].destination)

    def get(headers: str) -> tuple:
        raw = naming.publisher.handle(parse_request_head(f"GET /hosts.txt HTTP/1.1\r\n{headers}".rstrip().encode()))
        parser = ResponseParser(max_body=1 << 20)
        parser.feed(raw)
        return len(raw), parser.response
    plain_size, plain = get("Accept-Encoding: identity")
    gz_size, gz = get("Accept-Encoding: gzip\r\nX-Accept-Encoding: x-i2p-gzip;q=1.0, gzip;q=0")   # i2pd's
    assert gz.headers["content-encoding"] == "gzip" and gz.body == plain.body and gz_size < plain_size / 4
    assert gz.headers["etag"] != plain.headers["etag"]
    assert get(f"Accept-Encoding: gzip\r\nIf-None-Match: {gz.headers['etag']}")[1].status == 304
    assert "content-encoding" not in get("Accept-Encoding: gzip;q=0")[1].headers


async def test_the_published_destination_is_kept_across_restarts(tmp_path, network):
    b32s = []
    for _ in range(2):
        naming = NamingService({"publish": True, "subscribe": False}, tmp_path, network)
        await naming.start()
        b32s.append(await naming.wait_published(30))
        assert naming.status()["b32"] == b32s[-1]
        await naming.stop()
        assert naming.status()["state"] == "stopped" and "listen" not in naming.status()
    assert b32s[0] == b32s[1]
