#!/usr/bin/env python3
"""Our HTTP proxy against i2pd's, same site, same testnet, same run (needs root and i2pd).

The site is a local web server behind an i2pd `http` server tunnel on r3. Our proxy runs on an in-process
pyi2p router in the namespace; i2pd's is r5's built-in HTTP proxy (r5 is no floodfill, like our router).
Both use 1-hop tunnels, 2 of each way (the testnet's httpproxy settings). Figures:
- a 1 MB page: seconds (median of --reps) and MB/s;
- a page with 30 small resources (5 KB each), fetched as a browser does (6 connections): seconds;
The client is curl, in a process of its own, for both proxies.
- first byte for a fresh host (a new i2pd server tunnel, so a LeaseSet lookup and a new stream): seconds.

    python benchmarks/bench_proxy.py [--reps 5] [--fresh 3] [--i2pd /path/to/i2pd]

A fresh i2pd 2.45.1 destination may take minutes to publish its LeaseSet (testnet README pitfall 5);
the fresh-host figure waits until a third router (r1) reaches it, then times both proxies.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.network import InProcessNetwork  # noqa: E402
from apps.proxy import ProxyService  # noqa: E402
from core.config import load_config  # noqa: E402
from core.data.privatekeys import PrivateKeys  # noqa: E402
from core.router import Router  # noqa: E402
from core.tunnel.service import TunnelSettings  # noqa: E402
from pyi2p.testnet import Testnet, private_netns_name, unavailable_reason  # noqa: E402

SETTINGS = TunnelSettings(ip_restriction=0, test_interval_s=10.0, tick_s=0.2)
OPTIONS = {"inbound.length": "1", "outbound.length": "1", "inbound.quantity": "2", "outbound.quantity": "2"}
BIG = os.urandom(1 << 20)
SMALL = [os.urandom(5000) for _ in range(30)]


def site() -> web.Application:
    async def big(request):
        return web.Response(body=BIG, content_type="application/octet-stream")

    async def page(request):
        links = "".join(f'<img src="/r/{i}">' for i in range(30))
        return web.Response(text=f"<html><body>{links}</body></html>", content_type="text/html")

    async def resource(request):
        return web.Response(body=SMALL[int(request.match_info["n"])], content_type="image/png")

    async def index(request):
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/big", big)
    app.router.add_get("/page", page)
    app.router.add_get("/r/{n}", resource)
    return app


async def curl(netns: str, *args: str, timeout: float = 180) -> str:
    """curl in its own process (so the client costs neither router CPU), inside the namespace."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, "curl", "-sS", "--fail", "--max-time", str(int(timeout)), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")})
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"curl {args[-1]}: {err.decode().strip()[:100]}")
    return out.decode()


async def timed_get(netns: str, url: str, proxy: str) -> tuple[float, float]:
    """(seconds to the first byte, seconds to the last) as curl measures them; the body is checked by size."""
    out = await curl(netns, "-x", proxy, "-o", "/dev/null", "-w", "%{time_starttransfer} %{time_total} %{size_download}",
                     url)
    first, total, size = out.split()
    if url.endswith("/big") and int(size) != len(BIG):
        raise RuntimeError(f"{url}: {size} bytes")
    return float(first), float(total)


async def page_with_resources(netns: str, url: str, proxy: str) -> float:
    """The page, then its 30 resources over 6 connections at once (as a browser does), timed as one."""
    started = time.monotonic()
    html = await curl(netns, "-x", proxy, url + "/page")
    paths = re.findall(r'src="([^"]+)"', html)
    out = await curl(netns, "-x", proxy, "--parallel", "--parallel-max", "6", "-w", "%{size_download}\\n",
                     *(arg for p in paths for arg in ("-o", "/dev/null", url + p)))
    assert [int(n) for n in out.split()] == [len(b) for b in SMALL]
    return time.monotonic() - started


async def until_ok(netns: str, url: str, proxy: str, timeout: float = 180) -> float:
    """Retries until the proxy gets the page (a fresh i2pd LeaseSet may not be published at once)."""
    started = time.monotonic()
    while True:
        try:
            await timed_get(netns, url + "/", proxy)
            return time.monotonic() - started
        except RuntimeError as exc:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{url} via {proxy}: {exc}") from None
            await asyncio.sleep(2)


