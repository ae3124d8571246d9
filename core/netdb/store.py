"""The local network database: verified RouterInfos kept in memory and in DATADIR/netDb (network-database.md)."""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from core.clock import Clock
from core.data.encoding import b64decode, b64encode
from core.data.errors import ProtocolError
from core.data.routerinfo import RouterInfo
from core.fsutil import atomic_write

log = logging.getLogger(__name__)

MAX_ROUTER_INFO_BYTES = 64 * 1024
MAX_FUTURE_SKEW_MS = 2 * 60 * 1000          # a RouterInfo published further ahead than this is bogus
MAX_AGE_MS = 30 * 24 * 3600 * 1000          # older than this at store time is useless


class RejectedEntry(ProtocolError):
    """A netDb entry that is well formed but not acceptable (signature, netid, time)."""


def router_info_path(root: Path, router_hash: bytes) -> Path:
    """i2pd's layout: netDb/r<first b64 char>/routerInfo-<b64 hash>.dat, so files can move between routers."""
    name = b64encode(router_hash)
    return root / f"r{name[0]}" / f"routerInfo-{name}.dat"


class NetDb:
    """RouterInfos by identity hash, verified on entry, persisted atomically, bounded in count."""

    def __init__(self, root: Path | None, netid: int, clock: Clock, own_hash: bytes = b"", max_routers: int = 5000):
        self.root = root
        self.netid = netid
        self.clock = clock
        self.own_hash = own_hash
        self.max_routers = max_routers
        self.router_infos: dict[bytes, RouterInfo] = {}
        self.rejected: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.router_infos)

    def check_router_info(self, ri: RouterInfo) -> None:
        """Raises RejectedEntry unless `ri` may enter the store."""
        if ri.netid != self.netid:
            raise RejectedEntry(f"netId {ri.netid}, ours is {self.netid}", structure="RouterInfo")
        now_ms = int(self.clock.time() * 1000)
        if ri.published > now_ms + MAX_FUTURE_SKEW_MS:
            raise RejectedEntry("published in the future", structure="RouterInfo")
        if ri.published < now_ms - MAX_AGE_MS:
            raise RejectedEntry("published too long ago", structure="RouterInfo")
        if not ri.verify():
            raise RejectedEntry("signature does not verify", structure="RouterInfo")

    def add_router_info(self, data: bytes | RouterInfo, *, persist: bool = True) -> RouterInfo | None:
        """Store a RouterInfo if valid and newer than what we have; returns it when stored, None otherwise.

        Bad entries are logged at debug level and counted, never raised to the caller's peer.
        """
        try:
            if isinstance(data, RouterInfo):
                ri = data
            else:
                if len(data) > MAX_ROUTER_INFO_BYTES:
                    raise RejectedEntry(f"{len(data)} bytes is too large", structure="RouterInfo")
                ri = RouterInfo.parse(data)
            self.check_router_info(ri)
        except ProtocolError as exc:
            self.rejected[type(exc).__name__] += 1
            log.debug("netDb: rejected RouterInfo: %s", exc)
            return None
        key = ri.hash
        old = self.router_infos.get(key)
        if old is not None and old.published >= ri.published:
            return None
        if old is None and len(self.router_infos) >= self.max_routers:
            self.rejected["full"] += 1
            return None
        self.router_infos[key] = ri
        if persist and self.root is not None:
            atomic_write(router_info_path(self.root, key), ri.to_bytes())
        return ri

    def get_router_info(self, router_hash: bytes) -> RouterInfo | None:
        return self.router_infos.get(router_hash)

    def floodfills(self) -> list[RouterInfo]:
        return [ri for ri in self.router_infos.values() if ri.is_floodfill]

    def load(self) -> int:
        """Read every routerInfo-*.dat under the root; files that fail checks are removed."""
        if self.root is None or not self.root.is_dir():
            return 0
        loaded = 0
        for path in sorted(self.root.glob("r?/routerInfo-*.dat")):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            ri = self.add_router_info(data, persist=False)
            if ri is None:
                if self._expected_name(path) not in self.router_infos:
                    path.unlink(missing_ok=True)
                continue
            loaded += 1
        return loaded

    @staticmethod
    def _expected_name(path: Path) -> bytes:
        try:
            return b64decode(path.stem.removeprefix("routerInfo-"))
        except ProtocolError:
            return b""
