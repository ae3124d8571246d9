"""Every tab of the console driven by Textual's pilot against one real node for the module: a router on
loopback with all its apps (zero-hop tunnels: a lone router delivers locally), reached over I2PControl."""
from __future__ import annotations

import asyncio
import logging
import random

import pytest
import pytest_asyncio
from aiohttp import web
from textual.widgets import DataTable, Input, RichLog, Select, Static, TextArea

from apps.network import InProcessNetwork
from apps.torrent import TorrentService
from apps.torrent.metainfo import create_torrent
from core.config import load_config
from core.data.privatekeys import PrivateKeys
from core.control.client import ControlClient
from core.control.config import read_control_config
from pyi2p.node import Node
from tests.mail.test_cli import mail
from tui.app import ConsoleApp
from tui.client import ConsoleClient
from tui.widgets import FormScreen, TextScreen

pytestmark = pytest.mark.asyncio(loop_scope="module")
ZERO_HOPS = {"inbound.length": 0, "outbound.length": 0}
PAGE = b"hello from the site behind a server tunnel"


class World:
    """The node, a web site it publishes through a server tunnel, and that tunnel's b32."""

    node: Node
    datadir: object
    site_b32: str
    control: ControlClient

    async def call(self, method, params=None):
        return await asyncio.to_thread(self.control.call, method, params)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory):
    w = World()
    w.datadir = tmp_path_factory.mktemp("node")
    (w.datadir / "tunnels.conf").write_text("# none at start\n")
    site_keys = PrivateKeys.generate()          # the site's b32 is known before the node starts: its feed is subscribed
    site_keys.save(w.datadir / "site.dat")
    w.site_b32 = site_keys.destination.b32_address
    feed_dest = PrivateKeys.generate().destination
    (w.datadir / "addressbook").mkdir()
    (w.datadir / "addressbook" / "subscriptions.txt").write_text(f"http://{w.site_b32}/hosts.txt\n")
    sections = {"naming": {"session_options": {k: str(v) for k, v in ZERO_HOPS.items()}},
                "proxy": {"port": 0, "socks_port": 0, "inbound": {"length": 0}, "outbound": {"length": 0}},
                "mail": {"smtp_port": 0, "pop3_port": 0},
                "torrent": {"download_dir": str(w.datadir / "files"), "dht": False, **ZERO_HOPS}}
    w.node = Node(load_config(w.datadir, {"netid": 42, "control_port": 0, "sam_port": 0}), sections=sections)
    await asyncio.wait_for(w.node.start(), 60)
    app = web.Application()
    async def page(request):
        return web.Response(body=PAGE)

    async def feed(request):
        return web.Response(text=f"feedname.i2p={feed_dest.b64}\n")
    app.router.add_get("/", page)
    app.router.add_get("/hosts.txt", feed)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    w.control = ControlClient.from_config(read_control_config(w.datadir))
    await w.call("pyi2p.Tunnels.Add", {"name": "site", "type": "http", "host": "127.0.0.1", "port": str(port),
                                      "keys": "site.dat", **{k: str(v) for k, v in ZERO_HOPS.items()}})
    for _ in range(100):
        [tunnel] = [t for t in await w.call("pyi2p.Tunnels.List") if t["name"] == "site"]
        if tunnel.get("b32") and tunnel["state"] == "running":
            break
        await asyncio.sleep(0.1)
    assert tunnel["b32"] == w.site_b32
    await asyncio.wait_for(w.node.service("proxy").wait_ready(), 30)
    yield w
    await w.node.stop()
    await runner.cleanup()


def console(world) -> ConsoleApp:
    return ConsoleApp(ConsoleClient(datadir=world.datadir), refresh_s=0.3)


async def settle(pilot, predicate, what: str, seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.1)):
        await pilot.pause(0.1)
        if predicate():
            return
    raise AssertionError(f"the console never showed {what}")


