"""The naming app in a real node: the node's names resolve through the book, its control methods answer
over I2PControl, and `pyi2p naming` changes the books of the running node."""
from __future__ import annotations

import asyncio

from core.config import load_config
from core.control.client import ControlClient
from core.control.config import read_control_config
from pyi2p.cli import main as cli
from pyi2p.node import APPS, Node


async def test_node_resolves_through_the_book_and_offers_the_control_methods(tmp_path, keys, capsys):
    config = load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": 0})
    node = Node(config, sections={"naming": {"subscribe": False}},
                apps=tuple(spec for spec in APPS if spec.name == "naming"))
    await node.start()
    try:
        naming = node.service("naming")
        assert node.network.resolver == naming.resolve
        session = await node.network.open_session(name="browser")
        # added from the command line while the node runs: resolves at the next lookup
        assert cli(["naming", "--datadir", str(tmp_path), "add", "cli.i2p", "--", keys[0].destination.b64]) == 0
        assert await session.resolve("cli.i2p") == keys[0].destination
        client = ControlClient.from_config(read_control_config(tmp_path))
        loop = asyncio.get_running_loop()
        added = await loop.run_in_executor(None, client.call, "pyi2p.AddressBook.Add",
                                           {"name": "rpc.i2p", "destination": keys[1].destination.b64})
        assert added["name"] == "rpc.i2p" and await session.resolve("rpc.i2p") == keys[1].destination
        listed = await loop.run_in_executor(None, client.call, "pyi2p.AddressBook.List", {})
        assert [e["name"] for e in listed["entries"]] == ["cli.i2p", "rpc.i2p"]
        assert await loop.run_in_executor(None, client.call, "pyi2p.AddressBook.Update", {}) == []
        capsys.readouterr()
        assert await asyncio.to_thread(cli, ["naming", "--datadir", str(tmp_path), "update"]) == 0
        assert cli(["naming", "--datadir", str(tmp_path), "lookup", "rpc.i2p"]) == 0
        assert "rpc.i2p" in capsys.readouterr().out
        assert {s["name"]: s["state"] for s in node.services_status()}["naming"] == "running"
    finally:
        await node.stop()
