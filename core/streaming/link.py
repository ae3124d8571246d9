"""The datagram link streaming runs over, and in-memory links with injectable loss, duplication,
reordering and delay: one on the asyncio loop, one on a simulated clock for sans-I/O runs."""
from __future__ import annotations

import asyncio
import heapq
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

from .manager import PROTOCOL_STREAMING

if TYPE_CHECKING:
    from core.clock import FakeClock
    from core.data.identity import Destination

    from .manager import StreamManager


@dataclass(frozen=True, slots=True)
class Datagram:
    payload: bytes
    sender: bytes | None
    """The sender's destination hash when the lower layer vouches for it, else None."""
    protocol: int = PROTOCOL_STREAMING
    src_port: int = 0
    dst_port: int = 0


ReceiveCallback = Callable[[Datagram], None]


class DatagramLink(Protocol):
    """What streaming needs from the client API: send to a destination, be called on receipt."""

    @property
    def destination(self) -> Destination: ...

    def send(self, payload: bytes, to: Destination | bytes, *, protocol: int = PROTOCOL_STREAMING,
             src_port: int = 0, dst_port: int = 0) -> None: ...

    def set_receiver(self, callback: ReceiveCallback | None) -> None: ...

    # optional: path_failed(to: bytes) -> None, told when a retransmission to `to` timed out


@dataclass(frozen=True, slots=True)
class Impairments:
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    """Share of packets held back by an extra `reorder_delay`."""
    delay: float = 0.0
    jitter: float = 0.0
    reorder_delay: float = 0.05
    bandwidth: float = 0.0
    """Bytes per second per sender (0: unlimited); a queue longer than `queue_delay` tail-drops."""
    queue_delay: float = 1.0


class _Impairer:
    __slots__ = ("impairments", "random", "busy_until", "dropped", "duplicated", "reordered")

    def __init__(self, impairments: Impairments, seed: int):
        self.impairments = impairments
        self.random = random.Random(seed)
        self.busy_until: dict[bytes, float] = {}
        self.dropped = self.duplicated = self.reordered = 0

    def delays(self, sender: bytes, size: int, now: float) -> list[float]:
        """Arrival delays for one packet: [] when lost, two when duplicated."""
        imp, rnd = self.impairments, self.random
        base = 0.0
        if imp.bandwidth:
            start = max(now, self.busy_until.get(sender, now))
            if start - now > imp.queue_delay:
                self.dropped += 1
                return []
            self.busy_until[sender] = start + size / imp.bandwidth
            base = self.busy_until[sender] - now
        if imp.loss and rnd.random() < imp.loss:
            self.dropped += 1
            return []
        copies = 2 if imp.duplicate and rnd.random() < imp.duplicate else 1
        self.duplicated += copies - 1
        out = []
        for _ in range(copies):
            delay = base + imp.delay + (rnd.random() * imp.jitter if imp.jitter else 0.0)
            if imp.reorder and rnd.random() < imp.reorder:
                self.reordered += 1
                delay += imp.reorder_delay
            out.append(delay)
        return out


def _hash_of(to: Destination | bytes) -> bytes:
    return to if isinstance(to, bytes) else to.hash


# ---------------------------------------------------------------- asyncio

class MemoryNetwork:
    """Links between destinations in one process, delivering on the running asyncio loop."""

    def __init__(self, impairments: Impairments = Impairments(), *, seed: int = 0, vouch_sender: bool = False):
        self._impairer = _Impairer(impairments, seed)
        self._links: dict[bytes, MemoryLink] = {}
        self.vouch_sender = vouch_sender
        self.sent = 0
        self._handles: set[asyncio.TimerHandle] = set()

    @property
    def dropped(self) -> int:
        return self._impairer.dropped

    def attach(self, destination: Destination) -> MemoryLink:
        link = MemoryLink(self, destination)
        self._links[destination.hash] = link
        return link

    def detach(self, link: MemoryLink) -> None:
        if self._links.get(link.destination.hash) is link:
            del self._links[link.destination.hash]

    def close(self) -> None:
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()

    def _send(self, source: MemoryLink, datagram: Datagram, to: bytes) -> None:
        self.sent += 1
        loop = asyncio.get_running_loop()
        for delay in self._impairer.delays(source.destination.hash, len(datagram.payload), loop.time()):
            if delay <= 0:
                loop.call_soon(self._deliver, to, datagram)
            else:
                handle = loop.call_later(delay, self._deliver_later, to, datagram)
                self._handles.add(handle)

    def _deliver_later(self, to: bytes, datagram: Datagram) -> None:
        self._handles = {h for h in self._handles if not h.cancelled() and h.when() > asyncio.get_running_loop().time()}
        self._deliver(to, datagram)

    def _deliver(self, to: bytes, datagram: Datagram) -> None:
        link = self._links.get(to)
        if link is not None and link._receiver is not None:
            link._receiver(datagram)


