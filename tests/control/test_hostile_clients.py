"""I2PControl under local clients behaving badly: many idle connections, slow or vanishing bodies,
password guessing. The server stays usable for the client that behaves."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest

from core.control.client import ControlClient, ControlRpcError
from core.control.config import ControlConfig
from core.control.jsonrpc import INVALID_REQUEST, RpcError
from core.control.methods import MAX_AUTH_FAILURES, ControlService
from core.control.server import ControlServer

from .fakes import FakeRouter

PASSWORD = "right-password"


@pytest.fixture
async def server():
    server = ControlServer(ControlService(FakeRouter(), ControlConfig(password=PASSWORD)), "127.0.0.1", 0,
                           max_connections=16, idle_timeout_s=0.5)
    await server.start()
    yield server
    await server.stop()


def good_call(port: int) -> dict:
    return ControlClient("127.0.0.1", port, PASSWORD).call("Echo", {"Echo": "still here"})


async def test_connections_past_the_cap_are_refused_and_idle_ones_closed(server):
    loop = asyncio.get_running_loop()
    idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(40)]
    for _, writer in idle:
        writer.write(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")   # and then nothing
    await asyncio.sleep(0.1)
    assert len(server._connections) <= 16 and server.refused_connections >= 24
    await asyncio.sleep(1.0)                 # past the idle timeout: the stalled ones are gone
    assert len(server._connections) == 0 and server.timed_out_connections >= 16
    assert (await loop.run_in_executor(None, good_call, server.port)) == {"Result": "still here"}
    for _, writer in idle:
        writer.close()


async def test_a_client_vanishing_mid_body_logs_no_error(server, caplog):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /jsonrpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n{\"jsonrpc\"")
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.transport.abort()
    await asyncio.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    loop = asyncio.get_running_loop()
    assert (await loop.run_in_executor(None, good_call, server.port)) == {"Result": "still here"}


async def test_password_guessing_locks_logins_for_a_while(server, caplog):
    loop = asyncio.get_running_loop()

    def guess(password: str) -> str:
        try:
            ControlClient("127.0.0.1", server.port, password).authenticate()
            return "ok"
        except ControlRpcError as exc:
            return str(exc)

    for n in range(MAX_AUTH_FAILURES):
        assert "Too many" not in await loop.run_in_executor(None, guess, f"guess-{n}")
    assert "Too many wrong passwords" in await loop.run_in_executor(None, guess, "guess-x")
    assert "Too many wrong passwords" in await loop.run_in_executor(None, guess, PASSWORD)   # even the right one
    assert "wrong password" in caplog.text


async def test_lockout_ends_after_the_window():
    from core.clock import FakeClock
    clock = FakeClock()
    service = ControlService(FakeRouter(), ControlConfig(password=PASSWORD), clock=clock)
    for n in range(MAX_AUTH_FAILURES):
        with pytest.raises(RpcError):
            await service.dispatch("Authenticate", {"API": 1, "Password": f"no-{n}"})
    with pytest.raises(RpcError, match="Too many"):
        await service.dispatch("Authenticate", {"API": 1, "Password": PASSWORD})
    clock.advance(61)
    assert "Token" in await service.dispatch("Authenticate", {"API": 1, "Password": PASSWORD})


async def read_reply(reader) -> tuple[int, dict, bytes]:
    """One HTTP response off a raw connection: status, headers (lower-case names) and body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line))
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", 0))), 5)
    return int(lines[0].split()[1]), headers, body


def post_bytes(body: bytes, extra: str = "") -> bytes:
    return (f"POST /jsonrpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


async def test_pipelined_requests_on_one_connection_are_answered_in_order(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    echo = b'{"jsonrpc":"2.0","id":%d,"method":"Echo","params":{"Echo":"x"}}'
    writer.write(post_bytes(echo % 1) + post_bytes(echo % 2) + post_bytes(echo % 3, "Connection: close\r\n"))
    ids = []
    for _ in range(3):
        status, headers, body = await read_reply(reader)
        assert status == 200 and headers["content-type"] == "application/json"
        ids.append(json.loads(body)["id"])
    assert ids == [1, 2, 3] and headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 5) == b""      # closed after the one that asked
    writer.close()


async def test_unreadable_requests_get_a_json_error_and_a_close(server):
    for request in (b"NONSENSE\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                    b"POST / HTTP/1.1\r\n" + b"X-Filler: y\r\n" * 2000 + b"\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request)
        status, _, body = await read_reply(reader)
        assert status == 400 and json.loads(body)["error"]["code"] == INVALID_REQUEST
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert (await asyncio.get_running_loop().run_in_executor(None, good_call, server.port)) == {"Result": "still here"}


async def test_expect_100_continue_is_answered_before_the_body(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    body = b'{"jsonrpc":"2.0","id":7,"method":"Echo","params":{"Echo":"' + b"y" * 2000 + b'"}}'
    request = post_bytes(body, "Expect: 100-continue\r\n")
    writer.write(request[:-len(body)])                   # the head only, as curl sends it
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    status, _, answer = await read_reply(reader)
    assert status == 200 and json.loads(answer)["id"] == 7
    writer.close()
