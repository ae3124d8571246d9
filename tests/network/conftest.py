"""The port's adapters, each over a ClientAPI with local delivery: in-process, and SAM through
our own bridge (core.sam) on 127.0.0.1. Tests that take `network` run once per adapter."""
from __future__ import annotations

import pytest

from apps.network import InProcessNetwork
from apps.network.sam import SamNetwork
from core.client import ClientAPI
from core.sam.bridge import SamBridge, SamConfig
from core.sam.client_backend import ClientBackend


@pytest.fixture
async def api():
    api = ClientAPI()
    yield api
    await api.close()


def sam_network(bridge: SamBridge, **kwargs) -> SamNetwork:
    return SamNetwork("127.0.0.1", bridge.port, udp_port=bridge.udp_address[1], reply_timeout=5, **kwargs)


@pytest.fixture(params=["in-process", "sam"])
async def network(request, api):
    if request.param == "in-process":
        net = InProcessNetwork(api)
        yield net
        await net.close()
        return
    async with SamBridge(ClientBackend(api), SamConfig(port=0, udp_port=0)) as bridge:
        net = sam_network(bridge)
        yield net
        await net.close()