class MemoryLink:
    def __init__(self, network: MemoryNetwork, destination: Destination):
        self._network = network
        self._destination = destination
        self._receiver: ReceiveCallback | None = None

    @property
    def destination(self) -> Destination:
        return self._destination

    def send(self, payload: bytes, to: Destination | bytes, *, protocol: int = PROTOCOL_STREAMING,
             src_port: int = 0, dst_port: int = 0) -> None:
        sender = self._destination.hash if self._network.vouch_sender else None
        self._network._send(self, Datagram(payload, sender, protocol, src_port, dst_port), _hash_of(to))

    def set_receiver(self, callback: ReceiveCallback | None) -> None:
        self._receiver = callback

    def close(self) -> None:
        self._network.detach(self)


# ---------------------------------------------------------------- simulated clock

class SimulatedNetwork:
    """Drives StreamManagers on a FakeClock: every delivery and timer happens at its simulated time."""

    def __init__(self, clock: FakeClock, impairments: Impairments = Impairments(), *, seed: int = 0):
        self.clock = clock
        self._impairer = _Impairer(impairments, seed)
        self._managers: dict[bytes, StreamManager] = {}
        self._queue: list[tuple[float, int, bytes, Datagram]] = []
        self._counter = 0
        self.sent = 0
        self.tap: Callable[[bytes, Datagram], Datagram | None] | None = None
        """Sees every datagram about to arrive; may replace it, or drop it by returning None."""

    @property
    def dropped(self) -> int:
        return self._impairer.dropped

    def add(self, manager: StreamManager) -> None:
        self._managers[manager.destination.hash] = manager

    def inject(self, to: bytes, datagram: Datagram, delay: float = 0.0) -> None:
        self._counter += 1
        heapq.heappush(self._queue, (self.clock.monotonic() + delay, self._counter, to, datagram))

    def flush(self) -> None:
        """Move every manager's outgoing packets onto the wire."""
        now = self.clock.monotonic()
        for source, manager in self._managers.items():
            manager.failed_paths.clear()   # one path only here
            for out in manager.datagrams_to_send():
                self.sent += 1
                datagram = Datagram(out.payload, None, out.protocol, out.src_port, out.dst_port)
                for delay in self._impairer.delays(source, len(out.payload), now):
                    self._counter += 1
                    heapq.heappush(self._queue, (now + delay, self._counter, out.to.hash, datagram))

    def step(self) -> bool:
        """Advance to the next delivery or timer and run it; False when nothing is left."""
        self.flush()
        deadlines = [d for d in (m.next_deadline() for m in self._managers.values()) if d is not None]
        timer = min(deadlines) if deadlines else None
        arrival = self._queue[0][0] if self._queue else None
        if timer is None and arrival is None:
            return False
        now = self.clock.monotonic()
        if arrival is not None and (timer is None or arrival <= timer):
            when, _, to, datagram = heapq.heappop(self._queue)
            if when > now:
                self.clock.advance(when - now)
            if self.tap is not None:
                datagram = self.tap(to, datagram)
            manager = self._managers.get(to)
            if manager is not None and datagram is not None:
                manager.receive(datagram.payload, src_port=datagram.src_port, dst_port=datagram.dst_port,
                                sender=datagram.sender)
        else:
            if timer > now:
                self.clock.advance(timer - now)
            for manager in self._managers.values():
                manager.handle_timers()
        self.flush()
        return True

    def run_until(self, condition: Callable[[], bool], *, timeout: float, max_steps: int = 2_000_000) -> bool:
        """Step until `condition()` holds; False if simulated `timeout` seconds or `max_steps` pass first."""
        end = self.clock.monotonic() + timeout
        for _ in range(max_steps):
            if condition():
                return True
            if self.clock.monotonic() > end or not self.step():
                return condition()
        return condition()

    def run_for(self, seconds: float, max_steps: int = 2_000_000) -> None:
        end = self.clock.monotonic() + seconds
        for _ in range(max_steps):
            deadlines = [d for d in (m.next_deadline() for m in self._managers.values()) if d is not None]
            nxt = min([*deadlines, *(q[0] for q in self._queue[:1])], default=None)
            if nxt is None or nxt > end:
                break
            self.step()
        if self.clock.monotonic() < end:
            self.clock.advance(end - self.clock.monotonic())
