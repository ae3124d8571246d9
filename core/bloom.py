"""A decaying Bloom filter: recently seen keys in fixed memory, sans-I/O (the clock is injected)."""
from __future__ import annotations

import ctypes
from array import array

from core.clock import Clock


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
        self._current = array("Q", bytes(8 * self._words))
        self._previous = array("Q", bytes(8 * self._words))
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

    def _bits(self, key: bytes) -> tuple[int, int]:
        """(word, bits) of `key`, after rotating the generations the clock has moved past."""
        now = self._clock.monotonic()
        if now - self._rotated_at >= self.period:
            stale = now - self._rotated_at >= 2 * self.period
            self._rotate(now)
            if stale:
                _clear(self._previous)
                self._previous_count = 0
        h = hash(self._salt + key) & 0xFFFFFFFFFFFFFFFF
        bits = (1 << (h >> 40 & 63)) | (1 << (h >> 46 & 63)) | (1 << (h >> 52 & 63)) | (1 << (h >> 58))
        return h & (self._words - 1), bits

    def _has(self, word: int, bits: int) -> bool:
        return self._current[word] & bits == bits or self._previous[word] & bits == bits

    def _set(self, word: int, bits: int) -> None:
        if self._count >= self.capacity:
            self._rotate(self._clock.monotonic())
            self.early_rotations += 1
        self._current[word] |= bits
        self._count += 1

    def __contains__(self, key: bytes) -> bool:
        """True if `key` was (probably) added, without adding it."""
        return self._has(*self._bits(key))

    def add(self, key: bytes) -> None:
        word, bits = self._bits(key)
        if not self._has(word, bits):
            self._set(word, bits)

    def seen(self, key: bytes) -> bool:
        """True if `key` was (probably) seen before; otherwise remembers it and returns False."""
        word, bits = self._bits(key)
        if self._has(word, bits):
            return True
        self._set(word, bits)
        return False


def _clear(words: array) -> None:
    """Zeroes an array in place, allocating nothing."""
    address, length = words.buffer_info()
    ctypes.memset(address, 0, length * words.itemsize)