def rows(app, selector: str) -> list[list[str]]:
    table = app.query_one(selector, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def text(app, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


async def fill(pilot, app, values: dict[str, str]) -> FormScreen:
    """Fill the open form and press OK; returns the form (still open when the node refused a value)."""
    await settle(pilot, lambda: isinstance(app.screen, FormScreen), "the form")
    form = app.screen
    for key, value in values.items():
        field = form.query_one(f"#field-{key}")
        if isinstance(field, TextArea):
            field.text = value
        else:
            field.value = value
    next(i for i in form.query(Input) if not i.disabled).focus()
    await pilot.press("enter")              # enter in a field sends the form, as OK does
    return form


async def refused(pilot, app, form: FormScreen, words: str) -> None:
    """The node refused the form's values: the reason is shown and the form stays open."""
    error = lambda: str(form.query_one("#form-error", Static).render())
    try:
        await settle(pilot, lambda: words in error(), f"the error {words!r}")
    except AssertionError:
        raise AssertionError(f"the form showed {error()!r}, not {words!r}") from None
    assert app.screen is form


async def select_row(pilot, app, selector: str, first_cell: str) -> None:
    table = app.query_one(selector, DataTable)
    await settle(pilot, lambda: any(r[0] == first_cell for r in rows(app, selector)), f"the row {first_cell}")
    index = next(i for i, r in enumerate(rows(app, selector)) if r[0] == first_cell)
    table.move_cursor(row=index)
    table.focus()
    await pilot.pause()


async def test_every_tab_and_the_palette(world):
    app = console(world)
    async with app.run_test(size=(140, 45)) as pilot:
        for key, tab, shows in (("p", "peers", "#peer-list-table"), ("t", "tunnels", "#tunnel-list-table"),
                                ("n", "netdb", "#destination-list-table"), ("s", "services", "#service-list-table"),
                                ("a", "addressbook", "#ab-list-table"), ("m", "mail", "#queue-list-table"),
                                ("b", "torrents", "#torrent-list-table"), ("c", "settings", "#settings-list-table"),
                                ("l", "logs", "#log"), ("o", "overview", "#overview-text")):
            await pilot.press(key)
            await settle(pilot, lambda: app.query_one("#tabs").active == tab, f"the {tab} tab")
            assert app.query_one(shows).display
        # the log's level filter: INFO lines, then none below WARNING
        for level, text in ((logging.INFO, "an info line"), (logging.WARNING, "a warning line")):
            world.node.log_buffer.emit(logging.makeLogRecord({"name": "test", "levelname": logging.getLevelName(level),
                                                              "levelno": level, "msg": text}))
        await pilot.press("l")
        log = app.query_one("#log", RichLog)
        lines = lambda: [str(line.text) for line in log.lines]
        await settle(pilot, lambda: any("an info line" in line for line in lines()), "the INFO line")
        app.query_one("#log-level", Select).value = "WARNING"
        await settle(pilot, lambda: any("a warning line" in line for line in lines())
                     and not any(" INFO " in line for line in lines()), "only WARNING and above")
        await pilot.press("s")
        await settle(pilot, lambda: len(rows(app, "#service-list-table")) == 5, "the five apps")
        assert {r[0]: r[1] for r in rows(app, "#service-list-table")} == {
            name: "running" for name in ("naming", "tunnels", "proxy", "mail", "torrent")}
        await pilot.press("c")
        await settle(pilot, lambda: any(r[0] == "bandwidth" for r in rows(app, "#settings-list-table")), "settings")
        # the palette finds an action of a tab and runs it there
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"Torrents: add")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, FormScreen), "the add-torrent form")
        assert app.query_one("#tabs").active == "torrents"
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, FormScreen), "the form closing")
        labels = [label for label, _ in app.commands()]
        assert len(labels) == len(set(labels)) and "Show Mail" in labels and "Mail: send a test mail to myself" in labels


