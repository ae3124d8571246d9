"""The tabs that manage the node's apps: services (I2PTunnel, proxy), address book, mail, torrents, settings.

Each pane loads what it shows through the app's I2PControl methods (pyi2p.<App>.<Verb>) and acts through
them; the node checks every value (a tunnel through the tunnels.conf parser, a setting through config.toml's
rules), and what it refuses is shown in the form or as a notification.
"""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Select, Static

from .client import ControlRpcError, NotConnected
from .widgets import (Field, FilteredTable, FormScreen, TextScreen, human_age, human_rate, human_size,
                      pick, progress_bar, service_where)

MAX_TORRENT_FILE = 46 << 10          # Base64 of it must fit the control API's 64 KiB request
SLOW_CALL_S = 120.0            # a test or a feed update may take as long as building tunnels does
TUNNEL_FIELDS = (("type", "type: client, ircclient, server, http, irc, udpclient, udpserver, socks, httpproxy"),
                 ("address", "listen address (client tunnels)"), ("port", "port (client: listen; server: target)"),
                 ("host", "target host (server tunnels)"), ("destination", "destination (client tunnels)"),
                 ("destinationport", "destination port"), ("keys", "keys file (or transient)"))


@dataclass(frozen=True, slots=True)
class Act:
    """One action of a tab: its key (shown in the footer), its button, its name in the command palette."""

    key: str
    action: str            # a Textual action string on the pane: "add_tunnel", "tunnel_verb('Stop')"
    button: str
    button_id: str
    palette: str


class Pane(Vertical):
    """One tab's content. `load` (called while the tab is visible) raises NotConnected / ControlRpcError for
    the app to show; `call` is for actions and turns every failure into a notification."""

    ACTS: tuple[Act, ...] = ()
    LIST = ""              # the FilteredTable whose selected row the actions are about
    NOUN = "item"
    DEFAULT_CSS = """
    Pane .actions { height: 1; margin: 0 1; }
    Pane .actions Button { margin-right: 1; }
    Pane .caption { padding: 0 1; color: $text-muted; }
    Pane .result { padding: 0 1; height: auto; }
    """

    def __init_subclass__(cls, **kwargs):
        cls.BINDINGS = [Binding(a.key, a.action, a.button) for a in cls.ACTS]     # before Textual reads them
        super().__init_subclass__(**kwargs)

    @classmethod
    def palette(cls) -> list[tuple[str, str]]:
        return [(a.palette, a.action) for a in cls.ACTS]

    def buttons(self, *ids: str) -> Horizontal:
        """The buttons of these actions (by button id), in a row."""
        acts = {a.button_id: a for a in self.ACTS}
        return Horizontal(*(Button(acts[i].button, id=i, name=acts[i].action, compact=True) for i in ids),
                          classes="actions")

    @on(Button.Pressed, ".actions Button")
    async def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        await self.run_action(event.button.name)

    def _selected(self) -> str | None:
        """The key of the item under the cursor of the tab's list (None, with a warning, when there is none)."""
        key = self.query_one(self.LIST, FilteredTable).selected if self.LIST else None
        if key is None:
            self.app.notify(f"No {self.NOUN} selected", severity="warning")
        return key

    def describe(self, key: str) -> str:
        return key

    async def call_selected(self, method: str, param: str) -> tuple[str, Any] | None:
        """`method` on the selected item: (its key, the answer), or None when nothing is selected or it failed."""
        key = self._selected()
        if key is None:
            return None
        answer = await self.call(method, {param: key})
        return None if answer is None else (key, answer)

    async def row_verb(self, method: str, param: str) -> None:
        """A verb on the selected row's item (start, stop, pause, remove...), then a refresh."""
        done = await self.call_selected(method, param)
        if done is not None:
            self.app.notify(f"{method.rsplit('.', 1)[1]} {self.describe(done[0])}: done")
            self.app.action_refresh()

    async def load(self) -> None:
        raise NotImplementedError

    @property
    def client(self):
        return self.app.client

    async def call(self, method: str, params: dict[str, Any] | None = None, *,
                   timeout_s: float | None = None) -> Any | None:
        try:
            return await self.client.call(method, params, timeout_s=timeout_s)
        except ControlRpcError as exc:
            self.app.notify(f"{method}: {exc}", severity="error", timeout=6)
        except NotConnected as exc:
            self.app.notify(f"Not connected: {exc}", severity="error", timeout=6)
        return None

    async def submit_call(self, method: str, params: dict[str, Any]) -> str | None:
        """For a form: None when the node took it, else the reason, shown in the form."""
        try:
            await self.client.call(method, params)
        except (ControlRpcError, NotConnected) as exc:
            return str(exc)
        self.app.action_refresh()
        return None

    def form(self, title: str, fields: list[Field], submit) -> None:
        self.app.push_screen(FormScreen(title, fields, submit))

    def first_table(self) -> DataTable | None:
        tables = self.query(DataTable)
        return tables.first() if tables else None


