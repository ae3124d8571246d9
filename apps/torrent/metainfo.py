"""Metainfo v1 (BEP 3 "metainfo files"), single and multi-file, magnet links (BEP 9), and making torrents.

Every name from a torrent becomes a path under the download folder: a component that is empty, `.`,
`..`, holds a separator or a NUL is refused, so no torrent writes outside its folder.
"""
from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.data.encoding import b32decode
from core.data.errors import ParseError

from .bencode import BencodeError, TorrentParseError, bdecode, bdecode_prefix, bencode

MAX_METAINFO_BYTES = 10 * 1024 * 1024      # a .torrent of 100 MB is an attack, not a torrent
MAX_FILES = 100_000
MAX_PIECES = 1 << 20
MIN_PIECE_LENGTH = 16 * 1024
MAX_PIECE_LENGTH = 64 * 1024 * 1024
MAX_PATH_DEPTH = 32
MAX_NAME_BYTES = 255


class MetainfoError(TorrentParseError):
    structure_name = "metainfo"


class MagnetError(TorrentParseError):
    structure_name = "magnet"


def _decode_capped(data: bytes, what: str) -> Any:
    if len(data) > MAX_METAINFO_BYTES:
        raise MetainfoError(f"{what} of {len(data)} bytes is over the {MAX_METAINFO_BYTES} limit")
    try:
        return bdecode(data)
    except BencodeError as exc:
        raise MetainfoError(f"{what} is not bencode: {exc}") from None


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: tuple[str, ...]          # relative to the torrent's folder (multi-file) or just (name,)
    length: int
    offset: int                    # of its first byte in the torrent's byte stream
    pad: bool = False              # BEP 47 padding: zeros that are never written to disk


