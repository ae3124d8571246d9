"""Which blocks to ask which peer for: rarest first, partial pieces first, endgame at the end (BEP 3 practice)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable

BLOCK = 16 * 1024
ENDGAME_DUPLICATES = 2            # an endgame block is asked of at most this many peers


@dataclass(slots=True)
class _Partial:
    blocks: int
    received: set[int] = field(default_factory=set)                      # block numbers
    requested: dict[int, set[Hashable]] = field(default_factory=dict)    # block -> peers asked


class PiecePicker:
    def __init__(self, piece_count: int, piece_size: Callable[[int], int], *, rng: random.Random | None = None):
        self.piece_count = piece_count
        self.piece_size = piece_size
        self.rng = rng or random.Random()
        self.availability = [0] * piece_count
        self.have = bytearray(piece_count)          # 1: verified and stored
        self.wanted = bytearray(b"\x01" * piece_count)
        self.partial: dict[int, _Partial] = {}
        self.remaining = piece_count
        self._tiebreak = list(range(piece_count))
        self.rng.shuffle(self._tiebreak)

    # availability
    def peer_has(self, index: int) -> None:
        self.availability[index] += 1

    def peer_bitfield(self, bits: Iterable[bool]) -> None:
        for i, bit in enumerate(bits):
            if bit:
                self.availability[i] += 1

    def peer_lost(self, bits: Iterable[bool], peer: Hashable) -> None:
        for i, bit in enumerate(bits):
            if bit and self.availability[i] > 0:
                self.availability[i] -= 1
        self.release(peer)

    def release(self, peer: Hashable) -> None:
        """Forget what `peer` was asked (it choked us or left)."""
        for partial in self.partial.values():
            for asked in partial.requested.values():
                asked.discard(peer)

    def mark_have(self, index: int) -> None:
        if not self.have[index]:
            self.have[index] = 1
            self.remaining -= 1
        self.partial.pop(index, None)

    @property
    def complete(self) -> bool:
        return self.remaining == 0

    def _blocks(self, index: int) -> int:
        return -(-self.piece_size(index) // BLOCK)

    def block_span(self, index: int, block: int) -> tuple[int, int, int]:
        begin = block * BLOCK
        return index, begin, min(BLOCK, self.piece_size(index) - begin)

    def pick(self, peer: Hashable, peer_pieces: list[bool], count: int) -> list[tuple[int, int, int]]:
        """Up to `count` (index, begin, length) to request of `peer`, which has `peer_pieces`."""
        out: list[tuple[int, int, int]] = []
        if count <= 0:
            return out
        # partial pieces first, rarest first among them, so pieces finish and can be shared
        for index in sorted(self.partial, key=lambda i: (self.availability[i], self._tiebreak[i])):
            if peer_pieces[index]:
                self._take(index, peer, count, out, endgame=False)
                if len(out) >= count:
                    return out
        candidates = [i for i in range(self.piece_count)
                      if not self.have[i] and self.wanted[i] and i not in self.partial and peer_pieces[i]]
        candidates.sort(key=lambda i: (self.availability[i], self._tiebreak[i]))
        for index in candidates:
            self.partial[index] = _Partial(self._blocks(index))
            self._take(index, peer, count, out, endgame=False)
            if len(out) >= count:
                return out
        if not out and not candidates:
            # endgame: every missing block is asked of someone; ask this peer too
            for index in sorted(self.partial, key=lambda i: self._tiebreak[i]):
                if peer_pieces[index]:
                    self._take(index, peer, count, out, endgame=True)
                    if len(out) >= count:
                        break
        return out

    def _take(self, index: int, peer: Hashable, count: int, out: list, endgame: bool) -> None:
        partial = self.partial[index]
        for block in range(partial.blocks):
            if len(out) >= count:
                return
            if block in partial.received:
                continue
            asked = partial.requested.setdefault(block, set())
            if peer in asked:
                continue
            if asked and (not endgame or len(asked) >= ENDGAME_DUPLICATES):
                continue
            asked.add(peer)
            out.append(self.block_span(index, block))

    def in_endgame(self) -> bool:
        return all(self.have[i] or i in self.partial or not self.wanted[i] for i in range(self.piece_count))

    def received(self, index: int, begin: int, peer: Hashable) -> tuple[bool, set[Hashable]]:
        """A block arrived: (was it one we still needed, the other peers to send a cancel to)."""
        partial = self.partial.get(index)
        if partial is None or begin % BLOCK:
            return False, set()
        block = begin // BLOCK
        if block >= partial.blocks or block in partial.received:
            return False, set()
        partial.received.add(block)
        others = partial.requested.pop(block, set()) - {peer}
        return True, others

    def piece_ready(self, index: int) -> bool:
        partial = self.partial.get(index)
        return partial is not None and len(partial.received) == partial.blocks

    def piece_failed(self, index: int) -> None:
        """The hash did not match: every block of it is wanted again."""
        self.partial.pop(index, None)

    def missing_bytes(self) -> int:
        return sum(self.piece_size(i) for i in range(self.piece_count) if not self.have[i] and self.wanted[i])
