"""Reseed from servers: HTTPS fetch from local servers on 127.0.0.1 only, and the retry loop with backoff."""
import asyncio
import ssl

import pytest
from aiohttp import web

from core.clock import FakeClock
from core.netdb.reseed import (RESEED_URLS_NETID_2, BackoffSchedule, FetchResult, ReseedFetcher, ReseedService,
                               ServerOutcome, default_reseed_urls, su3_url)
from core.netdb.store import NetDb

from .test_reseed_support import NOW, ed_key, make_ri, rsa_key, signed_bundle, tls_pair, write_cert


def test_default_urls_only_for_the_real_network():
    assert default_reseed_urls(2) == list(RESEED_URLS_NETID_2)
    assert all(url.startswith("https://") and url.endswith("/") for url in RESEED_URLS_NETID_2)
    assert default_reseed_urls(42) == [] and default_reseed_urls(0) == []


@pytest.mark.parametrize("base, expected", [
    ("https://a.example/", "https://a.example/i2pseeds.su3?netid=42"),
    ("https://a.example:8443", "https://a.example:8443/i2pseeds.su3?netid=42"),
    ("https://a.example/netDb/", "https://a.example/netDb/i2pseeds.su3?netid=42"),
    ("https://a.example/my.su3", "https://a.example/my.su3?netid=42"),
])
def test_su3_url_form(base, expected):
    assert su3_url(base, 42) == expected


class Servers:
    """Local reseed servers, one per port on 127.0.0.1, each behaving as its path says."""

    def __init__(self, tmp_path, tls: bool):
        self.tmp_path = tmp_path
        self.tls = tls
        self.requests: list[str] = []
        self.runners: list[web.AppRunner] = []
        self.good_ris = [make_ri() for _ in range(4)]
        self.other_ris = [make_ri() for _ in range(2)]
        self.bundles = {
            "good": signed_bundle(self.good_ris[:3]).to_bytes(),
            "good2": signed_bundle(self.good_ris[1:]).to_bytes(),
            "badsig": bytes(b ^ 1 if i == 200 else b for i, b in enumerate(signed_bundle(self.good_ris).to_bytes())),
            "othernet": signed_bundle([make_ri(netid=2) for _ in range(3)]).to_bytes(),
            "stranger": signed_bundle(self.good_ris, ed_key(9), signer="stranger@mail.i2p").to_bytes(),
            "big": b"I2Psu3" + bytes(300_000),
        }
        self.ca = None
        if tls:
            self.ca, cert, key = tls_pair(tmp_path)
            self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.server_context.load_cert_chain(cert, key)
        write_cert(tmp_path / "certs", ed_key())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        self.requests.append(f"{kind} {request.path_qs} {request.headers.get('User-Agent')}")
        if kind == "slow":
            await asyncio.sleep(5)
        if kind == "missing":
            raise web.HTTPNotFound()
        if kind == "redirect":
            raise web.HTTPFound("/good/i2pseeds.su3")
        if request.query.get("netid") != "42":
            raise web.HTTPBadRequest()
        return web.Response(body=self.bundles[kind], content_type="application/octet-stream")

    async def start(self, kind: str) -> str:
        app = web.Application()
        app.router.add_get("/{kind}/i2pseeds.su3", self.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.server_context if self.tls else None)
        await site.start()
        self.runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}/{kind}/"

    async def close(self):
        for runner in self.runners:
            await runner.cleanup()

    def fetcher(self, urls, **kwargs) -> ReseedFetcher:
        kwargs.setdefault("timeout_s", 5.0)
        return ReseedFetcher(urls, 42, [self.tmp_path / "certs"], clock=FakeClock(NOW), trust_ca=self.ca, **kwargs)


@pytest.fixture
async def servers(tmp_path):
    s = Servers(tmp_path, tls=True)
    yield s
    await s.close()


async def test_https_fetch_from_one_good_server(servers):
    url = await servers.start("good")
    result = await servers.fetcher([url], min_servers=2).fetch()
    assert sorted(result.router_infos) == sorted(ri.to_bytes() for ri in servers.good_ris[:3])
    assert result.outcomes == (ServerOutcome(url, 3),) and result.servers_ok == 1
    assert servers.requests == ["good /good/i2pseeds.su3?netid=42 Wget/1.11.4"]


