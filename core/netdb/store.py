"""The local network database: verified RouterInfos (memory and DATADIR/netDb) and LeaseSets (memory), with expiry.

network-database.md "RouterInfo Expiration", "LeaseSet Expiration"; i2np.rst "DatabaseStore".
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from core.clock import Clock
from core.data.encoding import b64decode, b64encode
from core.data.errors import ProtocolError
from core.data.leaseset import STORE_LEASESET, STORE_META_LEASESET, AnyLeaseSet, LeaseSet, parse_leaseset
from core.data.routerinfo import RouterInfo
from core.fsutil import atomic_write

log = logging.getLogger(__name__)

MAX_ROUTER_INFO_BYTES = 64 * 1024
MAX_FUTURE_SKEW_MS = 2 * 60 * 1000          # a RouterInfo published further ahead than this is bogus
MAX_AGE_MS = 30 * 24 * 3600 * 1000          # older than this at store time is useless

MAX_LEASESET_BYTES = 16 * 1024              # 16 leases and 8 keys (even ML-KEM-1024 ones) fit with room to spare
CLOCK_FUDGE_MS = 60 * 1000                  # skew allowed around lease end dates
MAX_LEASE_FUTURE_MS = 15 * 60 * 1000        # a LeaseSet expiring later than this is bogus
MAX_META_LEASE_FUTURE_MS = 65535 * 1000     # MetaLeaseSets may live 18.2 hours ("Meta LeaseSet (LS2)")
MAX_LEASESET1_AGE_MS = 10 * 60 * 1000       # a type 1 LeaseSet whose first lease ended this long ago is stale

# "RouterInfo Expiration"
NO_EXPIRY_UPTIME_S = 3600                   # none in the first hour: what we loaded may be old
NO_EXPIRY_MAX_ROUTERS = 25
LONG_EXPIRY_MAX_ROUTERS = 120
LONG_EXPIRY_MS = 72 * 3600 * 1000           # < 120 routers; shrinks as 72 h * 120 / count (about 30 h at 300)
MIN_EXPIRY_MS = 3600 * 1000
INTRODUCER_EXPIRY_MS = 3600 * 1000          # introducer lists go stale in about an hour
FLOODFILL_EXPIRY_MS = 3600 * 1000           # floodfills get fresh copies by flooding


class RejectedEntry(ProtocolError):
    """A netDb entry that is well formed but not acceptable (signature, netid, time)."""


def router_info_path(root: Path, router_hash: bytes) -> Path:
    """i2pd's layout: netDb/r<first b64 char>/routerInfo-<b64 hash>.dat, so files can move between routers."""
    name = b64encode(router_hash)
    return root / f"r{name[0]}" / f"routerInfo-{name}.dat"


@dataclass(frozen=True, slots=True)
class StoredLeaseSet:
    leaseset: AnyLeaseSet
    as_reply: bool                  # came as the answer to our lookup, not as a store


