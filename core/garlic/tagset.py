"""Session tag sets (ecies.rst "4) Ratchets", "Sample Implementation"): outbound chains and bounded inbound windows."""
from __future__ import annotations

from typing import Any

from . import kdf

MAX_TAG_INDEX = 65535          # ecies.rst "Existing Session Inputs": n never exceeds 65535


class TagSetExhausted(Exception):
    """All 65536 tags of an outbound tag set are used; the session must ratchet or restart."""


class _TagChains:
    """The session tag and symmetric key ratchets of one tag set (DH_INITIALIZE, RATCHET_TAG, RATCHET_KEY)."""

    __slots__ = ("tagset_id", "next_root_key", "_tag_chain", "_tag_constant", "_key_chain")

    def __init__(self, root_key: bytes, k: bytes, tagset_id: int):
        self.tagset_id = tagset_id
        self.next_root_key, tag_chain_key, self._key_chain = kdf.dh_initialize(root_key, k)
        self._tag_chain, self._tag_constant = kdf.session_tag_init(tag_chain_key)

    def _next_tag(self) -> bytes:
        self._tag_chain, tag = kdf.next_session_tag(self._tag_chain, self._tag_constant)
        return tag

    def _next_key(self) -> bytes:
        self._key_chain, key = kdf.next_symmetric_key(self._key_chain)
        return key


class OutboundTagSet(_TagChains):
    """The sender's side: tag, key and message number N for each message, in order."""

    __slots__ = ("next_index", "created")

    def __init__(self, root_key: bytes, k: bytes, tagset_id: int = 0, created: float = 0.0):
        super().__init__(root_key, k, tagset_id)
        self.next_index = 0
        self.created = created

    @property
    def exhausted(self) -> bool:
        return self.next_index > MAX_TAG_INDEX

    def next_tag(self) -> tuple[int, bytes]:
        """(N, tag) without the key: NSR tag sets only need tags."""
        if self.exhausted:
            raise TagSetExhausted(f"tag set {self.tagset_id} is exhausted")
        n = self.next_index
        self.next_index += 1
        return n, self._next_tag()

    def next_entry(self) -> tuple[int, bytes, bytes]:
        """(N, tag, session key) for the next message."""
        n, tag = self.next_tag()
        return n, tag, self._next_key()


class TagIndex:
    """tag -> (inbound tag set, N) for every tag one context is listening for, with a hard cap."""

    __slots__ = ("_entries", "max_tags")

    def __init__(self, max_tags: int):
        self._entries: dict[bytes, tuple[InboundTagSet, int]] = {}
        self.max_tags = max_tags

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, tag: bytes) -> tuple[InboundTagSet, int] | None:
        return self._entries.get(tag)

    def add(self, tag: bytes, tagset: InboundTagSet, n: int) -> bool:
        if len(self._entries) >= self.max_tags:
            return False
        self._entries.setdefault(tag, (tagset, n))  # a 64-bit collision keeps the older entry
        return True

    def remove(self, tag: bytes, tagset: InboundTagSet) -> None:
        entry = self._entries.get(tag)
        if entry is not None and entry[0] is tagset:
            del self._entries[tag]


class InboundTagSet(_TagChains):
    """The receiver's side: a look-ahead window of tags registered in a TagIndex, keys derived on demand.

    Window per ecies.rst "Parameters": after receiving N, tags run to N + min(max, min + N/4) and
    tags below N - min(max, min + N/4)/2 are dropped with their keys. Keys of skipped messages are kept
    while their tags are, so lost and reordered messages within the window still decrypt.
    """

    __slots__ = ("index", "owner", "purpose", "min_window", "max_window", "created", "expires_at",
                 "_tags", "_keys", "_key_next", "_generated", "_low", "_spare_tag", "_last_allowed", "highest_received")

    def __init__(self, root_key: bytes, k: bytes, *, tagset_id: int, index: TagIndex, owner: Any, purpose: Any,
                 min_window: int, max_window: int, created: float, expires_at: float | None = None):
        super().__init__(root_key, k, tagset_id)
        self.index = index
        self.owner = owner
        self.purpose = purpose
        self.min_window = min_window
        self.max_window = max_window
        self.created = created
        self.expires_at = expires_at
        self._tags: dict[int, bytes] = {}
        self._keys: dict[int, bytes] = {}
        self._key_next = 0
        self._generated = 0
        self._low = 0
        self._spare_tag: bytes | None = None
        self._last_allowed = MAX_TAG_INDEX
        self.highest_received = -1
        self._extend_to(min_window - 1)

    @property
    def tag_count(self) -> int:
        return len(self._tags)

    def _extend_to(self, last: int) -> None:
        last = min(last, self._last_allowed)
        while self._generated <= last:
            tag = self._spare_tag or self._next_tag()
            self._spare_tag = None
            if not self.index.add(tag, self, self._generated):
                self._spare_tag = tag  # the context is at its tag cap: keep the chain in step, retry later
                return
            self._tags[self._generated] = tag
            self._generated += 1

    def key_for(self, n: int) -> bytes | None:
        """The session key for message N, or None when N's tag is gone (received, trimmed or never made)."""
        if n not in self._tags:
            return None
        while self._key_next <= n:
            key = self._next_key()
            if self._key_next in self._tags:
                self._keys[self._key_next] = key
            self._key_next += 1
        return self._keys.get(n)

    def consume(self, n: int) -> None:
        """Message N decrypted: forget its tag and key, slide the window."""
        tag = self._tags.pop(n, None)
        if tag is not None:
            self.index.remove(tag, self)
        self._keys.pop(n, None)
        if n > self.highest_received:
            self.highest_received = n
        look_ahead = min(self.max_window, self.min_window + self.highest_received // 4)
        self._extend_to(self.highest_received + look_ahead)
        self.trim_below(self.highest_received - look_ahead // 2)

    def trim_below(self, n: int) -> None:
        """Drop tags and keys with an index below n."""
        while self._low < n:
            tag = self._tags.pop(self._low, None)
            if tag is not None:
                self.index.remove(tag, self)
            self._keys.pop(self._low, None)
            self._low += 1

    def trim_above(self, n: int) -> None:
        """Drop unreceived tags above n (a Message Number block says nothing later was sent)."""
        for i in [i for i in self._tags if i > n]:
            self.index.remove(self._tags.pop(i), self)
            self._keys.pop(i, None)
        self._last_allowed = min(self._last_allowed, n)

    def discard(self) -> None:
        for tag in self._tags.values():
            self.index.remove(tag, self)
        self._tags.clear()
        self._keys.clear()