async def test_results_from_two_servers_are_merged_without_duplicates(servers):
    urls = [await servers.start("good"), await servers.start("good2")]
    result = await servers.fetcher(urls, min_servers=2).fetch()
    assert len(result.router_infos) == 4 and result.servers_ok == 2


async def test_stops_once_enough_servers_answered(servers):
    urls = [await servers.start("good"), await servers.start("good2"), await servers.start("good")]
    result = await servers.fetcher(urls, min_servers=1, min_router_infos=1).fetch()
    assert len(result.outcomes) == 1 and len(servers.requests) == 1


async def test_same_host_and_port_is_asked_once(servers):
    url = await servers.start("good")
    fetcher = servers.fetcher([url, url.replace("/good/", "/good2/")])
    assert len(fetcher.server_order()) == 1


@pytest.mark.parametrize("kind, message", [
    ("badsig", "does not verify"),
    ("stranger", "unknown signer"),
    ("othernet", "no RouterInfos for netId 42 in a bundle of 3, 3 for other networks"),
    ("missing", "HTTP 404"),
    ("redirect", "HTTP 302"),
    ("big", "larger than 100000"),
])
async def test_bad_servers_fail_and_the_good_one_still_counts(servers, kind, message):
    bad, good = await servers.start(kind), await servers.start("good")
    result = await servers.fetcher([bad, good], max_bytes=100_000).fetch()
    outcome = {o.url: o for o in result.outcomes}
    assert message in outcome[bad].error and outcome[good].error == ""
    assert len(result.router_infos) == 3


async def test_timeout_is_an_outcome_not_an_exception(servers):
    url = await servers.start("slow")
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await servers.fetcher([url], timeout_s=0.3).fetch()
    assert loop.time() - started < 3
    assert result.router_infos == () and "timed out" in result.outcomes[0].error


async def test_server_certificate_not_trusted_fails(servers):
    url = await servers.start("good")
    fetcher = ReseedFetcher([url], 42, [servers.tmp_path / "certs"], clock=FakeClock(NOW),
                            ssl_context=ssl.create_default_context())      # system CAs: our test CA is not there
    result = await fetcher.fetch()
    assert result.router_infos == () and "certificate" in result.outcomes[0].error.lower()


async def test_plain_http_server_for_a_testnet(tmp_path):
    servers = Servers(tmp_path, tls=False)
    try:
        url = await servers.start("good")
        result = await servers.fetcher([url]).fetch()
        assert len(result.router_infos) == 3
    finally:
        await servers.close()


async def test_own_router_info_is_left_out(servers):
    url = await servers.start("good")
    result = await servers.fetcher([url], own_hash=servers.good_ris[0].hash).fetch()
    assert len(result.router_infos) == 2


async def test_rsa_4096_bundles_as_real_servers_sign_them(servers):
    write_cert(servers.tmp_path / "certs", rsa_key(4096), signer="rsa@mail.i2p")
    servers.bundles["good"] = signed_bundle(servers.good_ris, rsa_key(4096), signer="rsa@mail.i2p").to_bytes()
    result = await servers.fetcher([await servers.start("good")]).fetch()
    assert len(result.router_infos) == 4


async def test_no_servers_is_an_empty_result():
    fetcher = ReseedFetcher([], 42, [], clock=FakeClock(NOW))
    assert await fetcher.fetch() == FetchResult((), ())


async def test_service_with_real_fetcher_fills_the_netdb(servers):
    db = NetDb(None, 42, FakeClock(NOW))
    service = ReseedService(servers.fetcher([await servers.start("good")]), router_count=lambda: len(db),
                            add_router_info=db.add_router_info, clock=FakeClock(NOW), threshold=3)
    assert await service.reseed_once() == 3 and len(db) == 3
    assert service.status().last_added == 3 and service.status().last_error == ""


# --- the retry loop, on a fake clock

