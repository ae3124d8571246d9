"""A real server on 127.0.0.1 port 0, driven by plain standard-library JSON-RPC (urllib) and the client."""
from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from core.control import jsonrpc as codes
from core.control.client import ControlClient, ControlClientError, ControlRpcError
from core.control.config import ControlConfig, read_control_config, save_control_config
from core.control.methods import ControlService
from core.control.server import ControlServer, host_header_is_local, is_loopback, start_control_server
from core.httpmsg import Request

from .fakes import FakeRouter

PASSWORD = "pw"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
async def server():
    router = FakeRouter()
    server = ControlServer(ControlService(router, ControlConfig(password=PASSWORD)), "127.0.0.1", 0)
    await server.start()
    yield server
    await server.stop()


def post(port: int, message, path="/") -> tuple[int, dict]:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with NO_PROXY.open(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def stdlib_session(port: int) -> list:
    """What any outside tool does: authenticate, then call with the token."""
    status, auth = post(port, {"jsonrpc": "2.0", "id": "1", "method": "Authenticate",
                               "params": {"API": 1, "Password": PASSWORD}})
    token = auth["result"]["Token"]
    calls = [
        ("Echo", {"Echo": "ping"}),
        ("RouterInfo", {"i2p.router.uptime": None, "i2p.router.net.status": None}),
        ("GetRate", {"Stat": "bw.sendBps", "Period": 1000}),
        ("NetworkSetting", {"i2p.router.net.ntcp.port": None}),
        ("RouterManager", {"Reseed": None}),
        ("pyi2p.Summary", {}),
        ("Missing", {}),
    ]
    answers = [auth]
    for n, (method, params) in enumerate(calls, 2):
        answers.append(post(port, {"jsonrpc": "2.0", "id": n, "method": method, "params": {**params, "Token": token}},
                            path="/jsonrpc")[1])
    answers.append(post(port, b"not json")[1])
    answers.append(post(port, {"jsonrpc": "2.0", "id": 99, "method": "Echo", "params": {"Echo": "x"}})[1])
    answers.append(post(port, b"x" * 70_000))
    return answers


async def test_standard_library_client_against_a_real_server(server):
    answers = await asyncio.to_thread(stdlib_session, server.port)
    auth, echo, info, rate, setting, manager, summary, missing, garbage, no_token, too_big = answers
    assert auth["result"]["API"] == 1
    assert echo == {"jsonrpc": "2.0", "id": 2, "result": {"Result": "ping"}}
    assert info["result"] == {"i2p.router.uptime": 3723500, "i2p.router.net.status": 2}
    assert rate["result"] == {"Result": 900.0}
    assert setting["result"]["i2p.router.net.ntcp.port"] == "12345"
    assert manager["result"] == {"Reseed": None}
    assert server.service.router.actions == ["reseed"]
    assert summary["result"]["KnownRouters"] == 120
    assert missing["error"]["code"] == codes.METHOD_NOT_FOUND
    assert garbage["error"]["code"] == codes.PARSE_ERROR
    assert no_token["error"]["code"] == codes.NO_TOKEN
    assert too_big[0] == 413 and too_big[1]["error"]["code"] == codes.INVALID_REQUEST


async def test_control_client(server):
    client = ControlClient("127.0.0.1", server.port, PASSWORD)
    result = await asyncio.to_thread(client.call, "pyi2p.NetDb")
    assert result["Floodfills"] == 9
    bad = ControlClient("127.0.0.1", server.port, "wrong")
    with pytest.raises(ControlRpcError) as caught:
        await asyncio.to_thread(bad.call, "pyi2p.NetDb")
    assert caught.value.code == codes.INVALID_PASSWORD


async def test_client_reports_refused_connection():
    server = ControlServer(ControlService(FakeRouter(), ControlConfig(password="x")), "127.0.0.1", 0)
    port = await server.start()
    await server.stop()
    with pytest.raises(ControlClientError, match="connection refused"):
        await asyncio.to_thread(ControlClient("127.0.0.1", port, "x", timeout_s=2).authenticate)


async def test_sampler_feeds_rate_history():
    service = ControlService(FakeRouter(), ControlConfig(password="x"))
    server = ControlServer(service, "127.0.0.1", 0, sample_interval_s=0.01)
    await server.start()
    try:
        for _ in range(200):
            if len(service.rates) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        await server.stop()
    assert len(service.rates) >= 3


async def test_non_loopback_client_is_refused_when_bound_to_loopback():
    server = ControlServer(ControlService(FakeRouter(), ControlConfig(password="x")), "127.0.0.1", 0)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "Echo", "params": {"Echo": "x"}}).encode()
    status, answer = await server.answer(Request("POST", "/jsonrpc", {"host": "127.0.0.1:7650"}), body, "192.0.2.7")
    assert status == 403
    assert json.loads(answer)["error"]["code"] == codes.INVALID_REQUEST
    status, _ = await server.answer(Request("POST", "/jsonrpc", {"host": "rebound.example"}), body, "127.0.0.1")
    assert status == 403
    status, answer = await server.answer(Request("POST", "/jsonrpc", {"host": "127.0.0.1:7650"}), body, "127.0.0.1")
    assert status == 200 and json.loads(answer)["error"]["code"] == codes.NO_TOKEN


def test_loopback_and_host_checks():
    assert is_loopback("127.0.0.1") and is_loopback("127.9.9.9") and is_loopback("::1")
    assert not is_loopback("10.0.0.1") and not is_loopback(None) and not is_loopback("localhost")
    for host in ("localhost", "localhost:7650", "127.0.0.1:7650", "[::1]:7650", "LOCALHOST.", "a.localhost", None):
        assert host_header_is_local(host), host
    for host in ("example.com", "example.com:7650", "10.0.0.1", "[2001:db8::1]:7650", "127.0.0.1.nip.io"):
        assert not host_header_is_local(host), host


async def test_start_control_server_records_the_bound_port(tmp_path):
    save_control_config(tmp_path, ControlConfig("127.0.0.1", 0, "secret"))
    server = await start_control_server(FakeRouter(), tmp_path)
    try:
        config = read_control_config(tmp_path)
        assert config.port == server.port != 0 and config.password == "secret"
        result = await asyncio.to_thread(ControlClient.from_config(config).call, "Echo", {"Echo": "up"})
        assert result == {"Result": "up"}
        await asyncio.to_thread(ControlClient.from_config(config).call, "I2PControl",
                                {"i2pcontrol.password": "changed-pw"})
        assert read_control_config(tmp_path).password == "changed-pw"  # persisted for `pyi2p status`
    finally:
        await server.stop()
