"""The node builds the proxy from config.toml's [proxy] table, with the address book as a dependency."""
from __future__ import annotations

from apps.network import InProcessNetwork
from core.client import ClientAPI
from core.config import load_config
from pyi2p.node import APPS, Node

from .conftest import curl, start_site


async def test_node_runs_the_proxy_with_its_config(tmp_path):
    network = InProcessNetwork(ClientAPI())
    site = await start_site(network)
    network.resolver = {"site.i2p": site.session.destination}.get
    config = load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": 0})
    sections = {"proxy": {"port": 0, "socks_port": 0, "inbound": {"length": 0}, "outbound": {"length": 0},
                          "jumpservers": ["http://jump.example.i2p/?host="]}}
    node = Node(config, sections=sections, network=network, apps=tuple(s for s in APPS if s.name == "proxy"))
    await node.start()
    try:
        proxy = node.service("proxy")
        assert proxy.options["inbound.length"] == "0"
        listening = dict(node.listening())
        assert listening["proxy HTTP"] == proxy.http_address and listening["proxy SOCKS"] == proxy.socks_address
        await proxy.wait_ready()
        page = await curl("-x", f"http://{proxy.http_address}", "http://site.i2p/")
        assert page.code == 200 and b"hello from the site" in page.body
        unknown = await curl("-x", f"http://{proxy.http_address}", "http://nosuch.i2p/")
        assert b"http://jump.example.i2p/?host=nosuch.i2p" in unknown.body
    finally:
        await node.stop()
        await site.runner.cleanup()
        await network.close()