async def test_tunnels_add_listen_test_edit_stop_delete(world):
    app = console(world)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("s")
        await select_row(pilot, app, "#i2ptunnel-list-table", "site")
        # a server tunnel is tested by fetching it through our own proxy
        await pilot.click("#tunnel-test")
        await settle(pilot, lambda: "HTTP 200" in text(app, "#test-result"), "the server tunnel's test", 60)
        assert app.query_one("#services-pane").last_test["bytes"] == len(PAGE)
        # bad input: the tunnels.conf parser's reasons, the form stays open
        await pilot.click("#tunnel-add")
        form = await fill(pilot, app, {"name": "bad name!", "type": "client"})
        await refused(pilot, app, form, "letters, digits")
        form = await fill(pilot, app, {"name": "web", "type": "nosuch"})
        await refused(pilot, app, form, "nosuch")
        form = await fill(pilot, app, {"type": "client", "port": "99999", "destination": world.site_b32})
        await refused(pilot, app, form, "99999")
        form = await fill(pilot, app, {"port": "0", "options": "inbound.length"})
        await refused(pilot, app, form, "not 'key = value'")
        await fill(pilot, app, {"options": "inbound.length = 0; outbound.length = 0"})
        await settle(pilot, lambda: not isinstance(app.screen, FormScreen), "the form closing")
        # the client tunnel listens: a TCP connection to it reaches the site
        def listening():
            found = [r for r in rows(app, "#i2ptunnel-list-table") if r[0] == "web"]
            return found and found[0][2] == "running" and found[0][3].startswith("127.0.0.1:")
        await settle(pilot, listening, "the new tunnel listening", 30)
        address = next(r[3] for r in rows(app, "#i2ptunnel-list-table") if r[0] == "web")
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        assert PAGE in await asyncio.wait_for(reader.read(), 30)
        writer.close()
        # a client tunnel's test opens a stream and times the round trip
        await select_row(pilot, app, "#i2ptunnel-list-table", "web")
        await pilot.press("y")
        await settle(pilot, lambda: "round trip" in text(app, "#test-result"), "the stream test", 60)
        # edit: the form starts from the file's options; a refused edit leaves the tunnel as it was
        await pilot.press("e")
        form = await fill(pilot, app, {"type": "bogus"})
        assert form.query_one("#field-destination", Input).value == world.site_b32
        await refused(pilot, app, form, "bogus")
        await fill(pilot, app, {"type": "client", "port": "0", "options": "inbound.length = 0; outbound.length = 0; "
                                                                           "connecttimeout = 20"})
        await settle(pilot, lambda: not isinstance(app.screen, FormScreen), "the edit accepted")
        assert (await world.call("pyi2p.Tunnels.Get", {"name": "web"}))["options"]["connecttimeout"] == "20"
        await pilot.press("h")
        await settle(pilot, lambda: [r[2] for r in rows(app, "#i2ptunnel-list-table") if r[0] == "web"] == ["stopped"],
                     "the tunnel stopped")
        await pilot.press("g")
        await settle(pilot, lambda: [r[2] for r in rows(app, "#i2ptunnel-list-table") if r[0] == "web"] == ["running"],
                     "the tunnel started", 30)
        await pilot.press("x")
        await settle(pilot, lambda: "web" not in [r[0] for r in rows(app, "#i2ptunnel-list-table")], "the deletion")
        assert not (world.datadir / "tunnels.d" / "web.conf").exists()


async def test_proxy_outproxies_and_url_test(world):
    app = console(world)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("s")
        await settle(pilot, lambda: "HTTP 127.0.0.1:" in text(app, "#proxy-text"), "the proxy's addresses")
        await pilot.click("#proxy-outproxies")
        form = await fill(pilot, app, {"outproxy": "not a destination"})
        await refused(pilot, app, form, "outproxy")
        await fill(pilot, app, {"outproxy": "socks://127.0.0.1:9"})
        await settle(pilot, lambda: "socks://127.0.0.1:9" in text(app, "#proxy-text"), "the new outproxy")
        await world.call("pyi2p.Proxy.Outproxy", {"outproxy": []})
        await pilot.click("#proxy-test")
        form = await fill(pilot, app, {"url": "ftp://x"})
        await refused(pilot, app, form, "http://")
        await fill(pilot, app, {"url": f"http://{world.site_b32}/"})
        await settle(pilot, lambda: "HTTP 200" in text(app, "#test-result"), "the fetch through the proxy", 60)


