"""The HTTP and SOCKS proxies on an in-process pyi2p router in the private testnet: pages from a site
behind an i2pd `http` server tunnel (the headers as the site gets them checked against the privacy table),
and an outproxy made of an i2pd server tunnel in front of Debian's tinyproxy reaching a "clearnet" web
server (HTTP, and HTTPS through CONNECT) on another address inside the namespace."""
from __future__ import annotations

import asyncio
import datetime
import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from apps.network import InProcessNetwork
from apps.proxy import ProxyService
from apps.proxy.http import USER_AGENT
from core.config import load_config
from core.data.privatekeys import PrivateKeys
from core.router import Router
from core.tunnel.service import TunnelSettings
from tests.proxy.conftest import Book, Site, curl, pipe, site_app

pytestmark = [pytest.mark.interop,
              pytest.mark.i2pd_defect("i2pd 2.45.1 sometimes publishes a fresh server tunnel's LeaseSet only minutes "
                                      "later (\"Destination is not ready\", testnet README pitfall 5)")]

SETTINGS = TunnelSettings(ip_restriction=0, test_interval_s=10.0, tick_s=0.2)
OPTIONS = {"inbound.length": "1", "outbound.length": "1", "inbound.quantity": "2", "outbound.quantity": "2"}
CLEARNET_IP = "198.18.1.1"
CLEARNET_NAME = "clearnet.example"


def self_signed(tmp: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CLEARNET_NAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(CLEARNET_NAME)]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


