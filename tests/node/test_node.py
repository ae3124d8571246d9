"""The node runs the router and its apps: enabled ones start, a failing one is reported and the rest
run on, control methods land in I2PControl, `pyi2p status` lists the services."""
from __future__ import annotations

import asyncio
import io

from core.config import load_config
from core.control.client import ControlClient, ControlRpcError
from core.control.config import read_control_config
from pyi2p.node import AppSpec, Node
from pyi2p.status import collect_status, format_status

import pytest

SPECS = (
    AppSpec("echo", "tests.node.fake_apps", "EchoService", "Echo"),
    AppSpec("refusing", "tests.node.fake_apps", "RefusingService", "Refusing"),
    AppSpec("crashing", "tests.node.fake_apps", "CrashingService", "Crashing"),
    AppSpec("missing", "tests.node.no_such_module", "Nothing", "Missing"),
    AppSpec("off", "tests.node.fake_apps", "EchoService", "Off"),
)


@pytest.fixture
async def node(tmp_path):
    config = load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": 0})
    node = Node(config, sections={"off": {"enabled": False}, "echo": {"port": 0}}, apps=SPECS)
    await node.start()
    yield node
    await node.stop()


async def test_each_app_has_its_state_and_the_rest_run_on(node):
    states = {s["name"]: (s["state"], s.get("error", "")) for s in node.services_status()}
    assert states["echo"] == ("running", "")
    assert states["refusing"] == ("failed", "port 4444 is taken (tunnels.conf line 3)")
    assert states["crashing"] == ("failed", "RuntimeError: boom")
    assert states["missing"][0] == "failed" and "not available" in states["missing"][1]
    assert states["off"] == ("disabled", "")
    echo = node.service("echo")
    reader, writer = await asyncio.open_connection("127.0.0.1", echo.port)
    writer.write(b"ping\n")
    assert await asyncio.wait_for(reader.readline(), 5) == b"ping\n"
    writer.close()
    assert echo.network is node.network and node.network.api is node.router.client
    listening = dict(node.listening())
    assert listening["echo"] == f"127.0.0.1:{echo.port}"
    assert listening["refusing"].startswith("failed: port 4444")
    assert "I2PControl" in listening


async def test_control_methods_and_status(node, tmp_path):
    client = ControlClient.from_config(read_control_config(tmp_path))
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(None, client.call, "pyi2p.Echo.Shout", {"text": "hi"})
    assert result == {"Text": "HI"}
    with pytest.raises(ControlRpcError, match="text is required"):
        await loop.run_in_executor(None, client.call, "pyi2p.Echo.Shout", {})
    with pytest.raises(ControlRpcError):
        await loop.run_in_executor(None, client.call, "pyi2p.Refusing.Shout", {"text": "x"})
    status = await loop.run_in_executor(None, collect_status, client)
    text = format_status(status)
    assert "echo       running" in text and "refusing   failed    port 4444 is taken" in text


async def test_stop_closes_the_apps(tmp_path):
    config = load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": 0})
    node = Node(config, sections={}, apps=SPECS[:1])
    await node.start()
    port = node.service("echo").port
    await node.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_log_tail_by_sequence_and_level(node, tmp_path):
    import logging
    client = ControlClient.from_config(read_control_config(tmp_path))
    loop = asyncio.get_running_loop()
    first = await loop.run_in_executor(None, client.call, "pyi2p.Logs.Tail", {"Level": "DEBUG"})
    logging.getLogger("tests.node").warning("a warning for the tail")
    logging.getLogger("tests.node").debug("a debug line")
    later = await loop.run_in_executor(None, client.call, "pyi2p.Logs.Tail",
                                       {"Since": first["Next"], "Level": "WARNING"})
    assert [line["Text"] for line in later["Lines"]] == ["tests.node: a warning for the tail"]
    with pytest.raises(ControlRpcError, match="unknown level"):
        await loop.run_in_executor(None, client.call, "pyi2p.Logs.Tail", {"Level": "LOUD"})


async def test_apps_after_naming_start_with_names_already_resolving(tmp_path):
    # a client tunnel resolves its destination's name as it starts: the book must be in place by then
    config = load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": 0})
    node = Node(config, sections={}, apps=(AppSpec("naming", "tests.node.fake_apps", "FakeNaming", "AddressBook"),
                                           AppSpec("tunnels", "tests.node.fake_apps", "ResolverProbe", "Tunnels")))
    await node.start()
    try:
        assert node.service("tunnels").resolver_at_start == node.service("naming").resolve
        assert node.network.resolver == node.service("naming").resolve
    finally:
        await node.stop()


class SlowStart:
    def __init__(self, seconds: float):
        self.seconds, self.cancelled = seconds, False

    async def start(self) -> None:
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_a_stop_while_the_node_starts_cancels_the_start():
    from pyi2p.run import start_unless_stopped
    slow, stop = SlowStart(3600), asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert await asyncio.wait_for(start_unless_stopped(slow, stop), 5) is False
    assert slow.cancelled
    quick = SlowStart(0)
    assert await asyncio.wait_for(start_unless_stopped(quick, asyncio.Event()), 5) is True
    assert not quick.cancelled
