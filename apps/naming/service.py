"""The naming service: the address book, its subscriptions and (optionally) its published feed.

    naming = NamingService(config["naming"], datadir, network)
    network.resolver = naming.book.lookup           # or naming.resolve: b32 aliases too (async)
    sam_bridge = SamBridge(backend, address_book=naming.book.lookup)   # SAM NAMING LOOKUP
"""
from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path
from typing import Any, Mapping

from apps.network import IncomingStream, NetworkError
from apps.service import ServiceError
from core.clock import Clock, SystemClock
from core.data.errors import ProtocolError
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys

from .book import BOOKS, AddressBook
from .http import serve_http_stream
from .names import NamingError
from .publisher import Publisher
from .subscriptions import Subscriptions, network_fetcher, read_list

log = logging.getLogger(__name__)

FOLDER = "addressbook"
PUBLISH_KEYS = "publish.keys"
MAX_PAGE = 1000
DEFAULTS: dict[str, Any] = {
    "subscribe": True,
    "subscriptions": [],            # more URLs besides addressbook/subscriptions.txt
    "update_interval": 12 * 3600,   # seconds between fetches of one feed
    "update_jitter": 3600,          # seconds added at random to each interval
    "first_update_delay": 300,      # seconds after start before the first fetch
    "retry_delay": 300,             # first retry after a failure; doubles up to update_interval
    "max_feed_bytes": 10 << 20,
    "fetch_timeout": 300,
    "publish": False,               # serve hosts.txt, newhosts.txt and /jump/ from our own destination
    "publish_port": 80,
    "publish_books": ["local", "router"],
    "newhosts_hours": 24,
    "session_options": {},          # I2CP options of the address book's destination
}


