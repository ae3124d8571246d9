"""`pyi2p tui`: watch and run a node from the terminal, over I2PControl only.

One tab per part (overview, peers, tunnels, netDb, services and each app, logs); the visible tab
refreshes once a second. A node that is not running, or that refuses us, shows as a banner that
retries; a call that fails shows as a notification, never a traceback.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.css.query import NoMatches
from textual.containers import Horizontal, VerticalScroll
from textual.worker import Worker, WorkerState
from textual.widgets import (Button, Footer, Header, Label, Input, RichLog, Select, Sparkline, Static,
                             TabbedContent, TabPane)

from .client import ConsoleClient, ControlRpcError, NotConnected
from .panes import AddressBookPane, MailPane, Pane, ServicesPane, SettingsPane, TorrentsPane
from .widgets import FilteredTable, human_age, human_rate, service_where

REFRESH_S = 1.0
HISTORY = 300                      # bandwidth samples kept for the plot: five minutes at one a second
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

TABS = (("overview", "Overview", "o"), ("peers", "Peers", "p"), ("tunnels", "Tunnels", "t"),
        ("netdb", "NetDb", "n"), ("services", "Services", "s"), ("addressbook", "Address book", "a"),
        ("mail", "Mail", "m"), ("torrents", "Torrents", "b"), ("settings", "Settings", "c"), ("logs", "Logs", "l"))
PANES = {"services": ServicesPane, "addressbook": AddressBookPane, "mail": MailPane, "torrents": TorrentsPane,
         "settings": SettingsPane}


class TabCommands(Provider):
    """The command palette finds every tab and every action of every tab."""

    async def search(self, query: str) -> Hits:
        app = self.app
        assert isinstance(app, ConsoleApp)
        matcher = self.matcher(query)
        for label, callback in app.commands():
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), callback)


class ConsoleApp(App):
    TITLE = "pyi2p"
    COMMANDS = App.COMMANDS | {TabCommands}
    CSS = """
    #banner { background: $error; color: $text; padding: 0 1; display: none; }
    #banner.shown { display: block; height: 1fr; content-align: center middle; text-align: center; text-style: bold; }
    #overview-text { padding: 0 1; }
    Sparkline { height: 4; margin: 0 1; }
    .caption { padding: 0 1; color: $text-muted; }
    #log-controls { height: 3; }
    #log-controls Select { width: 20; }
    .offline #tabs { display: none; }
    """
    # letters work from anywhere but a text box (check_action), including from inside a tab's table
    BINDINGS = [Binding(key, f"show_tab('{tab}')", title, priority=True) for tab, title, key in TABS] + [
        Binding("r", "refresh", "Refresh", priority=True), Binding("q", "quit", "Quit", priority=True)]

    def __init__(self, client: ConsoleClient, *, refresh_s: float = REFRESH_S, clock: bool = True,
                 now: Callable[[], float] = time.time):
        super().__init__()
        self.show_clock = clock
        self.now = now                     # wall clock for ages (fixed in snapshot tests)
        self.client = client
        self.refresh_s = refresh_s
        self.connected = False
        self.summary: dict[str, Any] = {}
        self.services: list[dict[str, Any]] = []
        self.bw_in: deque[float] = deque([0.0], maxlen=HISTORY)
        self.bw_out: deque[float] = deque([0.0], maxlen=HISTORY)
        self.log_next = -1
        self.first_overview_at: float | None = None
        self.refresh_error: str | None = None
        self.started = time.monotonic()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=self.show_clock)
        yield Static("", id="banner")
        with TabbedContent(initial="overview", id="tabs"):
            with TabPane("Overview", id="overview"):
                with VerticalScroll():
                    yield Static("connecting...", id="overview-text")
                    yield Label("inbound, last minutes", classes="caption")
                    yield Sparkline([0], id="bw-in")
                    yield Label("outbound, last minutes", classes="caption")
                    yield Sparkline([0], id="bw-out")
                    yield Static("", id="overview-services")
            with TabPane("Peers", id="peers"):
                yield FilteredTable(("Router", "Transport", "Direction", "Caps", "Address", "Up"), id="peer-list")
            with TabPane("Tunnels", id="tunnels"):
                yield Static("", id="tunnel-summary")
                yield FilteredTable(("Pool", "Direction", "State", "Hops", "Expires in", "Id"), id="tunnel-list")
            with TabPane("NetDb", id="netdb"):
                yield Static("", id="netdb-text")
                yield FilteredTable(("Destination", "Name"), id="destination-list")
            titles = {tab: title for tab, title, _ in TABS}
            for tab, pane in PANES.items():
                with TabPane(titles[tab], id=tab):
                    yield pane(id=f"{tab}-pane")
            with TabPane("Logs", id="logs"):
                with Horizontal(id="log-controls"):
                    yield Select([(level, level) for level in LOG_LEVELS], value="INFO", allow_blank=False,
                                 id="log-level")
                    yield Button("Clear", id="log-clear")
                yield RichLog(id="log", max_lines=5000, wrap=False, markup=False)
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("show_tab", "refresh", "quit") and isinstance(self.focused, Input):
            return False
        return True

    def on_mount(self) -> None:
        self.sub_title = self.client.where
        self.set_interval(self.refresh_s, self.action_refresh)
        self.action_refresh()

    # ----- navigation

    def show_tab(self, tab: str) -> None:
        self.set_focus(None)       # a focused widget inside the old tab would switch back to it
        self.query_one("#tabs", TabbedContent).active = tab
        if tab in PANES:           # its keys (shown in the footer) work from its first table
            table = self.query_one(f"#{tab}-pane", Pane).first_table()
            if table is not None:
                self.set_focus(table)
        self.action_refresh()

    def commands(self) -> list[tuple[str, Callable[[], Any]]]:
        """Every tab and action, by name, for the command palette."""
        found: list[tuple[str, Callable[[], Any]]] = [
            (f"Show {title}", lambda t=tab: self.show_tab(t)) for tab, title, _ in TABS]
        for tab, pane_class in PANES.items():
            for label, action in pane_class.palette():
                found.append((label, lambda t=tab, a=action: self.run_pane_action(t, a)))
        found += [("Refresh now", self.action_refresh), ("Quit", self.exit)]
        return found

    def run_pane_action(self, tab: str, action: str) -> None:
        self.show_tab(tab)
        pane = self.query_one(f"#{tab}-pane", Pane)
        self.run_worker(pane.run_action(action), exit_on_error=False)

    def action_show_tab(self, tab: str) -> None:
        self.show_tab(tab)

    @on(TabbedContent.TabActivated)
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_error = None         # a failure on the new tab is news, even if it reads the same
        self.action_refresh()

    # ----- refreshing

    def action_refresh(self) -> None:
        self.refresh_visible()

    @work(exclusive=True, group="refresh", exit_on_error=False)
    async def refresh_visible(self) -> None:
        try:
            tab = self.query_one("#tabs", TabbedContent).active
            self.summary = await self.client.call("pyi2p.Summary")
            self._record_bandwidth()
            if tab == "overview":
                self.services = await self._services()
                self._show_overview()
            elif tab == "peers":
                self._show_peers((await self.client.call("pyi2p.Peers")).get("Peers", []))
            elif tab == "tunnels":
                self._show_tunnels(await self.client.call("pyi2p.Tunnels"))
            elif tab == "netdb":
                self._show_netdb(await self.client.call("pyi2p.NetDb"),
                                 (await self.client.call("pyi2p.Destinations")).get("Destinations", []))
            elif tab in PANES:
                await self.query_one(f"#{tab}-pane", Pane).load()
            elif tab == "logs":
                await self._show_logs()
        except NotConnected as exc:
            self._set_banner(f"Not connected: {exc}. Retrying every {self.refresh_s:g} s.")
            return
        except ControlRpcError as exc:
            self._refresh_failed(f"The node refused a request: {exc}")
            return
        except NoMatches:
            return                  # the console is closing: its widgets are gone
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._refresh_failed(f"The node's answer was not understood: {type(exc).__name__}: {exc}")
            return
        self.refresh_error = None
        self._set_banner(None)

    def _refresh_failed(self, message: str) -> None:
        """Once per failure, not once a second while it lasts."""
        self._set_banner(None)
        if message != self.refresh_error:
            self.refresh_error = message
            self.notify(message, severity="error", timeout=6)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """An action that failed in a way no one foresaw: a notification, not a traceback."""
        if event.state == WorkerState.ERROR and not isinstance(event.worker.error, NoMatches):
            error = event.worker.error
            self.notify(f"{event.worker.name or 'action'} failed: {type(error).__name__}: {error}", severity="error",
                        timeout=8)

    async def _services(self) -> list[dict[str, Any]]:
        try:
            return (await self.client.call("pyi2p.Services.List")).get("Services", [])
        except ControlRpcError:
            return []               # a router without the node's apps

    def _set_banner(self, text: str | None) -> None:
        banner = self.query_one("#banner", Static)
        self.connected = text is None
        banner.set_class(text is not None, "shown")
        self.screen.set_class(text is not None, "offline")     # no stale figures under a dead connection
        banner.update(text or "")

    def _record_bandwidth(self) -> None:
        bw = self.summary.get("Bandwidth", {})
        self.bw_in.append(float(bw.get("Inbound1s", 0)))
        self.bw_out.append(float(bw.get("Outbound1s", 0)))

    def _show_overview(self) -> None:
        s = self.summary
        bw = s.get("Bandwidth", {})
        ours = s.get("OurTunnels", {})
        peers = s.get("Peers", {})
        text = "\n".join([
            f"[b]Router[/b]      {s.get('RouterHash', '?')}",
            f"[b]Version[/b]     {s.get('Version', '?')}    up {human_age(s.get('Uptime', 0))}",
            f"[b]Status[/b]      {s.get('Status', '?')}; network {s.get('NetStatusName', '?')}"
            + ("; reseeding" if s.get("IsReseeding") else ""),
            f"[b]NetDb[/b]       {s.get('KnownRouters', 0)} routers, {s.get('Floodfills', 0)} floodfills, "
            f"{s.get('LeaseSets', 0)} LeaseSets",
            f"[b]Peers[/b]       {s.get('ActivePeers', 0)} active ("
            + ", ".join(f"{n} {t}" for t, n in peers.items()) + ")",
            f"[b]Tunnels[/b]     {sum(ours.values())} ours, {s.get('ParticipatingTunnels', 0)} transit, "
            f"build success {float(s.get('BuildSuccessRatio', 0)) * 100:.0f}%",
            f"[b]Bandwidth[/b]   in {human_rate(bw.get('Inbound1s', 0))}, out {human_rate(bw.get('Outbound1s', 0))}"
            f"  (15 s: {human_rate(bw.get('Inbound15s', 0))} / {human_rate(bw.get('Outbound15s', 0))})",
        ])
        self.query_one("#overview-text", Static).update(text)
        self.query_one("#bw-in", Sparkline).data = list(self.bw_in)
        self.query_one("#bw-out", Sparkline).data = list(self.bw_out)
        lines = ["", "[b]Services[/b]"] + [
            f"  {svc.get('name', '?'):<10} {svc.get('state', '?'):<9} {service_where(svc)}  "
            f"{svc.get('b32') or svc.get('error') or ''}" for svc in self.services]
        self.query_one("#overview-services", Static).update("\n".join(lines) if self.services else "")
        if self.first_overview_at is None and s.get("RouterHash"):
            self.first_overview_at = time.monotonic() - self.started

    def _show_peers(self, peers: list[dict[str, Any]]) -> None:
        now_ms = self.now() * 1000
        self.query_one("#peer-list", FilteredTable).set_rows([
            (p.get("Hash", "")[:12], p.get("Transport", ""), "in" if p.get("Inbound") else "out", p.get("Caps", ""),
             p.get("Address", ""), human_age(now_ms - float(p.get("Established", now_ms)))) for p in peers])

    def _show_tunnels(self, answer: dict[str, Any]) -> None:
        now_ms = self.now() * 1000
        self.query_one("#tunnel-summary", Static).update(
            f"{len(answer.get('Tunnels', []))} of ours, {answer.get('Participating', 0)} transit, "
            f"build success {float(answer.get('BuildSuccessRatio', 0)) * 100:.0f}%")
        self.query_one("#tunnel-list", FilteredTable).set_rows([
            (t.get("Pool", ""), t.get("Direction", ""), t.get("State", ""),
             " > ".join(h[:6] for h in t.get("Hops", [])) or "(zero hop)",
             human_age(float(t.get("Expires", now_ms)) - now_ms), t.get("TunnelId", "")) for t in answer.get("Tunnels", [])])

    def _show_netdb(self, netdb: dict[str, Any], destinations: list[dict[str, Any]]) -> None:
        self.query_one("#netdb-text", Static).update(
            f"{netdb.get('KnownRouters', 0)} routers, {netdb.get('Floodfills', 0)} floodfills, "
            f"{netdb.get('LeaseSets', 0)} LeaseSets" + ("; reseeding" if netdb.get("IsReseeding") else "")
            + f"\nLocal destinations: {len(destinations)}")
        self.query_one("#destination-list", FilteredTable).set_rows(
            [(d.get("B32", ""), d.get("Name", "")) for d in destinations])

    async def _show_logs(self) -> None:
        level = self.query_one("#log-level", Select).value
        answer = await self.client.call("pyi2p.Logs.Tail", {"Since": self.log_next, "Level": level})
        log = self.query_one("#log", RichLog)
        for line in answer.get("Lines", []):
            stamp = time.strftime("%H:%M:%S", time.localtime(float(line.get("Time", 0))))
            log.write(f"{stamp} {line.get('Level', ''):<7} {line.get('Text', '')}")
        self.log_next = int(answer.get("Next", self.log_next))

    @on(Select.Changed, "#log-level")
    def _level_changed(self, event: Select.Changed) -> None:
        self.query_one("#log", RichLog).clear()
        self.log_next = -1
        self.action_refresh()

    @on(Button.Pressed, "#log-clear")
    def _clear_log(self) -> None:
        self.query_one("#log", RichLog).clear()

