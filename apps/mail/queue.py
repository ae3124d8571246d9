"""Outgoing mail: a persisted queue, one entry per message and destination domain, retried with backoff.

    DATADIR/mail/queue/<id>.msg      the message (written first)
    DATADIR/mail/queue/<id>.json     the envelope and retry state (written second: its presence commits)

Both written atomically, so a kill -9 leaves either no entry or a whole one. A recipient the other side
refuses for good (5xx), or one still undelivered after `max_age` (7 days), is bounced to the sender.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from core.clock import Clock, SystemClock
from core.fsutil import atomic_write, atomic_write_text

from .smtpclient import Reply, SmtpError

log = logging.getLogger(__name__)

QUEUE_DIR = "queue"
RETRY_DELAYS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800)   # then every 8 h
MAX_AGE = 7 * 24 * 3600
MAX_ENTRIES = 10_000
MAX_PARALLEL = 8
STOP_WAIT = 10.0


class QueueFull(Exception):
    pass


@dataclass
class QueueEntry:
    id: str
    sender: str
    domain: str
    recipients: list[str]
    created: float
    next_try: float
    attempts: int = 0
    last_error: str = ""
    failed: list[list[str]] = field(default_factory=list)     # [recipient, reason] refused for good

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> QueueEntry:
        data = json.loads(text)
        return cls(id=str(data["id"]), sender=str(data["sender"]), domain=str(data["domain"]),
                   recipients=[str(r) for r in data["recipients"]], created=float(data["created"]),
                   next_try=float(data["next_try"]), attempts=int(data.get("attempts", 0)),
                   last_error=str(data.get("last_error", "")),
                   failed=[[str(r), str(why)] for r, why in data.get("failed", [])])


Deliver = Callable[[QueueEntry, bytes], Awaitable[dict[str, Reply]]]
Bounce = Callable[[QueueEntry, list[tuple[str, str]], bytes], None]


def retry_delay(attempts: int) -> float:
    return RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1] if attempts else 0


class OutboundQueue:
    def __init__(self, folder: Path, deliver: Deliver, bounce: Bounce, clock: Clock = SystemClock(),
                 rng=os.urandom, max_age: float = MAX_AGE, max_entries: int = MAX_ENTRIES,
                 parallel: int = MAX_PARALLEL):
        self.folder = folder / QUEUE_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self._deliver, self._bounce = deliver, bounce
        self.clock, self._rng = clock, rng
        self.max_age, self.max_entries = max_age, max_entries
        self._parallel = asyncio.Semaphore(parallel)
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self.entries: dict[str, QueueEntry] = {}
        self.stats = {"delivered": 0, "bounced": 0, "retries": 0}
        self._load()

    def _load(self) -> None:
        for path in sorted(self.folder.glob("*.json")):
            try:
                entry = QueueEntry.from_json(path.read_text("utf-8"))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("%s: unreadable queue entry kept aside (%s)", path, exc)
                path.rename(path.with_suffix(".bad"))
                continue
            if not (self.folder / f"{entry.id}.msg").exists():
                log.warning("%s: queue entry without its message, dropped", path)
                path.unlink()
                continue
            self.entries[entry.id] = entry
        for path in self.folder.glob("*.msg"):       # a message whose envelope never made it was never accepted
            if path.stem not in self.entries:
                path.unlink()

    def add(self, sender: str, domain: str, recipients: list[str], data: bytes) -> QueueEntry:
        if len(self.entries) >= self.max_entries:
            raise QueueFull(f"the outgoing queue holds {len(self.entries)} messages")
        now = self.clock.time()
        entry = QueueEntry(f"{int(now)}-{self._rng(8).hex()}", sender, domain.lower(), list(recipients), now, now)
        atomic_write(self.folder / f"{entry.id}.msg", data, 0o600)
        self._save(entry)
        self.entries[entry.id] = entry
        self._wake.set()
        return entry

    def _save(self, entry: QueueEntry) -> None:
        atomic_write_text(self.folder / f"{entry.id}.json", entry.to_json(), 0o600)

    def _remove(self, entry: QueueEntry) -> None:
        self.entries.pop(entry.id, None)
        (self.folder / f"{entry.id}.json").unlink(missing_ok=True)
        (self.folder / f"{entry.id}.msg").unlink(missing_ok=True)

    def message(self, entry_id: str) -> bytes:
        return (self.folder / f"{entry_id}.msg").read_bytes()

    def list(self) -> list[dict]:
        return [asdict(entry) for entry in sorted(self.entries.values(), key=lambda e: e.created)]

    def retry_now(self) -> int:
        """Every waiting entry becomes due (`pyi2p mail queue --flush`)."""
        now = self.clock.time()
        for entry in self.entries.values():
            entry.next_try = min(entry.next_try, now)
        self._wake.set()
        return len(self.entries)

    def next_due(self) -> float | None:
        waiting = [e.next_try for e in self.entries.values() if e.id not in self._in_flight]
        return min(waiting) if waiting else None

    def _start_due(self) -> list[asyncio.Task]:
        now = self.clock.time()
        due = [e for e in self.entries.values() if e.next_try <= now and e.id not in self._in_flight]
        started = []
        for entry in due:
            self._in_flight.add(entry.id)
            task = asyncio.get_running_loop().create_task(self._attempt(entry))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started.append(task)
        return started

    async def run_due(self) -> int:
        """Try every entry that is due now and wait for the outcomes; returns how many were tried."""
        started = self._start_due()
        await asyncio.gather(*started)
        return len(started)

    async def _attempt(self, entry: QueueEntry) -> None:
        try:
            async with self._parallel:
                try:
                    data = self.message(entry.id)
                except OSError as exc:
                    log.warning("queue %s: message unreadable (%s), dropped", entry.id, exc)
                    self._remove(entry)
                    return
                try:
                    outcome = await self._deliver(entry, data)
                except SmtpError as exc:
                    outcome = {r: Reply(exc.code, exc.text) for r in entry.recipients}
                except Exception as exc:        # network errors: try again later
                    text = str(exc) or type(exc).__name__
                    outcome = {r: Reply(451, text) for r in entry.recipients}
                self._settle(entry, data, outcome)
        finally:
            self._in_flight.discard(entry.id)
            self._wake.set()

    def _settle(self, entry: QueueEntry, data: bytes, outcome: dict[str, Reply]) -> None:
        now = self.clock.time()
        waiting = []
        for recipient in entry.recipients:
            reply = outcome.get(recipient, Reply(451, "no answer for this recipient"))
            if reply.ok:
                self.stats["delivered"] += 1
            elif reply.permanent:
                entry.failed.append([recipient, f"{reply.code} {reply.text}"])
            else:
                waiting.append(recipient)
                entry.last_error = f"{reply.code} {reply.text}"
        entry.recipients = waiting
        entry.attempts += 1
        if waiting and now - entry.created >= self.max_age:
            entry.failed.extend([r, f"gave up after {entry.attempts} tries: {entry.last_error}"] for r in waiting)
            entry.recipients = waiting = []
        if waiting:
            entry.next_try = now + retry_delay(entry.attempts)
            self.stats["retries"] += 1
            self._save(entry)
            return
        if entry.failed:
            self.stats["bounced"] += len(entry.failed)
            try:
                self._bounce(entry, [(r, why) for r, why in entry.failed], data)
            except Exception:
                log.exception("queue %s: the bounce could not be delivered", entry.id)
        self._remove(entry)

    async def run(self) -> None:
        """Deliver as entries fall due, until cancelled (attempts under way are cancelled with it)."""
        try:
            while True:
                self._wake.clear()
                self._start_due()
                due = self.next_due()
                wait = 60.0 if due is None else max(0.05, min(60.0, due - self.clock.time()))
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
        finally:
            attempts = list(self._tasks)
            for task in attempts:
                task.cancel()
            if attempts:
                _, pending = await asyncio.wait(attempts, timeout=STOP_WAIT)
                if pending:
                    log.warning("queue: %d delivery attempts did not stop within %.0f s", len(pending), STOP_WAIT)