# ----- services: the apps, I2PTunnel, the proxies

class ServicesPane(Pane):
    ACTS = (Act("plus", "add_tunnel", "Add", "tunnel-add", "Tunnels: add"),
            Act("e", "edit_tunnel", "Edit", "tunnel-edit", "Tunnels: edit"),
            Act("g", "tunnel_verb('Start')", "Start", "tunnel-start", "Tunnels: start"),
            Act("h", "tunnel_verb('Stop')", "Stop", "tunnel-stop", "Tunnels: stop"),
            Act("x", "tunnel_verb('Remove')", "Delete", "tunnel-delete", "Tunnels: delete"),
            Act("y", "test_tunnel", "Test", "tunnel-test", "Tunnels: test"),
            Act("f5", "outproxies", "Outproxies", "proxy-outproxies", "Proxy: outproxies"),
            Act("f6", "test_proxy", "Test a URL", "proxy-test", "Proxy: test a URL"))
    LIST, NOUN = "#i2ptunnel-list", "tunnel"
    DEFAULT_CSS = """
    ServicesPane #service-list { height: 9; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tunnels: dict[str, dict[str, Any]] = {}
        self.proxy: dict[str, Any] = {}
        self.last_test: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield FilteredTable(("Service", "State", "Listening", "b32 / error"), id="service-list")
        yield Label("I2PTunnel", classes="caption")
        yield self.buttons("tunnel-add", "tunnel-edit", "tunnel-start", "tunnel-stop", "tunnel-delete", "tunnel-test")
        yield FilteredTable(("Tunnel", "Type", "State", "Local", "Remote", "Conns", "In / out"), id="i2ptunnel-list",
                            filter_box=False)
        yield Label("HTTP / SOCKS proxy", classes="caption")
        yield Static("", id="proxy-text", classes="result")
        yield self.buttons("proxy-outproxies", "proxy-test")
        yield Static("", id="test-result", classes="result")

    async def load(self) -> None:
        services = (await self.client.call("pyi2p.Services.List")).get("Services", [])
        self.app.services = services
        self.query_one("#service-list", FilteredTable).set_rows([
            (svc.get("name", "?"), svc.get("state", "?"), service_where(svc),
             svc.get("b32") or svc.get("error") or "") for svc in services])
        running = {svc.get("name") for svc in services if svc.get("state") == "running"}
        tunnels = await self.client.call("pyi2p.Tunnels.List") if "tunnels" in running else []
        self.tunnels = {t["name"]: t for t in tunnels if isinstance(t, dict) and "name" in t}
        self.query_one("#i2ptunnel-list", FilteredTable).set_rows([
            (t["name"], t.get("type", ""), t.get("state", "") + (f": {t['error']}" if t.get("error") else ""),
             t.get("listening") or t.get("target", ""), t.get("destination") or t.get("b32", ""),
             f"{t.get('connections_open', 0)}/{t.get('connections_total', 0)}",
             f"{human_size(t.get('bytes_in', 0))} / {human_size(t.get('bytes_out', 0))}")
            for t in self.tunnels.values()])
        self.proxy = await self.client.call("pyi2p.Proxy.Status") if "proxy" in running else {}
        p = self.proxy
        self.query_one("#proxy-text", Static).update(
            (f"HTTP {p.get('http') or '-'}   SOCKS {p.get('socks') or '-'}   b32 {p.get('b32') or '(opening)'}\n"
             f"outproxies: {', '.join(p.get('outproxy', [])) or 'none'}   requests {p.get('requests', 0)}, "
             f"errors {p.get('errors', 0)}") if p else "the proxy is not running")

    def first_table(self) -> DataTable | None:
        return self.query_one(self.LIST, FilteredTable).table      # where the tab's keys act

    def action_add_tunnel(self) -> None:
        fields = [Field("name", "name (letters, digits, _ . -)")] + [Field(k, label) for k, label in TUNNEL_FIELDS]
        fields.append(Field("options", "more options: key = value; key = value", placeholder="inbound.length = 2"))
        self.form("New tunnel", fields, lambda v: self._save_tunnel("pyi2p.Tunnels.Add", v))

    @work(group="tunnels", exit_on_error=False)
    async def action_edit_tunnel(self) -> None:
        found = await self.call_selected("pyi2p.Tunnels.Get", "name")
        if found is None:
            return
        name, current = found
        options = dict(current.get("options", {}))
        fields = [Field("name", "name", name, locked=True)] + [Field(k, label, options.pop(k, "")) for k, label in
                                                                TUNNEL_FIELDS]
        fields.append(Field("options", "more options: key = value; key = value",
                            "; ".join(f"{k} = {v}" for k, v in sorted(options.items()))))
        self.form(f"Edit tunnel {name} ({current.get('file', '')})", fields,
                  lambda v: self._save_tunnel("pyi2p.Tunnels.Edit", v))

    async def _save_tunnel(self, method: str, values: dict[str, str]) -> str | None:
        params = {k: v for k, v in values.items() if k != "options" and v}
        for part in values.get("options", "").split(";"):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                return f"options: {part.strip()!r} is not 'key = value'"
            params[key.strip()] = value.strip()
        if not params.get("name"):
            return "name: a tunnel needs a name"
        if not params.get("type"):
            return "type: a tunnel needs a type"
        return await self.submit_call(method, params)

    @work(group="tunnels", exit_on_error=False)
    async def action_tunnel_verb(self, verb: str) -> None:
        await self.row_verb(f"pyi2p.Tunnels.{verb}", "name")

    @work(group="tests", exit_on_error=False)
    async def action_test_tunnel(self) -> None:
        name = self._selected()
        if name is None:
            return
        tunnel = self.tunnels.get(name, {})
        kind = tunnel.get("type", "")
        if kind in ("client", "ircclient"):
            self._show_test(f"{name}: opening a stream to {tunnel.get('destination', '?')}…")
            result = await self.call("pyi2p.Tunnels.Test", {"name": name, "timeout": 60}, timeout_s=SLOW_CALL_S)
            if result is not None:
                self._show_test(f"{name}: stream to {result.get('destination')} "
                                + (f"open, round trip {result['ms']} ms" if result.get("ok")
                                   else f"failed after {result.get('ms')} ms: {result.get('error')}"), result)
        elif kind in ("server", "http", "irc") and tunnel.get("b32"):
            await self.test_url(f"http://{tunnel['b32']}/", f"{name} through our proxy")
        elif kind in ("server", "http", "irc"):
            self.app.notify(f"{name}: its destination is not open yet", severity="warning")
        else:
            self.app.notify(f"{name}: a {kind} tunnel has no test; test the proxy with a URL", severity="warning")

    def action_test_proxy(self) -> None:
        async def submit(values: dict[str, str]) -> str | None:
            if not values["url"].lower().startswith("http://"):
                return "url: an http:// address"
            self.run_worker(self.test_url(values["url"], "proxy"), group="tests")
            return None
        self.form("Fetch a URL through the HTTP proxy", [Field("url", "URL", "http://", "http://site.i2p/")], submit)

    async def test_url(self, url: str, what: str) -> None:
        self._show_test(f"{what}: fetching {url}…")
        result = await self.call("pyi2p.Proxy.Test", {"url": url, "timeout": 90}, timeout_s=SLOW_CALL_S)
        if result is None:
            return
        if result.get("status"):
            self._show_test(f"{what}: {url} → HTTP {result['status']} {result.get('reason', '')} in {result['ms']} ms, "
                            f"{human_size(result.get('bytes', 0))}", result)
        else:
            self._show_test(f"{what}: {url} failed after {result.get('ms')} ms: {result.get('error')}", result)

    def _show_test(self, text: str, result: dict[str, Any] | None = None) -> None:
        if result is not None:
            self.last_test = result
            self.app.notify(text, severity="information" if result.get("ok") or 200 <= result.get("status", 0) < 400
                            else "warning", timeout=6)
        self.query_one("#test-result", Static).update(text)

    def action_outproxies(self) -> None:
        current = ", ".join(self.proxy.get("outproxy", []))
        self.form("Outproxies (used for addresses outside I2P; applied at once)",
                  [Field("outproxy", "destinations or socks://host:port, comma separated", current)],
                  lambda v: self.submit_call("pyi2p.Proxy.Outproxy", {"outproxy": [
                      e.strip() for e in v["outproxy"].split(",") if e.strip()]}))


# ----- address book

class AddressBookPane(Pane):
    ACTS = (Act("plus", "add_name", "Add", "ab-add", "Address book: add"),
            Act("e", "edit_name", "Edit", "ab-edit", "Address book: edit"),
            Act("x", "delete_name", "Delete", "ab-delete", "Address book: delete"),
            Act("y", "copy_b32", "Copy b32", "ab-copy", "Address book: copy b32"),
            Act("u", "update_now", "Update now", "ab-update", "Address book: update subscriptions now"))
    DEFAULT_CSS = """
    AddressBookPane #ab-search { height: 3; }
    AddressBookPane #sub-list { height: 8; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.entries: dict[str, dict[str, Any]] = {}
        self.total = 0

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search names", id="ab-search")
        yield self.buttons("ab-add", "ab-edit", "ab-delete", "ab-copy")
        yield FilteredTable(("Name", "Book", "b32", "Source"), id="ab-list", filter_box=False)
        yield Static("", id="ab-count", classes="caption")
        yield Label("Subscriptions", classes="caption")
        yield self.buttons("ab-update")
        yield FilteredTable(("Feed", "Result", "Last success", "Failures", "Names added"), id="sub-list",
                            filter_box=False)

    async def load(self) -> None:
        search = self.query_one("#ab-search", Input).value.strip()
        answer = await self.client.call("pyi2p.AddressBook.List", {"search": search, "limit": 500})
        self.total = int(answer.get("total", 0))
        entries = answer.get("entries", [])
        self.entries = {f"{e['book']}/{e['name']}": e for e in entries}
        self.query_one("#ab-list", FilteredTable).set_rows(
            [(e["name"], e["book"], e.get("b32", ""), e.get("source", "")) for e in entries], list(self.entries))
        self.query_one("#ab-count", Static).update(f"{len(entries)} of {self.total} names shown")
        subs = await self.client.call("pyi2p.AddressBook.Subscriptions")
        now = self.app.now()
        self.query_one("#sub-list", FilteredTable).set_rows([
            (s["url"], s.get("result", ""),
             f"{human_age((now - s['last_success']) * 1000)} ago" if s.get("last_success") else "never",
             s.get("failures", 0), s.get("total_added", 0)) for s in subs])

    @on(Input.Changed, "#ab-search")
    def _search(self) -> None:
        self.app.action_refresh()

    def _selected(self) -> dict[str, Any] | None:
        key = self.query_one("#ab-list", FilteredTable).selected
        entry = self.entries.get(key) if key else None
        if entry is None:
            self.app.notify("No name selected", severity="warning")
        return entry

    def action_add_name(self) -> None:
        self.form("New name", [Field("name", "name", placeholder="site.i2p"),
                               Field("destination", "destination: Base64 or b32"),
                               Field("book", "book: local or private", "local")], self._save)

    def action_edit_name(self) -> None:
        entry = self._selected()
        if entry is None:
            return
        old = entry["name"], entry["book"]
        self.form(f"Edit {entry['name']}", [Field("name", "name", entry["name"]),
                                            Field("destination", "destination: Base64 or b32",
                                                  entry.get("destination") or entry.get("b32", "")),
                                            Field("book", "book: local or private", entry["book"])],
                  lambda values: self._save(values, old))

    async def _save(self, values: dict[str, str], old: tuple[str, str] | None = None) -> str | None:
        if not values["name"] or not values["destination"]:
            return "name and destination are both needed"
        error = await self.submit_call("pyi2p.AddressBook.Add", pick(values, "name", "destination", "book"))
        if error is None and old is not None and old != (values["name"].lower(), values["book"] or "local"):
            await self.call("pyi2p.AddressBook.Remove", {"name": old[0], "book": old[1]})
        return error

    @work(group="addressbook", exit_on_error=False)
    async def action_delete_name(self) -> None:
        entry = self._selected()
        if entry is not None and await self.call("pyi2p.AddressBook.Remove",
                                                 {"name": entry["name"], "book": entry["book"]}) is not None:
            self.app.notify(f"{entry['name']} removed")
            self.app.action_refresh()

    def action_copy_b32(self) -> None:
        entry = self._selected()
        if entry is not None and entry.get("b32"):
            self.app.copy_to_clipboard(entry["b32"])
            self.app.notify(f"copied {entry['b32']}")

    @work(group="addressbook-update", exclusive=True, exit_on_error=False)
    async def action_update_now(self) -> None:
        self.app.notify("updating the subscriptions…")
        results = await self.call("pyi2p.AddressBook.Update", {"force": True}, timeout_s=SLOW_CALL_S)
        if results is not None:
            self.app.notify("; ".join(f"{r['url']}: {r.get('result', '')}" for r in results) or "no subscriptions",
                            timeout=8)
            self.app.action_refresh()