async def test_address_book_add_resolve_edit_copy_delete(world):
    app = console(world)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("a")
        await pilot.click("#ab-add")
        form = await fill(pilot, app, {"name": "site.i2p", "destination": "not-a-destination"})
        await refused(pilot, app, form, "destination")
        form = await fill(pilot, app, {"name": "bad..name.i2p", "destination": world.site_b32})
        await refused(pilot, app, form, "name")
        await fill(pilot, app, {"name": "site.i2p"})
        await select_row(pilot, app, "#ab-list-table", "site.i2p")
        assert rows(app, "#ab-list-table")[0][2] == world.site_b32
        # the name resolves through the proxy: the site answers by name
        answer = await world.call("pyi2p.Proxy.Test", {"url": "http://site.i2p/", "timeout": 60})
        assert answer["status"] == 200 and answer["bytes"] == len(PAGE)
        await pilot.press("y")
        await pilot.pause(0.2)
        assert app.clipboard == world.site_b32
        await pilot.press("e")
        await fill(pilot, app, {"name": "renamed.i2p"})
        await select_row(pilot, app, "#ab-list-table", "renamed.i2p")
        assert [r[0] for r in rows(app, "#ab-list-table")] == ["renamed.i2p"]
        app.query_one("#ab-search", Input).value = "nothing-like-this"
        await settle(pilot, lambda: not rows(app, "#ab-list-table"), "the search")
        app.query_one("#ab-search", Input).value = "renamed"
        await select_row(pilot, app, "#ab-list-table", "renamed.i2p")
        await pilot.press("x")
        await settle(pilot, lambda: not rows(app, "#ab-list-table"), "the deletion")
        assert await world.call("pyi2p.AddressBook.Lookup", {"name": "renamed.i2p"}) is None
        # the subscription (the site's hosts.txt): its state, and "update now" fetches it at once
        await settle(pilot, lambda: [r[0] for r in rows(app, "#sub-list-table")] == [f"http://{world.site_b32}/hosts.txt"],
                     "the subscription")
        assert rows(app, "#sub-list-table")[0][1:3] == ["not fetched yet", "never"]
        await pilot.press("u")
        await settle(pilot, lambda: rows(app, "#sub-list-table")[0][1].startswith("ok: 1 added"), "the update", 60)
        app.query_one("#ab-search", Input).value = "feedname"
        await select_row(pilot, app, "#ab-list-table", "feedname.i2p")


async def test_mail_to_myself_and_the_queue(world):
    code, out, err = await asyncio.to_thread(mail, world.datadir, "adduser", "alice", "--password-stdin", stdin="pw\n")
    assert code == 0, err
    alice = out.strip()
    app = console(world)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("m")
        await settle(pilot, lambda: app.query_one("#mail-user", Select).value == "alice", "alice's account")
        await pilot.click("#mail-test")
        await settle(pilot, lambda: any(r[0] == alice and r[1].startswith("test mail") for r in rows(app, "#inbox-list-table")),
                     "the test mail in the inbox", 30)
        await pilot.press("w")
        form = await fill(pilot, app, {"to": "not an address", "subject": "x", "body": "y"})
        await refused(pilot, app, form, "to:")
        form = await fill(pilot, app, {"to": ""})
        await refused(pilot, app, form, "at least one")
        await fill(pilot, app, {"to": alice, "subject": "hello me", "body": "the body of it\non two lines"})
        await select_row(pilot, app, "#inbox-list-table", alice)
        await settle(pilot, lambda: any(r[1] == "hello me" for r in rows(app, "#inbox-list-table")), "the mail", 30)
        index = next(i for i, r in enumerate(rows(app, "#inbox-list-table")) if r[1] == "hello me")
        app.query_one("#inbox-list-table", DataTable).move_cursor(row=index)
        await pilot.press("v")
        await settle(pilot, lambda: isinstance(app.screen, TextScreen), "the mail opened")
        assert "the body of it\non two lines" in str(app.screen.query_one("#text-body", Static).render())
        await pilot.press("escape")
        # a mail to a destination nobody serves waits in the queue, with its retry state
        far = "bob@" + "b" * 52 + ".b32.i2p"
        await world.call("pyi2p.Mail.Send", {"user": "alice", "to": [far], "subject": "far", "body": "away"})
        await settle(pilot, lambda: any(r[0] == far for r in rows(app, "#queue-list-table")), "the queued mail")
        await pilot.press("u")
        await settle(pilot, lambda: any("retried now" in str(n.message) for n in app._notifications), "the retry")