async def direct_stream(session, b32: str) -> float:
    """The same 1 MB over a plain stream of the proxy's own destination (no proxy): what the router gives."""
    started = time.monotonic()
    reader, writer = await session.connect(b32, 80, timeout=60)
    writer.write(f"GET /big HTTP/1.1\r\nHost: {b32}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    got = b""
    while chunk := await asyncio.wait_for(reader.read(65536), 60):
        got += chunk
    writer.close()
    assert got.endswith(BIG), len(got)
    return time.monotonic() - started


async def key_file(testnet: Testnet, router: str, name: str) -> PrivateKeys:
    path = Path(testnet.router(router).datadir) / name
    for _ in range(600):     # i2pd re-reads its tunnels on SIGHUP, sometimes only after a while
        if path.exists():
            return PrivateKeys.load(path)
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{path} did not appear")


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "-"


def report(args, proxies, big, page, fresh, direct) -> None:
    print(f"\nsame site (i2pd http server tunnel on r3), 1-hop tunnels; medians of {args.reps} "
          f"(fresh host: of {args.fresh})")
    print(f"{'proxy':<6} {'1 MB s':>8} {'MB/s':>6} {'30 res s':>9} {'fresh 1st byte s':>17}   runs")
    for name in proxies:
        rate = f"{1.048576 / statistics.median(big[name]):.2f}" if big[name] else "-"
        print(f"{name:<6} {median(big[name]):>8} {rate:>6} {median(page[name]):>9} "
              f"{median(fresh[name]):>17}   1MB {[round(v, 2) for v in big[name]]} "
              f"30res {[round(v, 2) for v in page[name]]} fresh {[round(v, 2) for v in fresh[name]]}")
    if direct:
        print(f"{'stream':<6} {median(direct):>8} {1.048576 / statistics.median(direct):>6.2f}"
              f"{'':>28}   1MB {[round(v, 2) for v in direct]} (pyi2p, the proxy's destination, no proxy)")
    if big["pyi2p"] and big["i2pd"]:
        print(f"\n1 MB: ours/i2pd speed {statistics.median(big['i2pd']) / statistics.median(big['pyi2p']):.2f}x;"
              f" 30 resources: {statistics.median(page['i2pd']) / statistics.median(page['pyi2p']):.2f}x")


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        testnet = Testnet(Path(tmp) / "testnet", netns=private_netns_name("bench"), die_with_parent=True,
                          i2pd=args.i2pd)
        try:
            testnet.up(wait=120)
            address = testnet.add_pyi2p_address()
            with testnet.in_netns():
                runner = web.AppRunner(site())
                await runner.setup()
                tcp = web.TCPSite(runner, "127.0.0.1", 0)
                await tcp.start()
                web_port = tcp._server.sockets[0].getsockname()[1]
                tunnel = f"type = http\nhost = 127.0.0.1\nport = {web_port}\n"
                testnet.set_i2pd_tunnels("r3", "site", f"[site]\n{tunnel}keys = bench-site.dat\n")
                router = Router(load_config(Path(tmp) / "pyi2p", {
                    "netid": testnet.netid, "host": address, "port": 24500, "reseed_file": str(testnet.seed_file),
                    "control_port": 0, "sam_port": 0}), tunnel_settings=SETTINGS)
                proxy = None
                try:
                    await router.start()
                    proxy = ProxyService({"port": 0, "socks_enabled": False, **OPTIONS}, Path(tmp), 
                                         InProcessNetwork(router.client))
                    await proxy.start()
                    await asyncio.wait_for(proxy.wait_ready(), 200)
                    ours = f"http://{proxy.http_address}"
                    theirs = f"http://127.0.0.1:{testnet.router('r5').http_proxy}"
                    proxies = {"pyi2p": ours, "i2pd": theirs}
                    floodfill_proxy = f"http://127.0.0.1:{testnet.router('r1').http_proxy}"
                    url = "http://" + (await key_file(testnet, "r3", "bench-site.dat")).destination.b32_address
                    for name, p in proxies.items():
                        print(f"{name}: first page after {await until_ok(testnet.netns, url, p):.1f} s (warm-up)", flush=True)

                    big: dict[str, list[float]] = {n: [] for n in proxies}
                    direct: list[float] = []
                    page: dict[str, list[float]] = {n: [] for n in proxies}
                    for rep in range(args.reps):
                        for name, p in (proxies.items() if rep % 2 == 0 else reversed(proxies.items())):
                            try:
                                big[name].append((await timed_get(testnet.netns, url + "/big", p))[1])
                                page[name].append(await page_with_resources(testnet.netns, url, p))
                            except Exception as exc:   # one failure must not lose the other figures
                                print(f"{name}: rep {rep} failed: {type(exc).__name__} {exc}"[:120], flush=True)
                        try:
                            direct.append(await direct_stream(proxy.session, url[7:]))
                        except Exception as exc:
                            print(f"direct stream: rep {rep} failed: {type(exc).__name__} {exc}"[:120], flush=True)

                    report(args, proxies, big, page, {n: [] for n in proxies}, direct)
                    fresh: dict[str, list[float]] = {n: [] for n in proxies}
                    for i in range(args.fresh):
                        testnet.set_i2pd_tunnels("r4", f"fresh{i}", f"[fresh{i}]\n{tunnel}keys = bench-fresh{i}.dat\n")
                        try:
                            fresh_url = "http://" + (await key_file(testnet, "r4", f"bench-fresh{i}.dat")
                                                     ).destination.b32_address
                        except TimeoutError as exc:
                            print(f"fresh host {i}: {exc}", flush=True)
                            continue
                        # published once r1 (a floodfill, neither of the two proxies) gets the page
                        try:
                            print(f"fresh host {i}: reachable from r1 after "
                                  f"{await until_ok(testnet.netns, fresh_url, floodfill_proxy, 240):.1f} s", flush=True)
                        except TimeoutError as exc:
                            print(f"fresh host {i}: {exc}"[:120], flush=True)
                            continue
                        order = list(proxies.items()) if i % 2 == 0 else list(reversed(proxies.items()))
                        for name, p in order:
                            try:
                                fresh[name].append((await timed_get(testnet.netns, fresh_url + "/", p))[0])
                            except Exception as exc:
                                print(f"{name}: fresh host {i} failed: {type(exc).__name__} {exc}"[:120], flush=True)
                        testnet.set_i2pd_tunnels("r4", f"fresh{i}", None)
                finally:
                    if proxy is not None:
                        await proxy.stop()
                    await router.stop()
                    await runner.cleanup()

            report(args, proxies, big, page, fresh, direct)
        finally:
            testnet.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--fresh", type=int, default=3)
    parser.add_argument("--i2pd", help="the i2pd executable (default: $PYI2P_I2PD or Debian's)")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        sys.exit(f"private testnet unavailable: {reason}")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
