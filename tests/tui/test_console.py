"""The console driven by Textual's pilot against a real node (router and services on loopback)."""
from __future__ import annotations

import asyncio

import pytest
from textual.widgets import DataTable, RichLog, Static

from core.config import load_config
from pyi2p.node import AppSpec, Node
from tui.app import ConsoleApp
from tui.client import ConsoleClient

SPECS = (AppSpec("echo", "tests.node.fake_apps", "EchoService", "Echo"),
         AppSpec("refusing", "tests.node.fake_apps", "RefusingService", "Refusing"))


@pytest.fixture
async def node(tmp_path):
    node = Node(load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": 0}), sections={}, apps=SPECS)
    await node.start()
    yield node
    await node.stop()


async def settle(pilot, predicate, what: str, tries: int = 60) -> None:
    for _ in range(tries):
        await pilot.pause(0.1)
        if predicate():
            return
    raise AssertionError(f"the console never showed {what}")


def text_of(app, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


async def test_overview_shows_the_node(node, tmp_path):
    app = ConsoleApp(ConsoleClient(datadir=tmp_path), refresh_s=0.2)
    router_hash = node.router.control.service._summary({})["RouterHash"]
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, lambda: router_hash in text_of(app, "#overview-text"), "the router hash")
        await settle(pilot, lambda: "refusing" in text_of(app, "#overview-services"), "the services")
        services = text_of(app, "#overview-services")
        assert "echo" in services and "running" in services and "port 4444 is taken" in services
        assert app.connected and app.first_overview_at is not None


async def test_tabs_by_key_and_filter(node, tmp_path):
    app = ConsoleApp(ConsoleClient(datadir=tmp_path), refresh_s=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("s")
        table = app.query_one("#service-list-table", DataTable)
        await settle(pilot, lambda: table.row_count == 2, "two services")
        await pilot.click("#service-list-filter")
        await pilot.press(*"refus")
        await settle(pilot, lambda: table.row_count == 1, "the filtered row")
        assert table.get_row_at(0)[0] == "refusing"
        table.focus()
        await pilot.pause()    # keys typed in the filter box are text; from the table they are commands
        await pilot.press("l")
        log = app.query_one("#log", RichLog)
        await settle(pilot, lambda: app.query_one("#tabs").active == "logs", "the logs tab")
        await settle(pilot, lambda: any("refusing not started" in str(line.text) for line in log.lines),
                     "the log line of the failed service")


async def test_no_node_shows_a_banner_and_recovers(tmp_path):
    app = ConsoleApp(ConsoleClient(datadir=tmp_path), refresh_s=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, lambda: "Not connected" in text_of(app, "#banner"), "the banner")
        assert "no node found" in text_of(app, "#banner")
        node = Node(load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": 0}), sections={}, apps=())
        await node.start()
        try:
            await settle(pilot, lambda: app.connected, "the node once it runs")
        finally:
            await node.stop()
        await settle(pilot, lambda: not app.connected, "the node stopping")
