"""A decaying Bloom filter: recently seen keys in fixed memory, sans-I/O (the clock is injected)."""
from __future__ import annotations

import mmap
import sys

from core.clock import Clock

_TWO_BITS = [(1 << (i & 63)) | (1 << (i >> 6)) for i in range(4096)]  # two 6-bit bit numbers -> their mask


class DecayingBloomFilter:
    """Keys seen recently, in fixed memory: tunnel message IVs (tunnel-implementation.md: a decaying Bloom filter,
    as Java and i2pd keep) and used session tags.

    Two generations of `bits_per_key` x `capacity` bits that rotate every `period` seconds, or early once one
    holds `capacity` keys: a key is remembered at least `period` seconds unless a flood fills a generation
    first, in fixed memory. Blocked: a key's 4 bits lie in one 64-bit word, one read per generation; with 64
    bits per key a full generation wrongly calls about one key in 10,000 seen. The bits come from a salted
    hash, so a sender cannot aim them at others' keys.
    """

    __slots__ = ("_clock", "period", "capacity", "_words", "_salt", "_current", "_previous", "_count",
                 "_previous_count", "_rotated_at", "early_rotations")

    def __init__(self, clock: Clock, period: float, capacity: int, salt: bytes, bits_per_key: int = 64):
        self._clock = clock
        self.period = period
        self.capacity = capacity
        self._words = 1 << max(4, (capacity * bits_per_key // 64 - 1).bit_length())
        self._salt = salt
        self._current = _zeroed_words(self._words)
        self._previous = _zeroed_words(self._words)
        self._count = self._previous_count = 0
        self._rotated_at = clock.monotonic()
        self.early_rotations = 0

    def __len__(self) -> int:
        """Keys held (both generations)."""
        return self._count + self._previous_count

    def _rotate(self, now: float) -> None:
        # the old previous generation is cleared and reused: a fresh megabyte array at every rotation left
        # the C heap larger each time (glibc serves a size it has freed once from the heap, not mmap)
        self._previous, self._current = self._current, self._previous
        self._previous_count, self._count = self._count, 0
        _clear(self._current)
        self._rotated_at = now

    def _place(self, h: int, now: float | None) -> tuple[int, int]:
        """(word, bits) of a key's salted hash `h`, after rotating the generations the clock has moved past."""
        if now is None:
            now = self._clock.monotonic()
        if now - self._rotated_at >= self.period:
            stale = now - self._rotated_at >= 2 * self.period
            self._rotate(now)
            if stale:
                _clear(self._previous)
                self._previous_count = 0
        # h is signed (one hash: 64 bits, two summed: 65); & and >> read it as two's complement
        return h & (self._words - 1), _TWO_BITS[h >> 40 & 4095] | _TWO_BITS[h >> 52 & 4095]

    def __contains__(self, key: bytes) -> bool:
        """True if `key` was (probably) added, without adding it."""
        word, bits = self._place(hash(self._salt + key), None)
        return self._current[word] & bits == bits or self._previous[word] & bits == bits

    def add(self, key: bytes) -> None:
        self.seen(key)

    def seen(self, key: bytes, now: float | None = None) -> bool:
        """True if `key` was (probably) seen before; otherwise remembers it and returns False. `now` is the
        clock's monotonic time when the caller has it already (the relay path reads it once per read)."""
        return self._seen_hash(hash(self._salt + key), now)

    def seen_pair(self, a: bytes, b: bytes, now: float | None = None) -> bool:
        """seen() of the unordered pair (a, b): (b, a) counts as the same key. Two salted hashes summed, which
        costs less than building one key of both."""
        salt = self._salt
        return self._seen_hash(hash(salt + a) + hash(salt + b), now)

    def _seen_hash(self, h: int, now: float | None) -> bool:
        word, bits = self._place(h, now)
        current = self._current
        if current[word] & bits == bits or self._previous[word] & bits == bits:
            return True
        if self._count >= self.capacity:
            self._rotate(self._clock.monotonic() if now is None else now)
            self.early_rotations += 1
            current = self._current
        current[word] |= bits
        self._count += 1
        return False


def _zeroed_words(count: int) -> memoryview:
    """`count` zero 64-bit words of private anonymous memory: the kernel maps a page only once it is written, so
    a filter that holds few keys (an idle router's) costs little resident memory."""
    area = mmap.mmap(-1, 8 * count, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return memoryview(area).cast("Q")


def _clear(words: memoryview) -> None:
    """Zeroes a generation in place, allocating nothing: on Linux its pages go back to the kernel and read as
    zero again (MADV_DONTNEED on a private anonymous mapping)."""
    area = words.obj
    if sys.platform == "linux":
        area.madvise(mmap.MADV_DONTNEED)
    else:
        area[:] = bytes(len(area))
