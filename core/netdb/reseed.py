"""Reseed from a local file: a zip of routerInfo-*.dat, or a folder of them (reseed.md)."""
from __future__ import annotations

import zipfile
from pathlib import Path

from core.data.errors import ParseError

MAX_ENTRIES = 2000
MAX_ENTRY_BYTES = 64 * 1024


def read_reseed_file(path: str | Path) -> list[bytes]:
    """The RouterInfo blobs in a reseed zip or folder; raises ParseError for an unreadable bundle."""
    path = Path(path)
    if path.is_dir():
        blobs = []
        for entry in sorted(path.rglob("routerInfo-*.dat"))[:MAX_ENTRIES]:
            if entry.stat().st_size <= MAX_ENTRY_BYTES:
                blobs.append(entry.read_bytes())
        return blobs
    try:
        with zipfile.ZipFile(path) as bundle:
            blobs = []
            for info in bundle.infolist()[:MAX_ENTRIES]:
                name = info.filename.rsplit("/", 1)[-1]
                if not (name.startswith("routerInfo-") and name.endswith(".dat")):
                    continue
                if info.file_size > MAX_ENTRY_BYTES:
                    continue
                with bundle.open(info) as member:
                    blobs.append(member.read(MAX_ENTRY_BYTES + 1)[:MAX_ENTRY_BYTES])
            return blobs
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, EOFError, ValueError) as exc:
        raise ParseError(f"{path}: not a reseed zip or folder ({exc})", structure="reseed") from None
