"""ssu2.rst "Connection Migration": the peer's address, and a new one proven by Path Challenge/Response first."""
from __future__ import annotations

import os
from dataclasses import dataclass

from core.clock import Clock, Rng

from .blocks import PATH_CHALLENGE, PATH_RESPONSE, AddressBlock, Block, OpaqueBlock

MAX_PATH_DATA = 64          # ssu2.rst "Path Challenge": large challenges would amplify; longer ones get no answer


@dataclass(frozen=True, slots=True)
class PathSettings:
    timeout: float = 5.0             # ssu2.rst "Initiating Path Validation": a timer of several seconds
    first_resend: float = 0.5        # then doubled after every Path Challenge
    max_challenges: int = 4


def valid_new_address(old, new) -> bool:
    """Local validation rules: same address family (no IPv4/IPv6 migration), no privileged port."""
    return (":" in old[0]) == (":" in new[0]) and 1024 <= new[1] <= 65535


def path_response(challenge: OpaqueBlock, address) -> list[Block] | None:
    """ssu2.rst "Responding to Path Challenge": the same data, and the Address the challenge came from."""
    if len(challenge.payload) > MAX_PATH_DATA:
        return None
    return [OpaqueBlock(PATH_RESPONSE, challenge.payload), AddressBlock(address[1], address[0])]


class PathValidator:
    """Sans-I/O. `address` is where the session sends; a decrypted non-duplicate packet from elsewhere starts
    a validation of that address (one at a time), and only its Path Response moves `address` there.

    Methods return (blocks, address) pairs: data packets to seal and send to that address.
    """

    def __init__(self, address, *, clock: Clock, rng: Rng = os.urandom, settings: PathSettings = PathSettings()):
        self.address = address
        self._clock = clock
        self._rng = rng
        self.settings = settings
        self.candidate = None
        self._data = b""
        self._started = self._next = self._interval = 0.0
        self._sent = 0
        self.migrations = self.failed = self.cancelled = 0

    @property
    def validating(self) -> bool:
        return self.candidate is not None

    def on_packet(self, address) -> list[tuple[list[Block], object]]:
        """A data packet that decrypted and is not a duplicate came from `address`."""
        if address == self.address:
            if self.candidate is not None:       # ssu2.rst "Cancelling Path Validation"
                self.cancelled += 1
                self.candidate = None
            return []
        if address == self.candidate or not valid_new_address(self.address, address):
            return []
        now = self._clock.monotonic()
        self.candidate = address
        self._data = self._rng(8)
        self._started = now
        self._interval = self.settings.first_resend
        self._sent = 0
        return self._challenge(now)

    def _challenge(self, now: float) -> list[tuple[list[Block], object]]:
        self._sent += 1
        self._next = now + self._interval
        self._interval *= 2
        host, port = self.candidate[0], self.candidate[1]
        return [([OpaqueBlock(PATH_CHALLENGE, self._data), AddressBlock(port, host)], self.candidate)]

    def on_response(self, block: OpaqueBlock) -> bool:
        """A Path Response; True when it proves the candidate (from any source address, per the spec)."""
        if self.candidate is None or block.payload != self._data:
            return False
        self.address = self.candidate
        self.candidate = None
        self.migrations += 1
        return True

    def poll(self) -> list[tuple[list[Block], object]]:
        if self.candidate is None:
            return []
        now = self._clock.monotonic()
        if now - self._started >= self.settings.timeout or (self._sent >= self.settings.max_challenges
                                                              and now >= self._next):
            self.failed += 1                     # ssu2.rst "Failed Path Validation": keep the old address
            self.candidate = None
            return []
        if now >= self._next:
            return self._challenge(now)
        return []

    def next_deadline(self) -> float | None:
        if self.candidate is None:
            return None
        return min(self._next, self._started + self.settings.timeout)