class NetDb:
    """RouterInfos by identity hash, verified on entry, persisted atomically, bounded in count."""

    def __init__(self, root: Path | None, netid: int, clock: Clock, own_hash: bytes = b"", max_routers: int = 5000,
                 max_leasesets: int = 10000):
        self.root = root
        self.netid = netid
        self.clock = clock
        self.own_hash = own_hash
        self.max_routers = max_routers
        self.router_infos: dict[bytes, RouterInfo] = {}
        self.leasesets: dict[bytes, StoredLeaseSet] = {}
        self.max_leasesets = max_leasesets
        self.rejected: Counter[str] = Counter()
        self._unsaved: dict[bytes, RouterInfo | None] = {}   # key -> entry to write, None: file to delete

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

    def add_router_info(self, data: bytes | RouterInfo, *, persist: bool = True,
                        key: bytes | None = None) -> RouterInfo | None:
        """Store a RouterInfo if valid and newer than what we have; returns it when stored, None otherwise.

        `key`, when given (a DatabaseStore's), must be the RouterInfo's hash.
        Bad entries are logged at debug level and counted, never raised to the caller's peer.
        """
        try:
            if isinstance(data, RouterInfo):
                ri = data
            else:
                if len(data) > MAX_ROUTER_INFO_BYTES:
                    raise RejectedEntry(f"{len(data)} bytes is too large", structure="RouterInfo")
                ri = RouterInfo.parse(data)
            if key is not None and key != ri.hash:
                raise RejectedEntry("store key is not the RouterInfo's hash", structure="RouterInfo")
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
            self._unsaved[key] = ri          # written by flush(), off the event loop, a few seconds later
        return ri

    def get_router_info(self, router_hash: bytes) -> RouterInfo | None:
        return self.router_infos.get(router_hash)

    def floodfills(self) -> list[RouterInfo]:
        return [ri for ri in self.router_infos.values() if ri.is_floodfill]

    def remove_router_info(self, router_hash: bytes) -> None:
        if self.router_infos.pop(router_hash, None) is not None and self.root is not None:
            self._unsaved[router_hash] = None

    # --- persistence: batched, so the event loop never waits on fsync

    def take_unsaved(self) -> list[tuple[Path, bytes | None]]:
        """The file changes made since the last call, as (path, bytes or None for a removal); call on the
        event loop, then write_files() anywhere (a thread)."""
        if self.root is None:
            self._unsaved.clear()
            return []
        changes = [(router_info_path(self.root, key), ri.to_bytes() if ri is not None else None)
                   for key, ri in self._unsaved.items()]
        self._unsaved.clear()
        return changes

    @staticmethod
    def write_files(changes: list[tuple[Path, bytes | None]]) -> int:
        """Apply take_unsaved()'s changes, each atomic; returns how many failed (logged)."""
        failed = 0
        for path, data in changes:
            try:
                if data is None:
                    path.unlink(missing_ok=True)
                else:
                    atomic_write(path, data)
            except OSError as exc:
                failed += 1
                log.warning("netDb: cannot write %s: %s", path.name, exc.strerror or exc)
        return failed

    def flush(self) -> int:
        """Write what is unsaved now, on this thread."""
        return self.write_files(self.take_unsaved())

    def router_info_max_age_ms(self, ri: RouterInfo, *, floodfill: bool) -> int:
        """How long `ri` may stay after it was published, by the "RouterInfo Expiration" policy."""
        count = len(self.router_infos)
        if floodfill:
            return FLOODFILL_EXPIRY_MS
        if any(key.startswith("ih") for address in ri.addresses for key, _ in address.options.items):
            return INTRODUCER_EXPIRY_MS
        if count < LONG_EXPIRY_MAX_ROUTERS:
            return LONG_EXPIRY_MS
        return max(MIN_EXPIRY_MS, LONG_EXPIRY_MS * LONG_EXPIRY_MAX_ROUTERS // count)

    def expire_router_infos(self, uptime_s: float, *, floodfill: bool, keep: set[bytes] | frozenset = frozenset()) -> int:
        """Drop RouterInfos published too long ago; none in the first hour or with 25 or fewer. Returns the count."""
        if uptime_s < NO_EXPIRY_UPTIME_S or len(self.router_infos) <= NO_EXPIRY_MAX_ROUTERS:
            return 0
        now_ms = int(self.clock.time() * 1000)
        stale = [h for h, ri in self.router_infos.items()
                 if h not in keep and h != self.own_hash
                 and ri.published + self.router_info_max_age_ms(ri, floodfill=floodfill) < now_ms]
        stale = stale[:len(self.router_infos) - NO_EXPIRY_MAX_ROUTERS]
        for h in stale:
            self.remove_router_info(h)
        return len(stale)

    # --- LeaseSets (all store types), keyed by destination hash or, for EncryptedLeaseSet, blinded key hash

    def check_leaseset(self, key: bytes, ls: AnyLeaseSet, *, as_reply: bool) -> None:
        """Raises RejectedEntry unless `ls` may be stored under `key` (Java's rules, network-database.md)."""
        name = type(ls).__name__
        if ls.hash != key:
            raise RejectedEntry("store key is not the leaseset's hash", structure=name)
        now = self.clock.time()
        now_ms = int(now * 1000)
        if ls.expires + CLOCK_FUDGE_MS <= now_ms:
            raise RejectedEntry("expired", structure=name)
        if isinstance(ls, LeaseSet) and ls.published_ms <= now_ms - MAX_LEASESET1_AGE_MS:
            raise RejectedEntry("first lease ended too long ago", structure=name)
        longest = MAX_META_LEASE_FUTURE_MS if ls.STORE_TYPE == STORE_META_LEASESET else MAX_LEASE_FUTURE_MS
        if ls.expires > now_ms + CLOCK_FUDGE_MS + longest:
            raise RejectedEntry("expires too far in the future", structure=name)
        if ls.STORE_TYPE != STORE_LEASESET and ls.published_ms > now_ms + MAX_FUTURE_SKEW_MS:
            raise RejectedEntry("published in the future", structure=name)
        if getattr(ls, "unpublished", False) and not as_reply:
            raise RejectedEntry("an unpublished leaseset is not for floodfills", structure=name)
        if not ls.verify(now):
            raise RejectedEntry("signature does not verify", structure=name)

    def add_leaseset(self, key: bytes, store_type: int, data: bytes | AnyLeaseSet, *,
                     as_reply: bool = False) -> AnyLeaseSet | None:
        """Store a leaseset if valid and newer than ours; returns it when stored, None otherwise (counted)."""
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                if len(data) > MAX_LEASESET_BYTES:
                    raise RejectedEntry(f"{len(data)} bytes is too large", structure="LeaseSet")
                ls = parse_leaseset(store_type, bytes(data))
            else:
                ls = data
                if ls.STORE_TYPE != store_type:
                    raise RejectedEntry("store type does not match the leaseset", structure="LeaseSet")
            self.check_leaseset(key, ls, as_reply=as_reply)
        except ProtocolError as exc:
            self.rejected[type(exc).__name__] += 1
            log.debug("netDb: rejected leaseset: %s", exc)
            return None
        old = self.leasesets.get(key)
        if old is not None and old.leaseset.published_ms >= ls.published_ms:
            return None
        if old is None and len(self.leasesets) >= self.max_leasesets:
            self.expire_leasesets()
            if len(self.leasesets) >= self.max_leasesets:
                self.rejected["full"] += 1
                return None
        # a copy we asked for stays "as reply" until someone stores it to us (network-database.md "Sub-Databases")
        self.leasesets[key] = StoredLeaseSet(ls, as_reply and (old is None or old.as_reply))
        return ls

    def get_leaseset(self, key: bytes, *, include_replies: bool = True) -> AnyLeaseSet | None:
        """The unexpired leaseset under `key`; with include_replies False, only one that was stored to us."""
        stored = self.leasesets.get(key)
        if stored is None or (stored.as_reply and not include_replies):
            return None
        if stored.leaseset.expires <= int(self.clock.time() * 1000):
            return None
        return stored.leaseset

    def expire_leasesets(self) -> int:
        now_ms = int(self.clock.time() * 1000)
        stale = [k for k, s in self.leasesets.items() if s.leaseset.expires <= now_ms]
        for k in stale:
            del self.leasesets[k]
        return len(stale)

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