async def test_torrent_progress_moves(world, tmp_path):
    share = tmp_path / "seed" / "big.bin"
    share.parent.mkdir()
    share.write_bytes(random.Random(7).randbytes(1_500_000))
    seeder = TorrentService({"tracker": True, "download_dir": str(share.parent), "dht": False, **ZERO_HOPS},
                            tmp_path / "seeder", InProcessNetwork(world.node.router.client))
    await seeder.start()
    try:
        meta = create_torrent(share, tracker=seeder.tracker_url, piece_length=65536)
        await seeder.add_torrent(meta)
        (tmp_path / "big.torrent").write_bytes(meta.to_bytes())
        app = console(world)
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.press("b")
            await pilot.press("plus")
            form = await fill(pilot, app, {"source": str(tmp_path / "missing.torrent")})
            await refused(pilot, app, form, "No such file")
            form = await fill(pilot, app, {"source": str(share)})
            await refused(pilot, app, form, "more than the control API carries")
            (tmp_path / "junk.torrent").write_bytes(b"d4:junk")
            form = await fill(pilot, app, {"source": str(tmp_path / "junk.torrent")})
            await refused(pilot, app, form, "not a torrent")
            form = await fill(pilot, app, {"source": "magnet:?xt=nonsense"})
            await refused(pilot, app, form, "magnet")
            form = await fill(pilot, app, {"source": str(tmp_path / "big.torrent"), "download_limit": "fast"})
            await refused(pilot, app, form, "whole number")
            await fill(pilot, app, {"download_limit": "300", "download_dir": str(tmp_path / "got")})
            await select_row(pilot, app, "#torrent-list-table", "big.bin")
            seen: list[float] = []
            def progress():
                value = app.query_one("#torrent-progress").progress
                if not seen or value != seen[-1]:
                    seen.append(value)
                return value >= 1.0
            await settle(pilot, progress, "the download finishing", 90)
            assert any(0 < v < 1 for v in seen), seen          # the bar moved through the middle
            assert "seeding" in rows(app, "#torrent-list-table")[0][2]
            assert (tmp_path / "got" / "big.bin").read_bytes() == share.read_bytes()
            await pilot.press("z")
            await settle(pilot, lambda: "paused" in rows(app, "#torrent-list-table")[0][2]
                         or "stopped" in rows(app, "#torrent-list-table")[0][2], "the pause")
            await pilot.press("g")
            await settle(pilot, lambda: "seeding" in rows(app, "#torrent-list-table")[0][2], "the resume")
            await pilot.press("v")
            await settle(pilot, lambda: isinstance(app.screen, TextScreen), "the details")
            assert "peers connected" in str(app.screen.query_one("#text-body", Static).render())
            await pilot.press("escape")
            await pilot.press("x")
            await settle(pilot, lambda: not rows(app, "#torrent-list-table"), "the removal")
    finally:
        await seeder.stop()


async def test_settings_applied_at_once_or_on_restart(world):
    app = console(world)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("c")
        await select_row(pilot, app, "#settings-list-table", "bandwidth")
        await pilot.press("e")
        form = await fill(pilot, app, {"value": "Z"})
        await refused(pilot, app, form, "not one of K L M N O P X")
        await fill(pilot, app, {"value": "P"})
        await settle(pilot, lambda: ["bandwidth", "P", "at once"] in rows(app, "#settings-list-table"), "the change")
        assert world.node.router.caps().startswith("P")
        assert 'bandwidth = "P"' in (world.datadir / "config.toml").read_text()
        await select_row(pilot, app, "#settings-list-table", "sam_udp_port")
        await pilot.press("e")
        form = await fill(pilot, app, {"value": "70000"})
        await refused(pilot, app, form, "out of range")
        await fill(pilot, app, {"value": "7999"})
        await settle(pilot, lambda: ["sam_udp_port", "7999", "on restart (changed)"] in rows(app, "#settings-list-table"),
                     "the change marked for restart")
        assert "[proxy]" in text(app, "#settings-sections")
