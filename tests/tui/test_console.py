"""The console driven by Textual's pilot against a real node (router and services on loopback)."""
from __future__ import annotations


import pytest
from textual.widgets import DataTable, RichLog, Static

from core.config import load_config
from pyi2p.node import AppSpec, Node
from tui.app import ConsoleApp
from tui.client import ConsoleClient
from tui.widgets import FormScreen

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


async def test_wrong_password_fills_the_screen_and_retries(node, tmp_path):
    app = ConsoleApp(ConsoleClient(datadir=tmp_path, password="not the password"), refresh_s=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, lambda: "refused the password" in text_of(app, "#banner"), "the refusal")
        assert app.screen.has_class("offline") and not app.query_one("#tabs").display
        app.client.password = None                # the right one (from control.json) from now on
        await settle(pilot, lambda: app.connected and app.query_one("#tabs").display, "the node once let in")


async def test_tabs_of_apps_the_node_lacks_answer_with_notifications(node, tmp_path):
    app = ConsoleApp(ConsoleClient(datadir=tmp_path), refresh_s=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        for key in ("m", "b", "a"):
            await pilot.press(key)
            await settle(pilot, lambda: any("No method" in str(n.message) for n in app._notifications),
                         "the refusal as a notification")
            app.clear_notifications()
        await pilot.press("s")      # the services tab still works: no tunnels or proxy app, two fake ones
        await settle(pilot, lambda: "the proxy is not running" in text_of(app, "#proxy-text"), "the services tab")
        assert app.is_running


async def test_node_stopping_under_an_open_form(tmp_path):
    node = Node(load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": 0}), sections={}, apps=SPECS)
    await node.start()
    stopped = False
    try:
        app = ConsoleApp(ConsoleClient(datadir=tmp_path), refresh_s=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("c")
            table = app.query_one("#settings-list-table", DataTable)
            await settle(pilot, lambda: table.row_count > 5, "the settings")
            await pilot.press("e")
            await settle(pilot, lambda: isinstance(app.screen, FormScreen), "the form")
            await node.stop()
            stopped = True
            form = app.screen
            form.query_one("#field-value").focus()
            await pilot.press("enter")
            error = lambda: str(form.query_one("#form-error", Static).render())
            try:
                await settle(pilot, lambda: "no router is listening" in error(), "the failure in the form")
            except AssertionError:
                raise AssertionError(error()) from None
            await pilot.press("escape")
            await settle(pilot, lambda: "Not connected" in text_of(app, "#banner"), "the banner")
            assert app.is_running
    finally:
        if not stopped:
            await node.stop()


class Garbled:
    """A control API that answers with shapes the console does not expect."""

    where = "garbled"

    async def call(self, method, params=None, *, timeout_s=None):
        return {"Summary": None} if method == "pyi2p.Summary" else ["not", "a", "dict"]


async def test_answers_not_understood_are_notifications():
    app = ConsoleApp(Garbled(), refresh_s=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        for key in ("p", "s", "b", "c", "m"):
            await pilot.press(key)
            await settle(pilot, lambda: any("not understood" in str(n.message) for n in app._notifications),
                         f"the notification on {key}")
            app.clear_notifications()
        assert app.is_running