# ----- mail

class MailPane(Pane):
    ACTS = (Act("w", "compose", "Compose", "mail-compose", "Mail: compose"),
            Act("v", "read_mail", "Read", "mail-read", "Mail: read"),
            Act("y", "test_mail", "Test mail to myself", "mail-test", "Mail: send a test mail to myself"),
            Act("u", "retry_queue", "Retry queue now", "mail-retry", "Mail: retry the queue now"))
    DEFAULT_CSS = """
    MailPane #mail-bar { height: 3; }
    MailPane #mail-user { width: 76; }
    MailPane #queue-list { height: 8; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.addresses: list[str] = []
        self.inbox: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        with Horizontal(id="mail-bar"):
            yield Select([], prompt="account", id="mail-user")
            yield Static("", id="mail-note", classes="result")
        yield self.buttons("mail-compose", "mail-read", "mail-test", "mail-retry")
        yield Label("Inbox", classes="caption")
        yield FilteredTable(("From", "Subject", "Date", "Size"), id="inbox-list")
        yield Label("Queue (outgoing, retried with back-off)", classes="caption")
        yield FilteredTable(("To", "Attempts", "Next try", "Last error"), id="queue-list", filter_box=False)

    @property
    def user(self) -> str | None:
        value = self.query_one("#mail-user", Select).value
        return value if isinstance(value, str) else None

    async def load(self) -> None:
        answer = await self.client.call("pyi2p.Mail.Address")
        addresses = list(answer.get("addresses", []))
        select = self.query_one("#mail-user", Select)
        if addresses != self.addresses:
            self.addresses = addresses
            select.set_options([(a, a.partition("@")[0]) for a in addresses])
            if addresses and self.user is None:
                select.value = addresses[0].partition("@")[0]
        self.query_one("#mail-note", Static).update(
            "" if addresses else "no account yet: add one with `pyi2p mail adduser NAME`")
        now = self.app.now()
        queue = await self.client.call("pyi2p.Mail.Queue")
        self.query_one("#queue-list", FilteredTable).set_rows([
            (", ".join(q.get("recipients", [])), q.get("attempts", 0),
             "now" if q.get("next_try", 0) <= now else f"in {human_age((q['next_try'] - now) * 1000)}",
             q.get("last_error", "")) for q in queue], [q["id"] for q in queue])
        if self.user is None:
            self.query_one("#inbox-list", FilteredTable).set_rows([])
            return
        self.inbox = list(reversed(await self.client.call("pyi2p.Mail.Inbox", {"user": self.user})))
        self.query_one("#inbox-list", FilteredTable).set_rows([
            (m.get("from", ""), m.get("subject", ""), m.get("date", ""), human_size(m.get("size", 0)))
            for m in self.inbox], [m["id"] for m in self.inbox])

    @on(Select.Changed, "#mail-user")
    def _user_changed(self) -> None:
        self.app.action_refresh()

    def _need_user(self) -> str | None:
        if self.user is None:
            self.app.notify("No mail account: add one with `pyi2p mail adduser NAME`", severity="warning")
        return self.user

    def action_compose(self) -> None:
        user = self._need_user()
        if user is None:
            return
        self.form(f"New mail from {user}", [Field("to", "to (comma separated)", placeholder="bob@mail.i2p"),
                                             Field("subject", "subject"), Field("body", "text", lines=6)],
                  lambda v: self._send(user, v))

    async def _send(self, user: str, values: dict[str, str]) -> str | None:
        to = [a.strip() for a in values["to"].split(",") if a.strip()]
        if not to:
            return "to: at least one address"
        return await self.submit_call("pyi2p.Mail.Send", {"user": user, "to": to, "subject": values["subject"],
                                                          "body": values["body"]})

    @work(group="mail", exit_on_error=False)
    async def action_test_mail(self) -> None:
        user = self._need_user()
        if user is None:
            return
        me = next((a for a in self.addresses if a.partition("@")[0] == user), None)
        stamp = time.strftime("%H:%M:%S", time.localtime(self.app.now()))
        if me and await self.call("pyi2p.Mail.Send", {"user": user, "to": [me], "subject": f"test mail {stamp}",
                                                      "body": "A test mail from the pyi2p console."}) is not None:
            self.app.notify(f"test mail sent to {me}")
            self.app.action_refresh()

    @on(DataTable.RowSelected, "#inbox-list-table")
    @work(group="mail", exit_on_error=False)
    async def action_read_mail(self) -> None:
        user, key = self._need_user(), self.query_one("#inbox-list", FilteredTable).selected
        if user is None or key is None:
            return
        answer = await self.call("pyi2p.Mail.Read", {"user": user, "id": key})
        if answer is not None:
            self.app.push_screen(TextScreen(f"Mail {key}", answer.get("message", "")))

    @work(group="mail", exit_on_error=False)
    async def action_retry_queue(self) -> None:
        queue = await self.call("pyi2p.Mail.Queue", {"flush": True})
        if queue is not None:
            self.app.notify(f"{len(queue)} queued messages retried now")


# ----- torrents

class TorrentsPane(Pane):
    ACTS = (Act("plus", "add_torrent", "Add", "torrent-add", "Torrents: add"),
            Act("z", "torrent_verb('Pause')", "Pause", "torrent-pause", "Torrents: pause"),
            Act("g", "torrent_verb('Resume')", "Resume", "torrent-resume", "Torrents: resume"),
            Act("x", "torrent_verb('Remove')", "Remove", "torrent-remove", "Torrents: remove"),
            Act("v", "details", "Details", "torrent-details", "Torrents: details"))
    LIST, NOUN = "#torrent-list", "torrent"
    DEFAULT_CSS = """
    TorrentsPane #torrent-details { height: auto; max-height: 12; padding: 0 1; }
    TorrentsPane ProgressBar { margin: 0 1; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.torrents: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield self.buttons("torrent-add", "torrent-pause", "torrent-resume", "torrent-remove", "torrent-details")
        yield FilteredTable(("Name", "Progress", "State", "Down", "Up", "ETA", "Peers", "Size"), id="torrent-list")
        yield ProgressBar(total=1.0, show_eta=False, id="torrent-progress")
        yield Static("", id="torrent-details")

    async def load(self) -> None:
        answer = await self.client.call("pyi2p.Torrent.List")
        torrents = answer.get("torrents", [])
        self.torrents = {t["info_hash"]: t for t in torrents}
        self.query_one("#torrent-list", FilteredTable).set_rows([
            (t.get("name") or t["info_hash"][:16], progress_bar(t.get("progress", 0)),
             t.get("state", "") + (f": {t['error']}" if t.get("error") else ""), human_rate(t.get("down_rate", 0)),
             human_rate(t.get("up_rate", 0)), _eta(t.get("eta")), f"{t.get('peers', 0)}/{t.get('known_peers', 0)}",
             human_size(t.get("size", 0))) for t in torrents], list(self.torrents))
        self._show_selected()

    def _show_selected(self) -> None:
        key = self.query_one("#torrent-list", FilteredTable).selected
        t = self.torrents.get(key) if key else None
        self.query_one("#torrent-progress", ProgressBar).update(progress=float(t.get("progress", 0)) if t else 0)
        self.query_one("#torrent-details", Static).update(_torrent_text(t) if t else "no torrent")

    @on(DataTable.RowHighlighted, "#torrent-list-table")
    def _highlighted(self) -> None:
        self._show_selected()

    def action_add_torrent(self) -> None:
        self.form("Add a torrent", [Field("source", "a .torrent file's path, or a magnet: link"),
                                    Field("download_dir", "download folder (empty: the node's)"),
                                    Field("download_limit", "download limit in KiB/s (empty: none)")], self._add)

    async def _add(self, values: dict[str, str]) -> str | None:
        source = values["source"]
        params: dict[str, Any] = pick(values, "download_dir")
        if values["download_limit"]:
            if not values["download_limit"].isdigit():
                return "download limit: a whole number of KiB/s"
            params["download_limit"] = int(values["download_limit"])
        if source.startswith("magnet:"):
            params["magnet"] = source
        elif source:
            path = Path(source).expanduser()
            try:
                if path.stat().st_size > MAX_TORRENT_FILE:
                    return f"{path}: over {MAX_TORRENT_FILE >> 10} KiB, more than the control API carries"
                params["torrent"] = base64.b64encode(path.read_bytes()).decode()
            except OSError as exc:
                return f"{path}: {exc.strerror or exc}"
        else:
            return "give a .torrent file or a magnet link"
        return await self.submit_call("pyi2p.Torrent.Add", params)

    @work(group="torrents", exit_on_error=False)
    async def action_torrent_verb(self, verb: str) -> None:
        await self.row_verb(f"pyi2p.Torrent.{verb}", "torrent")

    def describe(self, key: str) -> str:
        return self.torrents.get(key, {}).get("name") or key

    @work(group="torrents", exit_on_error=False)
    async def action_details(self) -> None:
        found = await self.call_selected("pyi2p.Torrent.Peers", "torrent")
        if found is None:
            return
        key, peers = found
        lines = [_torrent_text(self.torrents.get(key, {})), "", f"{len(peers.get('peers', []))} peers connected"]
        lines += [f"  {p['peer'][:16]}…  {p.get('client', '')}  {p.get('progress', 0) * 100:.0f}%  "
                  f"down {human_rate(p.get('down_rate', 0))}  up {human_rate(p.get('up_rate', 0))}"
                  for p in peers.get("peers", [])]
        self.app.push_screen(TextScreen(f"Torrent {key}", "\n".join(lines)))


def _eta(seconds: Any) -> str:
    return human_age(float(seconds) * 1000) if seconds else "-"


def _torrent_text(t: dict[str, Any]) -> str:
    trackers = ", ".join(f"{url}: {state}" for url, state in t.get("trackers", {}).items()) or "none"
    return (f"{t.get('name', '?')}  ({t.get('info_hash', '')})\n"
            f"{t.get('state', '')}, {t.get('progress', 0) * 100:.1f}% of {human_size(t.get('size', 0))} in "
            f"{t.get('pieces', 0)} pieces; downloaded {human_size(t.get('downloaded', 0))}, "
            f"uploaded {human_size(t.get('uploaded', 0))}\n"
            f"limits: down {t.get('download_limit', 0) or '-'} KiB/s, up {t.get('upload_limit', 0) or '-'} KiB/s; "
            f"hash failures {t.get('hash_failures', 0)}\ntrackers: {trackers}\nfolder: {t.get('download_dir', '')}")


# ----- settings

class SettingsPane(Pane):
    ACTS = (Act("e", "edit_setting", "Change", "settings-edit", "Settings: change the selected setting"),)
    DEFAULT_CSS = """
    SettingsPane #settings-sections { height: auto; padding: 0 1; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.settings: dict[str, dict[str, Any]] = {}
        self.pending: set[str] = set()        # changed, waiting for a restart

    def compose(self) -> ComposeResult:
        yield Static("", id="settings-file", classes="caption")
        yield self.buttons("settings-edit")
        yield FilteredTable(("Setting", "Value", "Applies"), id="settings-list")
        yield Static("", id="settings-sections", markup=False)

    async def load(self) -> None:
        answer = await self.client.call("pyi2p.Settings.Get")
        self.settings = {s["key"]: s for s in answer.get("settings", [])}
        self.query_one("#settings-file", Static).update(f"{answer.get('file', '')}: the router's settings; "
                                                        "the apps' tables are below (edit the file for them)")
        self.query_one("#settings-list", FilteredTable).set_rows([
            (s["key"], s["value"], "on restart (changed)" if s["key"] in self.pending
             else "at once" if s["applies"] == "now" else "on restart") for s in self.settings.values()])
        sections = answer.get("sections", {})
        self.query_one("#settings-sections", Static).update("\n".join(
            f"[{name}] " + ", ".join(f"{k} = {v}" for k, v in table.items()) for name, table in sections.items()
            if isinstance(table, dict)) or "no app tables in config.toml: every app runs with its defaults",
        )

    @on(DataTable.RowSelected, "#settings-list-table")
    def action_edit_setting(self) -> None:
        key = self.query_one("#settings-list", FilteredTable).selected
        if key is None:
            self.app.notify("No setting selected", severity="warning")
            return
        current = self.settings.get(key, {})
        self.form(f"Change {key}", [Field("value", f"{key} ({'applies at once' if current.get('applies') == 'now' else 'applies on restart'})",
                                          current.get("value", ""))], lambda v: self._set(key, v["value"]))

    async def _set(self, key: str, value: str) -> str | None:
        try:
            answer = await self.client.call("pyi2p.Settings.Set", {"key": key, "value": value})
        except (ControlRpcError, NotConnected) as exc:
            return str(exc)
        if answer.get("applies") == "now":
            self.pending.discard(key)
            self.app.notify(f"{key} = {answer.get('value')}: saved and applied")
        else:
            self.pending.add(key)
            self.app.notify(f"{key} = {answer.get('value')}: saved; applies when the node restarts")
        self.app.action_refresh()
        return None
