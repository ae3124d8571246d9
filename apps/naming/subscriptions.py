"""Subscriptions: hosts.txt feeds fetched over I2P on a schedule, applied to the router book.

Conditional GET (If-None-Match / If-Modified-Since from the last answer, naming.md "Outgoing
Subscriptions"), an interval with jitter, a first fetch a few minutes after start, retries with a
doubling backoff, a size cap, and a status per URL. Time comes from an injected clock.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from core.clock import Clock, SystemClock
from core.data.errors import ProtocolError
from core.fsutil import atomic_write_text

from .apply import apply_feed
from .book import AddressBook
from .http import Response, http_get

log = logging.getLogger(__name__)

LIST_FILE = "subscriptions.txt"          # Java's format: one URL a line, '#' comments
STATE_FILE = "subscriptions.json"
# reg.i2p by its b32, the subscription i2pd ships with; no name needs resolving before the first fetch
DEFAULT_SUBSCRIPTIONS = ("http://shx5vqsw7usdaunyzr2qmes2fq37oumybpudrd4jjj4e4vk4uusa.b32.i2p/hosts.txt",)
MAX_SUBSCRIPTIONS = 100

Fetcher = Callable[[str, dict, int], Awaitable[Response]]


@dataclass(slots=True)
class SubscriptionState:
    url: str
    etag: str = ""
    last_modified: str = ""
    last_fetch: float = 0.0             # wall-clock seconds of the last attempt
    last_success: float = 0.0
    next_fetch: float = 0.0
    failures: int = 0
    result: str = "not fetched yet"
    last_feed: dict = field(default_factory=dict)       # FeedResult.to_json() of the last applied feed
    total_added: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def read_list(folder: Path) -> list[str]:
    path = folder / LIST_FILE
    try:
        text = path.read_text("utf-8", errors="replace")
    except FileNotFoundError:
        return list(DEFAULT_SUBSCRIPTIONS)
    urls = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and line not in urls:
            urls.append(line)
    return urls[:MAX_SUBSCRIPTIONS]


def write_list(folder: Path, urls: list[str]) -> None:
    atomic_write_text(folder / LIST_FILE, "# address book subscriptions: one http:// URL a line\n"
                      + "".join(url + "\n" for url in urls))


class Subscriptions:
    def __init__(self, book: AddressBook, urls: Callable[[], list[str]], fetch: Fetcher, *, clock: Clock = SystemClock(),
                 rng: random.Random | None = None, interval: float = 12 * 3600, jitter: float = 3600,
                 first_delay: float = 300, retry_delay: float = 300, max_bytes: int = 10 << 20):
        self.book = book
        self.fetch = fetch
        self.clock = clock
        self.rng = rng or random.Random()
        self.interval, self.jitter, self.first_delay = interval, jitter, first_delay
        self.retry_delay, self.max_bytes = retry_delay, max_bytes
        self.path = book.folder / STATE_FILE
        self.urls = urls
        self.states: dict[str, SubscriptionState] = {}
        self._saved = self._load()
        self.sync()

    def sync(self) -> None:
        """Follow the list (a URL added while running is fetched after first_delay, one removed is dropped)."""
        wanted = self.urls()
        now = self.clock.time()
        for url in wanted:
            if url not in self.states:
                state = self._saved.get(url) or SubscriptionState(url)
                # after a start (or an add) wait first_delay, then fetch what is due
                state.next_fetch = max(state.next_fetch,
                                       now + self.first_delay + self.rng.uniform(0, min(60.0, self.jitter)))
                self.states[url] = state
        for url in set(self.states) - set(wanted):
            del self.states[url]

    def _load(self) -> dict[str, SubscriptionState]:
        try:
            raw = json.loads(self.path.read_text("utf-8"))
            return {item["url"]: SubscriptionState(**item) for item in raw if isinstance(item, dict)}
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("subscriptions: %s unreadable (%s), starting afresh", self.path, exc)
            return {}

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps([s.to_json() for s in self.states.values()], indent=1))

    def status(self) -> list[dict]:
        return [s.to_json() for s in self.states.values()]

    def next_due(self) -> float:
        return min((s.next_fetch for s in self.states.values()), default=float("inf"))

    async def update_due(self) -> list[SubscriptionState]:
        now = self.clock.time()
        done = [await self.update(s.url) for s in list(self.states.values()) if s.next_fetch <= now]
        return done

    async def update(self, url: str, *, force: bool = False) -> SubscriptionState:
        """Fetch one feed now (conditionally unless force) and apply it; the state says what happened."""
        state = self.states.setdefault(url, SubscriptionState(url))
        headers = {}
        if not force:
            if state.etag:
                headers["If-None-Match"] = state.etag
            if state.last_modified:
                headers["If-Modified-Since"] = state.last_modified
        state.last_fetch = self.clock.time()
        try:
            response = await self.fetch(url, headers, self.max_bytes)
            if response.status == 304:
                state.result = "not modified"
            elif response.status == 200:
                text = response.body.decode("utf-8", errors="replace")
                result = await asyncio.to_thread(apply_feed, self.book, text, source=url, now=self.clock.time)
                state.last_feed = result.to_json()
                state.total_added += result.added
                state.etag = response.headers.get("etag", "")
                state.last_modified = response.headers.get("last-modified", "")
                state.result = (f"ok: {result.added} added, {result.changed} changed, {result.removed} removed, "
                                f"{sum(result.skipped.values())} skipped")
            else:
                raise ProtocolError(f"HTTP {response.status} {response.reason}")
        except Exception as exc:     # any failure of one feed costs only that feed's turn
            state.failures += 1
            state.result = f"failed: {type(exc).__name__}: {exc}"[:300]
            delay = min(self.interval, self.retry_delay * 2 ** min(state.failures - 1, 10))
            state.next_fetch = self.clock.time() + delay
            log.info("subscription %s: %s (retry in %.0f s)", url, state.result, delay)
        else:
            state.failures = 0
            state.last_success = self.clock.time()
            state.next_fetch = state.last_success + self.interval + self.rng.uniform(0, self.jitter)
            log.info("subscription %s: %s", url, state.result)
        self.save()
        return state

    async def run(self, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        """Fetch what is due, forever (cancel to stop); wakes at least once a minute."""
        while True:
            self.sync()
            await self.update_due()
            await sleep(max(1.0, min(60.0, self.next_due() - self.clock.time())))


def network_fetcher(session_factory: Callable[[], Awaitable[Any]], timeout: float) -> Fetcher:
    async def fetch(url: str, headers: dict, max_bytes: int) -> Response:
        session = await session_factory()
        return await http_get(session, url, headers, max_body=max_bytes, timeout=timeout)
    return fetch