def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The [naming] table with defaults; ServiceError naming the key for a bad value."""
    out = dict(DEFAULTS)
    for key, value in config.items():
        if key not in DEFAULTS:
            log.warning("[naming] %s: unknown key, ignored", key)
            continue
        default = DEFAULTS[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        elif isinstance(default, list):
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        else:
            ok = isinstance(value, dict)
        if not ok:
            raise ServiceError(f"[naming] {key} = {value!r}: expected {type(default).__name__}")
        out[key] = value
    if not 0 < out["publish_port"] <= 65535:
        raise ServiceError(f"[naming] publish_port = {out['publish_port']}: must be 1-65535")
    for book in out["publish_books"]:
        if book not in BOOKS:
            raise ServiceError(f"[naming] publish_books: {book!r} is not one of {', '.join(BOOKS)}")
    return out


class NamingService:
    name = "naming"

    def __init__(self, config: Mapping[str, Any], datadir: Path, network, *, clock: Clock = SystemClock(),
                 rng: random.Random | None = None, **deps: Any):
        self.config = check_config(config)
        self.datadir = Path(datadir)
        self.network = network
        self.clock = clock
        self.folder = self.datadir / FOLDER
        self.book = AddressBook(self.folder, now=clock.time)
        self.publisher = Publisher(self.book, self.config["publish_books"], now=clock.time,
                                   newhosts_hours=self.config["newhosts_hours"])
        fetch = network_fetcher(self._session_for_fetch, self.config["fetch_timeout"])
        self.subscriptions = Subscriptions(
            self.book, self._urls, fetch, clock=clock, rng=rng,
            interval=self.config["update_interval"], jitter=self.config["update_jitter"],
            first_delay=self.config["first_update_delay"], retry_delay=self.config["retry_delay"],
            max_bytes=self.config["max_feed_bytes"])
        self._session = None
        self._publish_session = None
        self._session_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._publish_task: asyncio.Task | None = None
        self.publishing = False
        self.state = "stopped"
        self.error = ""

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Returns at once: the book answers lookups now; publishing waits for its tunnels in a task."""
        if self.config["publish"]:
            self._publish_task = asyncio.create_task(self._publish(), name="naming-publish")
            self._tasks.append(self._publish_task)
        self._tasks.append(asyncio.create_task(self.subscriptions.run(), name="naming-subscriptions"))
        self.state = "running"

    async def _publish(self) -> None:
        try:
            session = await self._open_session(publish=True)
            await session.serve(self._on_stream, port=self.config["publish_port"])
            self.publishing = True
            log.info("naming: publishing http://%s/hosts.txt", session.b32)
        except (NetworkError, OSError, ProtocolError) as exc:
            self.error = f"cannot publish: {exc}"
            log.error("naming: %s", self.error)

    async def wait_published(self, timeout: float = 180.0) -> str:
        """The b32 our hosts.txt is served from, once the publishing destination is up."""
        if self._publish_task is None:
            raise ServiceError("naming: [naming] publish is off")
        await asyncio.wait_for(asyncio.shield(self._publish_task), timeout)
        if not self.publishing:
            raise ServiceError(f"naming: {self.error}")
        return self._publish_session.b32

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self.publishing = False
        for session in (self._session, self._publish_session):
            if session is not None:
                await session.close()
        self._session = self._publish_session = None
        self.state = "stopped"

    async def _open_session(self, publish: bool = False):
        """The publishing destination (keys kept in addressbook/publish.keys), or a transient one for
        fetching, so the feeds we read cannot be linked to the book we publish."""
        async with self._session_lock:
            if publish and self._publish_session is None:
                path = self.folder / PUBLISH_KEYS
                if path.exists():
                    keys = PrivateKeys.load(path)
                else:
                    keys = PrivateKeys.generate()
                    keys.save(path)         # 0600
                self._publish_session = await self.network.open_session(
                    keys, dict(self.config["session_options"]), name="addressbook-publish")
            if not publish and self._session is None:
                self._session = await self.network.open_session(None, dict(self.config["session_options"]),
                                                                name="addressbook")
            return self._publish_session if publish else self._session

    def _urls(self) -> list[str]:
        """addressbook/subscriptions.txt and [naming] subscriptions; re-read while running."""
        if not self.config["subscribe"]:
            return []
        return list(dict.fromkeys(read_list(self.folder) + list(self.config["subscriptions"])))

    async def _session_for_fetch(self):
        return await self._open_session()

    async def _on_stream(self, stream: IncomingStream) -> None:
        await serve_http_stream(stream.reader, stream.writer, self.publisher.handle)

    # -- lookups -----------------------------------------------------------------------------
    async def resolve(self, name: str) -> Destination | None:
        """Like book.lookup, and a b32 alias is looked up on the network (then kept as a full entry)."""
        found = self.book.lookup(name)
        if found is not None:
            return found
        entry = self.book.get(name)
        if entry is None or not entry.is_alias:
            return None
        try:
            session = await self._open_session()
            found = await session.resolve(entry.dest)
        except NetworkError as exc:
            log.info("naming: %s (%s) not found: %s", name, entry.dest, exc)
            return None
        self.book.add(entry.name, found, book=entry.book, source=entry.source,
                      properties={k: v for k, v in entry.properties.items() if not k.startswith("@")})
        return found

    # -- face --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "entries": {b: self.book.count(b) for b in BOOKS},
                               "subscriptions": len(self.subscriptions.states), "publish": self.config["publish"]}
        if self.error:
            out["error"] = self.error
        if self.publishing:
            b32 = self._publish_session.b32
            out["b32"] = b32
            out["listen"] = {"hosts.txt": f"http://{b32}/hosts.txt", "jump": f"http://{b32}/jump/"}
            out["requests"] = self.publisher.requests
        return out

    def control_methods(self) -> dict:
        return {"Lookup": self._ctl_lookup, "Add": self._ctl_add, "Remove": self._ctl_remove,
                "List": self._ctl_list, "Subscriptions": self._ctl_subscriptions, "Update": self._ctl_update}

    def _ctl_lookup(self, params: Mapping[str, Any]) -> dict | None:
        entry = self.book.get(_param(params, "name"))
        return entry.to_json() if entry is not None else None

    def _ctl_add(self, params: Mapping[str, Any]) -> dict:
        try:
            self.book.add(_param(params, "name"), _param(params, "destination"), book=params.get("book", "local"),
                          source="control")
        except NamingError as exc:
            raise ValueError(str(exc)) from None
        return self.book.get(_param(params, "name")).to_json()

    def _ctl_remove(self, params: Mapping[str, Any]) -> bool:
        try:
            return self.book.remove(_param(params, "name"), book=params.get("book", "local"))
        except NamingError as exc:
            raise ValueError(str(exc)) from None

    def _ctl_list(self, params: Mapping[str, Any]) -> dict:
        book = params.get("book")
        if book is not None and book not in BOOKS:
            raise ValueError(f"book: {book!r} is not one of {', '.join(BOOKS)}")
        offset, limit = int(params.get("offset", 0)), min(int(params.get("limit", 100)), MAX_PAGE)
        search = str(params.get("search", "")).lower()
        entries = sorted((e for e in self.book.names(book) if search in e.name), key=lambda e: e.name)
        return {"total": len(entries), "offset": offset,
                "entries": [e.to_json() for e in entries[offset:offset + max(0, limit)]]}

    def _ctl_subscriptions(self, params: Mapping[str, Any]) -> list[dict]:
        return self.subscriptions.status()

    async def _ctl_update(self, params: Mapping[str, Any]) -> list[dict]:
        urls = [params["url"]] if params.get("url") else list(self.subscriptions.states)
        return [(await self.subscriptions.update(url, force=bool(params.get("force")))).to_json() for url in urls]


def _param(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: a non-empty string is needed")
    return value
