"""Iterative netDb lookups as a sans-I/O state machine (network-database.md "RouterInfo and LeaseSet Lookup").

The caller asks `next_queries(now)` whom to send a DatabaseLookup, feeds back what arrives
(`on_store`, `on_search_reply`) and calls `tick(now)` for timeouts. Times are monotonic seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable

from core.i2np.messages import MAX_EXCLUDED_PEERS, LookupType

from .kademlia import xor_distance


class LookupState(Enum):
    RUNNING = "running"
    FOUND = "found"                 # a DatabaseStore for the key arrived (exploration: enough replies)
    FAILED = "failed"               # timed out, or nobody left to ask


@dataclass(frozen=True, slots=True)
class LookupSettings:
    """Java's iterative search: a few peers in flight, a few seconds each, a total limit."""

    parallelism: int = 3
    query_timeout_s: float = 5.0
    total_timeout_s: float = 20.0
    max_queries: int = 8
    exploration_replies: int = 2    # an exploration is done after this many search replies


@dataclass
class Lookup:
    """One search for `key`. `candidates` are floodfill hashes; `bad` ones are asked only after the good."""

    key: bytes
    lookup_type: LookupType
    routing_key: bytes
    started: float
    settings: LookupSettings = LookupSettings()
    extra_excluded: tuple[bytes, ...] = ()   # exploration: routers we already know, so the reply names new ones
    state: LookupState = LookupState.RUNNING
    finished_at: float | None = None
    found_from: bytes | None = None
    discovered: list[bytes] = field(default_factory=list)   # peer hashes named in search replies, first seen order
    in_flight: dict[bytes, float] = field(default_factory=dict)
    sent_at: dict[bytes, float] = field(default_factory=dict)   # every peer asked, kept for late replies
    replied: set[bytes] = field(default_factory=set)
    timed_out: set[bytes] = field(default_factory=set)
    awaiting: set[bytes] = field(default_factory=set)   # referrals whose RouterInfo the caller is fetching
    preferred: set[bytes] = field(default_factory=set)  # asked before closer peers (e.g. who named the key)
    _candidates: dict[bytes, bool] = field(default_factory=dict)   # not yet asked: hash -> bad

    @property
    def is_exploration(self) -> bool:
        return self.lookup_type == LookupType.EXPLORATION

    @property
    def done(self) -> bool:
        return self.state != LookupState.RUNNING

    def add_candidates(self, peers: Iterable[bytes], bad: Iterable[bytes] = ()) -> None:
        """Peers that may be asked (known floodfills); ones already asked are ignored."""
        bad_set = set(bad)
        for peer in peers:
            self.awaiting.discard(peer)
            if peer not in self.sent_at and peer != self.key:
                self._candidates[peer] = peer in bad_set

    def drop_referral(self, peer: bytes) -> None:
        """The caller could not get a referral's RouterInfo."""
        self.awaiting.discard(peer)

    def excluded_peers(self) -> tuple[bytes, ...]:
        """The DatabaseLookup "don't include" list: peers asked so far, then the extra ones, within the limit."""
        peers = list(dict.fromkeys((*self.sent_at, *self.extra_excluded)))
        return tuple(peers[:MAX_EXCLUDED_PEERS])

    def next_queries(self, now: float) -> list[bytes]:
        """Peers to send the lookup to now; they count as in flight from `now`."""
        self._check_deadline(now)
        if self.done:
            return []
        chosen = []
        while (self._candidates and len(self.in_flight) < self.settings.parallelism
               and len(self.sent_at) < self.settings.max_queries):
            peer = min(self._candidates, key=lambda p: (self._candidates[p], p not in self.preferred,
                                                        xor_distance(p, self.routing_key)))
            del self._candidates[peer]
            self.in_flight[peer] = now
            self.sent_at[peer] = now
            chosen.append(peer)
        self._check_exhausted(now)
        return chosen

    def tick(self, now: float) -> list[bytes]:
        """Peers whose query just timed out (each reported once); they stop counting as in flight."""
        expired = [p for p, t in self.in_flight.items() if now - t >= self.settings.query_timeout_s]
        for peer in expired:
            del self.in_flight[peer]
            self.timed_out.add(peer)
        self._check_deadline(now)
        if not self.done:
            self._check_exhausted(now)
        return expired

    def on_send_failed(self, peer: bytes, now: float) -> None:
        """The query could not even be sent (no address, transport limits): free its slot."""
        if self.in_flight.pop(peer, None) is not None:
            self.timed_out.add(peer)
            if not self.done:
                self._check_exhausted(now)

    def latency(self, peer: bytes, now: float) -> float | None:
        """Seconds since `peer` was asked, or None if it never was."""
        sent = self.sent_at.get(peer)
        return None if sent is None else now - sent

    def on_store(self, now: float, peer: bytes | None = None) -> None:
        """A valid DatabaseStore for the key arrived (from `peer` when known)."""
        if self.done or self.is_exploration:
            return
        if peer is not None:
            self._mark_replied(peer)
        self.found_from = peer
        self._finish(LookupState.FOUND, now)

    def on_search_reply(self, now: float, from_peer: bytes, peer_hashes: Iterable[bytes]) -> list[bytes]:
        """A DatabaseSearchReply from `from_peer`; returns the referrals not seen before.

        Replies from peers we did not ask are ignored (the `from` field is unauthenticated).
        The caller adds referrals it knows with add_candidates, and fetches the others, marking
        them with await_referral.
        """
        if from_peer not in self.sent_at or from_peer in self.replied:
            return []
        self._mark_replied(from_peer)
        new = []
        for peer in peer_hashes:
            if peer in self.sent_at or peer in self._candidates or peer in self.discovered or peer == self.key:
                continue
            self.discovered.append(peer)
            new.append(peer)
        if self.is_exploration and len(self.replied) >= self.settings.exploration_replies:
            self._finish(LookupState.FOUND, now)
        return new

    def await_referral(self, peer: bytes) -> None:
        if not self.done:
            self.awaiting.add(peer)

    def _mark_replied(self, peer: bytes) -> None:
        self.in_flight.pop(peer, None)
        self.replied.add(peer)

    def _check_deadline(self, now: float) -> None:
        if not self.done and now - self.started >= self.settings.total_timeout_s:
            self._finish(LookupState.FOUND if self.is_exploration and self.replied else LookupState.FAILED, now)

    def _check_exhausted(self, now: float) -> None:
        out_of_queries = len(self.sent_at) >= self.settings.max_queries or not self._candidates
        if not self.in_flight and out_of_queries and not (self.awaiting and self._candidates_possible()):
            self._finish(LookupState.FOUND if self.is_exploration and self.replied else LookupState.FAILED, now)

    def _candidates_possible(self) -> bool:
        return len(self.sent_at) < self.settings.max_queries

    def _finish(self, state: LookupState, now: float) -> None:
        self.state = state
        self.finished_at = now
        self.in_flight.clear()
        self._candidates.clear()
        self.awaiting.clear()
