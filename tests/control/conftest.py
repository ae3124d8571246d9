"""Fixtures: a FakeRouter behind a ControlService, served by a ControlServer on 127.0.0.1 port 0."""
from __future__ import annotations

import itertools

import aiohttp
import pytest

from core.clock import FakeClock
from core.control.config import ControlConfig
from core.control.methods import ControlService
from core.control.server import ControlServer

from .fakes import FakeRouter

PASSWORD = "correct horse"


class Rpc:
    """Posts JSON-RPC with an aiohttp client session and keeps the token."""

    def __init__(self, client):
        self.client = client
        self.token: str | None = None
        self._ids = itertools.count(1)

    async def raw(self, body, path="/jsonrpc", headers=None):
        kwargs = {"data": body} if isinstance(body, (bytes, str)) else {"json": body}
        response = await self.client.post(path, headers=headers, **kwargs)
        assert response.content_type == "application/json" or response.status == 204
        return response.status, (await response.json() if response.status != 204 else None)

    async def request(self, method, params=None, path="/jsonrpc"):
        message = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            message["params"] = params
        status, answer = await self.raw(message, path)
        assert status == 200
        assert answer["jsonrpc"] == "2.0" and answer["id"] == message["id"]
        return answer

    async def authenticate(self, password=PASSWORD):
        answer = await self.request("Authenticate", {"API": 1, "Password": password})
        self.token = answer["result"]["Token"]
        return answer

    async def call(self, method, params=None):
        return await self.request(method, {**(params or {}), "Token": self.token})

    async def result(self, method, params=None):
        answer = await self.call(method, params)
        assert "error" not in answer, answer
        return answer["result"]

    async def error(self, method, params=None):
        answer = await self.call(method, params)
        assert "result" not in answer, answer
        return answer["error"]["code"]


@pytest.fixture
def router():
    return FakeRouter()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def saved_configs():
    return []


@pytest.fixture
def service(router, clock, saved_configs):
    counter = itertools.count()
    rng = lambda n: next(counter).to_bytes(n, "big")  # deterministic, distinct tokens
    return ControlService(router, ControlConfig(password=PASSWORD), clock=clock, rng=rng,
                          save_config=saved_configs.append)


@pytest.fixture
async def rpc(service):
    server = ControlServer(service, "127.0.0.1", 0)
    await server.start()
    server._sampler.cancel()      # the tests feed the rate history themselves, on the fake clock
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}") as session:
            rpc = Rpc(session)
            await rpc.authenticate()
            yield rpc
    finally:
        await server.stop()