def test_backoff_doubles_from_30_s_to_an_hour_and_resets():
    backoff = BackoffSchedule()
    assert [backoff.next_delay() for _ in range(9)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    backoff.reset()
    assert backoff.next_delay() == 30


class FakeFetcher:
    def __init__(self, script):
        self.urls = ["https://reseed.invalid/"]
        self.script = list(script)
        self.calls = 0

    async def fetch(self):
        self.calls += 1
        blobs = self.script.pop(0) if self.script else ()
        outcome = ServerOutcome(self.urls[0], len(blobs), "" if blobs else "HTTP 503")
        return FetchResult(tuple(blobs), (outcome,))


class Harness:
    def __init__(self, script, threshold=2, known=0, stop_after=8):
        self.clock = FakeClock(NOW)
        self.known = known
        self.added: list[bytes] = []
        self.delays: list[float] = []
        self.stop_after = stop_after
        self.done = asyncio.Event()
        self.fetcher = FakeFetcher(script)
        self.service = ReseedService(self.fetcher, router_count=lambda: self.known + len(self.added),
                                     add_router_info=self.add, clock=self.clock, threshold=threshold,
                                     idle_check_s=600, sleep=self.sleep)

    def add(self, blob):
        self.added.append(blob)
        return blob

    async def sleep(self, seconds):
        self.delays.append(seconds)
        self.clock.advance(seconds)
        if len(self.delays) >= self.stop_after:
            self.done.set()
            await asyncio.Event().wait()            # park here until the test cancels the loop
        await asyncio.sleep(0)

    async def run(self):
        task = asyncio.create_task(self.service.run())
        try:
            await asyncio.wait_for(self.done.wait(), timeout=5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_failures_back_off_exponentially_and_never_give_up():
    h = Harness(script=[], stop_after=10)
    await h.run()
    assert h.delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert h.fetcher.calls == 10
    status = h.service.status()
    assert status.state == "waiting" and status.consecutive_failures == 10 and status.attempts == 10
    assert "HTTP 503" in status.last_error
    assert status.next_attempt_at == pytest.approx(h.clock.time())


async def test_success_resets_the_backoff_and_the_loop_goes_idle():
    h = Harness(script=[[], [], [b"a", b"b"]], stop_after=5)
    await h.run()
    assert h.delays == [30, 60, 600, 600, 600]          # two failures, success, then idle re-checks
    assert h.fetcher.calls == 3 and h.added == [b"a", b"b"]
    status = h.service.status()
    assert status.state == "idle" and status.consecutive_failures == 0 and status.last_success_at is not None


async def test_partial_success_below_the_threshold_keeps_retrying():
    h = Harness(script=[[b"a"], [], [b"b"]], threshold=5, stop_after=4)
    await h.run()
    assert h.delays[:3] == [30, 60, 120]
    assert h.fetcher.calls == 4


async def test_enough_routers_means_no_reseed_until_requested():
    h = Harness(script=[[b"x"]], known=10, stop_after=2)
    await h.run()
    assert h.fetcher.calls == 0 and h.delays == [600, 600]
    h.service.request()
    h.stop_after, h.done = 3, asyncio.Event()
    await h.run()
    assert h.fetcher.calls == 1 and h.added == [b"x"]


async def test_request_cuts_a_backoff_wait_short():
    clock = FakeClock(NOW)
    fetcher = FakeFetcher(script=[])
    service = ReseedService(fetcher, router_count=lambda: 0, add_router_info=lambda b: b, clock=clock,
                            sleep=lambda s: asyncio.sleep(3600))     # real waits: only request() can end them
    task = asyncio.create_task(service.run())
    try:
        for expected_calls in (1, 2, 3):
            for _ in range(100):
                if fetcher.calls == expected_calls and service.status().state == "waiting":
                    break
                await asyncio.sleep(0.01)
            assert fetcher.calls == expected_calls
            service.request()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_unreachable_servers_say_what_to_do_in_one_line(caplog):
    h = Harness(script=[], stop_after=2)
    with caplog.at_level("INFO", logger="core.netdb.reseed"):
        await h.run()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert "none of the 1 reseed servers could be reached" in warnings[0] and "--reseed-file" in warnings[0]