async def serve(app: web.Application, host: str, port: int, ssl_context=None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


def start_tinyproxy(testnet, tmp: Path, port: int) -> subprocess.Popen:
    """tinyproxy inside the namespace, on 127.0.0.1 only (i2pd server tunnels connect from 127.x.y.z, one
    address per client destination, hence 127.0.0.0/8); it resolves the clearnet name through the
    namespace's own hosts file (`ip netns exec` mounts /etc/netns/<ns>/hosts over /etc/hosts)."""
    conf = tmp / "tinyproxy.conf"
    conf.write_text(f"User nobody\nGroup nogroup\nPort {port}\nListen 127.0.0.1\nTimeout 60\nAllow 127.0.0.0/8\n"
                    "ConnectPort 443\nMaxClients 50\nLogLevel Info\nDisableViaHeader Yes\n")
    return subprocess.Popen(["ip", "netns", "exec", testnet.netns, "tinyproxy", "-d", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "tinyproxy.log", "wb"))


async def wait_site(testnet, router_name: str, b32: str, timeout: float = 240) -> None:
    """Until i2pd's own proxy (another router) gets the site: its LeaseSet is published."""
    deadline = time.monotonic() + timeout
    proxy = f"http://127.0.0.1:{testnet.router(router_name).http_proxy}"
    while True:
        got = await curl("-x", proxy, f"http://{b32}/", timeout=30, netns=testnet.netns)
        if got.code == 200 or time.monotonic() > deadline:
            return
        await asyncio.sleep(2)


async def fetch_retrying(*args: str, netns: str, attempts: int = 6):
    """curl through our proxy; a first lookup of a fresh i2pd LeaseSet may miss (testnet README pitfall 5)."""
    got = None
    for _ in range(attempts):
        got = await curl(*args, timeout=60, netns=netns)
        if got.code not in (0, 502, 503, 504):
            return got
        await asyncio.sleep(3)
    return got


async def test_proxy_pages_headers_and_outproxy(each_i2pd_testnet, tmp_path):
    testnet = each_i2pd_testnet     # Debian's i2pd, and the one in $PYI2P_I2PD_EXTRA
    if shutil.which("tinyproxy") is None:
        pytest.skip("Debian's tinyproxy is not installed (.ci/run installs it)")
    address = testnet.add_pyi2p_address()
    site_address = testnet.add_pyi2p_address()
    subprocess.run(["ip", "-n", testnet.netns, "addr", "replace", f"{CLEARNET_IP}/32", "dev", "lo"], check=True)
    hosts_dir = Path("/etc/netns") / testnet.netns
    hosts_dir.mkdir(parents=True, exist_ok=True)
    (hosts_dir / "hosts").write_text(f"127.0.0.1 localhost\n{CLEARNET_IP} {CLEARNET_NAME}\n")
    runners: list[web.AppRunner] = []
    tinyproxy = None
    proxy = None
    network = None
    with testnet.in_netns():
        router = Router(load_config(tmp_path / "proxy-router", {
            "netid": testnet.netid, "host": address, "port": 24320, "reseed_file": str(testnet.seed_file),
            "control_port": 0, "sam_port": 0}), tunnel_settings=SETTINGS)
        # a second pyi2p router hosts the same web server on a destination of its own (as a server tunnel does)
        site_router = Router(load_config(tmp_path / "site-router", {
            "netid": testnet.netid, "host": site_address, "port": 24321, "reseed_file": str(testnet.seed_file),
            "control_port": 0, "sam_port": 0}), tunnel_settings=SETTINGS)
        site_network = None
        try:
            # the eepsite: a web server behind an i2pd http server tunnel on r3
            eepsite = Site(None, "")
            runner, web_port = await serve(site_app(eepsite), "127.0.0.1", 0)
            runners.append(runner)
            testnet.set_i2pd_tunnels("r3", "web", f"[web]\ntype = http\nhost = 127.0.0.1\nport = {web_port}\n"
                                                  "keys = proxy-web.dat\n")
            # the clearnet: plain HTTP and HTTPS on another address, reached only through tinyproxy
            clearnet = Site(None, "")
            runner, _ = await serve(site_app(clearnet), CLEARNET_IP, 8080)
            runners.append(runner)
            runner, _ = await serve(site_app(clearnet), CLEARNET_IP, 443, self_signed(tmp_path))
            runners.append(runner)
            tinyproxy = start_tinyproxy(testnet, tmp_path, 24330)
            testnet.set_i2pd_tunnels("r4", "exit", "[exit]\ntype = server\nhost = 127.0.0.1\nport = 24330\n"
                                                   "keys = proxy-exit.dat\n")
            await router.start()
            await site_router.start()
            site_network = InProcessNetwork(site_router.client)
            pyi2p_site = await site_network.open_session(None, OPTIONS, name="pyi2p-site")
            await pyi2p_site.serve(lambda stream: pipe(stream, "127.0.0.1", web_port))
            for name in ("r3", "r4"):
                key_file = Path(testnet.router(name).datadir) / ("proxy-web.dat" if name == "r3" else "proxy-exit.dat")
                for _ in range(100):
                    if key_file.exists():
                        break
                    await asyncio.sleep(0.1)
            web_dest = PrivateKeys.load(Path(testnet.router("r3").datadir) / "proxy-web.dat").destination
            exit_dest = PrivateKeys.load(Path(testnet.router("r4").datadir) / "proxy-exit.dat").destination

            network = InProcessNetwork(router.client)
            proxy = ProxyService({"port": 0, "socks_port": 0, "outproxy": ["exit.i2p"], **OPTIONS}, tmp_path,
                                 network, addressbook=Book({"web.i2p": web_dest, "exit.i2p": exit_dest}))
            await proxy.start()
            await asyncio.wait_for(proxy.wait_ready(), 200)
            await wait_site(testnet, "r1", web_dest.b32_address)
            via = ["-x", f"http://{proxy.http_address}"]

            page = await fetch_retrying(*via, "-A", "Mozilla/5.0 (X11) Firefox/128", "-H", "Accept-Language: de",
                                        "-H", "X-Forwarded-For: 10.1.2.3", "-H", "Via: 1.1 me", "-H", "DNT: 1",
                                        "-e", "http://other.i2p/", "-H", "Cookie: session=1",
                                        "http://web.i2p/", netns=testnet.netns)
            assert page.code == 200 and b"hello from the site" in page.body, (page.code, page.body[:300])
            seen = eepsite.seen[-1]
            assert seen["Host"] == web_dest.b32_address and seen["User-Agent"] == USER_AGENT
            for gone in ("Accept-Language", "Accept", "X-Forwarded-For", "Via", "DNT", "Referer", "From",
                         "Proxy-Connection"):
                assert gone not in seen, gone
            assert seen["Cookie"] == "session=1"
            # i2pd's http server tunnel adds its own X-I2P-Dest* headers: proof the request came over I2P
            assert any(k.lower().startswith("x-i2p-dest") for k in seen)

            img = await fetch_retrying(*via, "-e", f"http://{web_dest.b32_address}/",
                                       f"http://{web_dest.b32_address}/img/1.png", netns=testnet.netns)
            assert img.code == 200 and img.body.startswith(b"\x89PNG")
            assert eepsite.seen[-1]["Referer"] == f"http://{web_dest.b32_address}/"
            form = await fetch_retrying(*via, "-d", "q=over+i2p", "http://web.i2p/form", netns=testnet.netns)
            assert b"got over i2p" in form.body
            socks = await fetch_retrying("--socks5-hostname", proxy.socks_address, "http://web.i2p/big",
                                         netns=testnet.netns)
            assert socks.code == 200 and len(socks.body) == 1 << 20

            # the same site behind the other pyi2p router: pyi2p to pyi2p across the testnet
            hosted = await fetch_retrying(*via, "-A", "x", f"http://{pyi2p_site.b32}/img/4.png", netns=testnet.netns)
            assert hosted.code == 200 and hosted.body.startswith(b"\x89PNG"), (hosted.code, hosted.body[:300])
            assert eepsite.seen[-1]["Host"] == pyi2p_site.b32 and eepsite.seen[-1]["User-Agent"] == USER_AGENT
            assert not any(k.lower().startswith("x-i2p-dest") for k in eepsite.seen[-1])   # not i2pd's tunnel

            # the outproxy: HTTP as a proxy request, HTTPS as CONNECT, both through tinyproxy
            plain = await fetch_retrying(*via, "-A", "curl-secret", f"http://{CLEARNET_NAME}:8080/img/2.png",
                                         netns=testnet.netns)
            assert plain.code == 200 and plain.body.startswith(b"\x89PNG"), (plain.code, plain.body[:400])
            assert clearnet.seen[-1]["User-Agent"] == USER_AGENT
            assert clearnet.seen[-1]["Host"] == f"{CLEARNET_NAME}:8080"
            https = await fetch_retrying(*via, "-k", f"https://{CLEARNET_NAME}/", netns=testnet.netns)
            assert https.code == 200 and b"hello from the site" in https.body, (https.code, https.stderr)
            socks_out = await fetch_retrying("--socks5-hostname", proxy.socks_address, "-k",
                                             f"https://{CLEARNET_NAME}/img/3.png", netns=testnet.netns)
            assert socks_out.code == 200 and socks_out.body.startswith(b"\x89PNG")
            local = await curl(*via, f"http://{CLEARNET_IP}:8080/", netns=testnet.netns)
            assert local.code == 403        # an address in a private range is refused, outproxy or not
            print(f"\nproxy over the testnet: {proxy.status()}")
        finally:
            if proxy is not None:
                await proxy.stop()
            if network is not None:
                await network.close()
            await router.stop()
            if site_network is not None:
                await site_network.close()
            await site_router.stop()
            for runner in runners:
                await runner.cleanup()
            if tinyproxy is not None:
                tinyproxy.terminate()
                tinyproxy.wait(10)
            testnet.set_i2pd_tunnels("r3", "web", None)
            testnet.set_i2pd_tunnels("r4", "exit", None)
            (hosts_dir / "hosts").unlink(missing_ok=True)
            try:
                hosts_dir.rmdir()
                os.rmdir("/etc/netns") if not os.listdir("/etc/netns") else None
            except OSError:
                pass