@dataclass(frozen=True, slots=True)
class Info:
    """The info dictionary; `raw` is its exact bencoding, whose SHA-1 is the info-hash."""

    name: str
    piece_length: int
    pieces: tuple[bytes, ...]      # 20-byte SHA-1 of each piece
    files: tuple[FileEntry, ...]
    multi_file: bool
    private: bool
    raw: bytes = field(repr=False)

    @property
    def info_hash(self) -> bytes:
        return hashlib.sha1(self.raw).digest()

    @property
    def total_length(self) -> int:
        return sum(f.length for f in self.files)

    @property
    def piece_count(self) -> int:
        return len(self.pieces)

    def piece_size(self, index: int) -> int:
        if index == len(self.pieces) - 1:
            return self.total_length - index * self.piece_length
        return self.piece_length

    @classmethod
    def parse(cls, raw: bytes) -> "Info":
        return cls.from_dict(_decode_capped(raw, "info dictionary"), raw)

    @classmethod
    def from_dict(cls, info: Any, raw: bytes) -> "Info":
        if not isinstance(info, dict):
            raise MetainfoError("info is not a dictionary")
        name = _component(info.get(b"name.utf-8", info.get(b"name")), "name")
        piece_length = info.get(b"piece length")
        if not isinstance(piece_length, int) or not MIN_PIECE_LENGTH <= piece_length <= MAX_PIECE_LENGTH \
                or piece_length & (piece_length - 1):
            raise MetainfoError(f"piece length {piece_length!r} is not a power of two of 16 KiB-64 MiB")
        pieces = info.get(b"pieces")
        if not isinstance(pieces, bytes) or len(pieces) % 20 or not pieces:
            raise MetainfoError("pieces is not a list of 20-byte hashes")
        if len(pieces) // 20 > MAX_PIECES:
            raise MetainfoError(f"{len(pieces) // 20} pieces is over the {MAX_PIECES} limit")
        files: list[FileEntry] = []
        offset = 0
        if b"files" in info:
            if b"length" in info:
                raise MetainfoError("info has both length and files")
            entries = info[b"files"]
            if not isinstance(entries, list) or not entries:
                raise MetainfoError("files is not a non-empty list")
            if len(entries) > MAX_FILES:
                raise MetainfoError(f"{len(entries)} files is over the {MAX_FILES} limit")
            seen: set[tuple[str, ...]] = set()
            for entry in entries:
                if not isinstance(entry, dict):
                    raise MetainfoError("a files entry is not a dictionary")
                length = _length(entry.get(b"length"))
                parts = entry.get(b"path.utf-8", entry.get(b"path"))
                if not isinstance(parts, list) or not 1 <= len(parts) <= MAX_PATH_DEPTH:
                    raise MetainfoError("a file path is not a list of 1-32 names")
                path = tuple(_component(p, "path") for p in parts)
                if path in seen or any(path[:i] in seen for i in range(1, len(path))):
                    raise MetainfoError(f"file {'/'.join(path)} is listed twice or under another file")
                seen.add(path)
                attr = entry.get(b"attr")
                files.append(FileEntry(path, length, offset, pad=isinstance(attr, bytes) and b"p" in attr))
                offset += length
            multi = True
        else:
            files.append(FileEntry((name,), _length(info.get(b"length")), 0))
            offset = files[0].length
            multi = False
        needed = -(-offset // piece_length)
        if needed != len(pieces) // 20 or offset == 0:
            raise MetainfoError(f"{len(pieces) // 20} piece hashes for {offset} bytes in pieces of {piece_length}")
        return cls(name=name, piece_length=piece_length,
                   pieces=tuple(pieces[i:i + 20] for i in range(0, len(pieces), 20)),
                   files=tuple(files), multi_file=multi, private=info.get(b"private") == 1, raw=raw)


@dataclass(frozen=True, slots=True)
class Metainfo:
    info: Info
    announce: str | None = None
    announce_list: tuple[tuple[str, ...], ...] = ()
    comment: str | None = None
    created_by: str | None = None
    creation_date: int | None = None

    @property
    def info_hash(self) -> bytes:
        return self.info.info_hash

    @property
    def trackers(self) -> list[str]:
        urls = [u for tier in self.announce_list for u in tier]
        if self.announce and self.announce not in urls:
            urls.insert(0, self.announce)
        return urls

    @classmethod
    def parse(cls, data: bytes) -> "Metainfo":
        top = _decode_capped(data, "torrent file")
        if not isinstance(top, dict) or not isinstance(top.get(b"info"), dict):
            raise MetainfoError("no info dictionary")
        info = Info.from_dict(top[b"info"], _raw_info(data))
        tiers = top.get(b"announce-list", [])
        announce_list: list[tuple[str, ...]] = []
        if isinstance(tiers, list):
            for tier in tiers[:64]:
                if isinstance(tier, list):
                    urls = tuple(_text(u) for u in tier[:64] if isinstance(u, bytes))
                    if urls:
                        announce_list.append(urls)
        date = top.get(b"creation date")
        return cls(info=info, announce=_text(top[b"announce"]) if isinstance(top.get(b"announce"), bytes) else None,
                   announce_list=tuple(announce_list),
                   comment=_text(top[b"comment"]) if isinstance(top.get(b"comment"), bytes) else None,
                   created_by=_text(top[b"created by"]) if isinstance(top.get(b"created by"), bytes) else None,
                   creation_date=date if isinstance(date, int) else None)

    def to_bytes(self) -> bytes:
        top: dict[bytes, Any] = {}
        if self.announce:
            top[b"announce"] = self.announce.encode()
        if self.announce_list:
            top[b"announce-list"] = [[u.encode() for u in tier] for tier in self.announce_list]
        if self.comment:
            top[b"comment"] = self.comment.encode()
        if self.created_by:
            top[b"created by"] = self.created_by.encode()
        if self.creation_date is not None:
            top[b"creation date"] = self.creation_date
        body = bencode(top)
        # splice the info's own bytes in, sorted after "creation date" and before anything later
        head, tail = body[:-1], b"e"
        return head + b"4:info" + self.info.raw + tail


def _raw_info(data: bytes) -> bytes:
    """The exact bytes of the top-level info value (decoding already proved the file canonical)."""
    pos = 1
    while data[pos:pos + 1] != b"e":
        key, pos = bdecode_prefix(data, pos)
        start = pos
        _, pos = bdecode_prefix(data, pos)
        if key == b"info":
            return data[start:pos]
    raise MetainfoError("no info dictionary")


def _length(value: Any) -> int:
    if not isinstance(value, int) or not 0 <= value < 1 << 50:
        raise MetainfoError(f"file length {value!r} is not 0-2^50")
    return value


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


_BAD_NAME = re.compile(r'[/\\\x00-\x1f]')


def _component(value: Any, what: str) -> str:
    """One path component, refused if it could leave the torrent's folder or name a device."""
    if not isinstance(value, bytes):
        raise MetainfoError(f"{what} is not a string")
    text = value.decode("utf-8", "replace")
    if not text or text in (".", "..") or _BAD_NAME.search(text) or len(value) > MAX_NAME_BYTES \
            or re.fullmatch(r"[A-Za-z]:.*", text):
        raise MetainfoError(f"{what} {text[:60]!r} is not a plain file name (path traversal refused)")
    return text


def choose_piece_length(total: int) -> int:
    """About 1000-2000 pieces, 16 KiB to 16 MiB (what libtorrent and i2psnark aim at)."""
    length = MIN_PIECE_LENGTH
    while total // length > 1500 and length < 16 * 1024 * 1024:
        length *= 2
    return length


def create_torrent(path: Path, *, tracker: str | None = None, comment: str | None = None,
                   piece_length: int | None = None, private: bool = False,
                   created_by: str = "pyi2p", now: Callable[[], float] | None = None) -> Metainfo:
    """A torrent of a file or a folder (its regular files, sorted; hidden files and links left out)."""
    path = Path(path)
    if path.is_dir():
        paths = sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not paths:
            raise MetainfoError(f"{path}: no files to share")
        rel = [p.relative_to(path).parts for p in paths]
    elif path.is_file():
        paths, rel = [path], []
    else:
        raise MetainfoError(f"{path}: no such file or folder")
    sizes = [p.stat().st_size for p in paths]
    total = sum(sizes)
    if total == 0:
        raise MetainfoError(f"{path}: nothing to share (0 bytes)")
    piece_length = piece_length or choose_piece_length(total)
    hashes = []
    buf = bytearray()
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(piece_length - len(buf)):
                buf += chunk
                if len(buf) == piece_length:
                    hashes.append(hashlib.sha1(buf).digest())
                    buf.clear()
    if buf:
        hashes.append(hashlib.sha1(buf).digest())
    info: dict[bytes, Any] = {b"name": path.name.encode(), b"piece length": piece_length,
                              b"pieces": b"".join(hashes)}
    if rel:
        info[b"files"] = [{b"length": s, b"path": [c.encode() for c in parts]} for s, parts in zip(sizes, rel)]
    else:
        info[b"length"] = total
    if private:
        info[b"private"] = 1
    raw = bencode(info)
    return Metainfo(info=Info.from_dict(bdecode(raw), raw), announce=tracker, comment=comment,
                    created_by=created_by, creation_date=int(now()) if now else None)


@dataclass(frozen=True, slots=True)
class MagnetLink:
    """magnet:?xt=urn:btih:<hex or base32>&dn=..&tr=.. (BEP 9)."""

    info_hash: bytes
    name: str | None = None
    trackers: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "MagnetLink":
        if not text.startswith("magnet:?") or len(text) > 8192:
            raise MagnetError("not a magnet link")
        query = urllib.parse.parse_qs(text[8:])
        info_hash = None
        for xt in query.get("xt", []):
            if xt.lower().startswith("urn:btih:"):
                digest = xt[9:]
                try:
                    if len(digest) == 40:
                        info_hash = bytes.fromhex(digest)
                    elif len(digest) == 32:
                        info_hash = b32decode(digest.lower())
                except (ValueError, ParseError):
                    info_hash = None
        if info_hash is None or len(info_hash) != 20:
            raise MagnetError("no urn:btih info-hash (40 hex or 32 base32 characters)")
        return cls(info_hash, (query.get("dn") or [None])[0], tuple(query.get("tr", [])[:16]))

    def to_str(self) -> str:
        parts = [("xt", "urn:btih:" + self.info_hash.hex())]
        if self.name:
            parts.append(("dn", self.name))
        parts += [("tr", t) for t in self.trackers]
        return "magnet:?" + urllib.parse.urlencode(parts, safe=":/")


def magnet_of(meta: Metainfo) -> MagnetLink:
    return MagnetLink(meta.info_hash, meta.info.name, tuple(meta.trackers))


def path_of(info: Info, download_dir: Path, entry: FileEntry) -> Path:
    """Where a file goes: <dir>/<name>/<path...> for multi-file, <dir>/<name> for one file."""
    base = Path(download_dir)
    target = base.joinpath(info.name, *entry.path) if info.multi_file else base / info.name
    resolved = os.path.normpath(target)
    if not resolved.startswith(os.path.normpath(base) + os.sep):
        raise MetainfoError(f"{target} is outside {base}")
    return Path(resolved)
