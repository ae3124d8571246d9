"""A torrent's bytes on disk: pieces mapped onto its files, and resume data so a restart does not re-download.

Blocks stay in memory until their piece verifies, then the whole piece is written; the resume file
(bencoded, written atomically) lists the verified pieces. After a kill -9 the pieces written since
the last resume save are found again by hashing, so only pieces in flight are lost.
Blocking file work is meant to run in a thread (asyncio.to_thread) by the caller.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from core.fsutil import atomic_write

from .bencode import BencodeError, bdecode, bencode
from .metainfo import Info, path_of
from .wire import bitfield_bytes, bitfield_pieces, WireError


class Storage:
    def __init__(self, info: Info, download_dir: Path):
        self.info = info
        self.download_dir = Path(download_dir)
        self.paths = [path_of(info, self.download_dir, f) for f in info.files]

    def exists(self) -> bool:
        return any(p.exists() for p, f in zip(self.paths, self.info.files) if not f.pad)

    def allocate(self) -> None:
        """Create every file at its full length (sparse), so offsets can be written in any order."""
        for path, entry in zip(self.paths, self.info.files):
            if entry.pad:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as f:
                if f.tell() != entry.length:
                    f.truncate(entry.length)

    def _spans(self, offset: int, length: int):
        for path, entry in zip(self.paths, self.info.files):
            start = max(offset, entry.offset)
            end = min(offset + length, entry.offset + entry.length)
            if start < end:
                yield (None if entry.pad else path), start - entry.offset, end - start

    def read(self, index: int, begin: int, length: int) -> bytes:
        offset = index * self.info.piece_length + begin
        out = bytearray()
        for path, at, size in self._spans(offset, length):
            if path is None:
                out += bytes(size)
                continue
            with open(path, "rb") as f:
                f.seek(at)
                chunk = f.read(size)
            out += chunk.ljust(size, b"\x00")
        return bytes(out)

    def write_piece(self, index: int, data: bytes) -> None:
        offset = index * self.info.piece_length
        pos = 0
        for path, at, size in self._spans(offset, len(data)):
            if path is None:
                pos += size
                continue
            with open(path, "r+b") as f:
                f.seek(at)
                f.write(data[pos:pos + size])
            pos += size

    def verify(self, index: int, data: bytes | None = None) -> bool:
        if data is None:
            data = self.read(index, 0, self.info.piece_size(index))
        return hashlib.sha1(data).digest() == self.info.pieces[index]

    def verify_and_write(self, index: int, data: bytes) -> bool:
        """One trip to a worker thread per finished piece: hash it, and store it if it is right."""
        if not self.verify(index, data):
            return False
        self.write_piece(index, data)
        return True

    def check(self, skip: bytearray | None = None) -> bytearray:
        """Hash the pieces on disk; 1 for each that verifies (pieces set in `skip` are trusted)."""
        have = bytearray(self.info.piece_count)
        if not self.exists():
            return have
        for i in range(self.info.piece_count):
            have[i] = 1 if (skip is not None and skip[i]) or self.verify(i) else 0
        return have


class ResumeData:
    """DATADIR/torrent/resume/<info-hash hex>.resume: the verified pieces, what was uploaded, paused or not."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self, info: Info) -> dict[str, Any] | None:
        try:
            raw = bdecode(self.path.read_bytes())
            if not isinstance(raw, dict) or raw.get(b"info-hash") != info.info_hash:
                return None
            bits = bitfield_pieces(raw[b"pieces"], info.piece_count)
            return {"have": bytearray(bits), "uploaded": int(raw.get(b"uploaded", 0)),
                    "downloaded": int(raw.get(b"downloaded", 0)), "paused": bool(raw.get(b"paused", 0)),
                    "seconds_seeded": int(raw.get(b"seconds-seeded", 0)),
                    "up_limit": raw.get(b"upload-limit"), "down_limit": raw.get(b"download-limit")}
        except (OSError, BencodeError, WireError, KeyError, TypeError, ValueError, IndexError):
            return None

    def save(self, info: Info, have: bytearray, *, uploaded: int, downloaded: int, paused: bool,
             seconds_seeded: int, up_limit: int = 0, down_limit: int = 0) -> None:
        body = {b"info-hash": info.info_hash, b"pieces": bitfield_bytes(have, info.piece_count),
                b"uploaded": uploaded, b"downloaded": downloaded, b"paused": int(paused),
                b"seconds-seeded": seconds_seeded, b"upload-limit": up_limit, b"download-limit": down_limit}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, bencode(body))

    def remove(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
