"""The router: wires identity, network database, transports and control; owns the data dir."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import replace

from core.clock import Clock, SystemClock
from core.config import RouterConfig
from core.data.encoding import b64encode
from core.data.errors import ProtocolError
from core.data.routerinfo import RouterAddress, RouterInfo
from core.fsutil import atomic_write
from core.identity_store import RouterKeys, load_or_create_router_keys
from core.netdb.reseed import read_reseed_file
from core.netdb.store import NetDb
from core.version import ROUTER_VERSION

log = logging.getLogger(__name__)

ROUTER_INFO_FILE = "router.info"
REPUBLISH_INTERVAL_S = 30 * 60   # re-sign our RouterInfo so its published time stays fresh


class Router:
    """One I2P router: `await start()`, then `await stop()`; everything it runs is owned here."""

    def __init__(self, config: RouterConfig, clock: Clock | None = None, rng=os.urandom):
        self.config = config
        self.clock = clock or SystemClock()
        self.rng = rng
        self.keys: RouterKeys | None = None
        self.netdb: NetDb | None = None
        self.router_info: RouterInfo | None = None
        self.started_at: float | None = None
        self._tasks: list[asyncio.Task] = []
        self._stopped = asyncio.Event()

    # --- identity and our RouterInfo

    @property
    def hash(self) -> bytes:
        assert self.keys is not None
        return self.keys.hash

    def caps(self) -> str:
        caps = self.config.bandwidth
        if self.config.floodfill:
            caps += "f"
        caps += "R" if self.config.host else "U"
        return caps

    def ntcp2_address(self) -> RouterAddress:
        """ntcp2.rst "Published Router Info": s and v always; host, port and i only when we accept inbound."""
        assert self.keys is not None
        options = {"s": b64encode(self.keys.ntcp2_static.public_bytes), "v": "2"}
        if self.config.host:
            options.update(host=self.config.host, port=str(self.config.port), i=b64encode(self.keys.ntcp2_iv))
        return RouterAddress.create("NTCP2", options, cost=3 if self.config.host else 14)

    def build_router_info(self) -> RouterInfo:
        assert self.keys is not None
        options = {"caps": self.caps(), "netId": str(self.config.netid), "router.version": ROUTER_VERSION}
        published = int(self.clock.time() * 1000)
        if self.router_info is not None and published <= self.router_info.published:
            published = self.router_info.published + 1
        return RouterInfo.create(self.keys.identity, self.keys.signing_private_key, published,
                                 [self.ntcp2_address()], options)

    def refresh_router_info(self) -> RouterInfo:
        self.router_info = self.build_router_info()
        atomic_write(self.config.datadir / ROUTER_INFO_FILE, self.router_info.to_bytes())
        return self.router_info

    # --- lifecycle

    async def start(self) -> None:
        datadir = self.config.datadir
        self.keys, created = load_or_create_router_keys(datadir, self.rng)
        log.info("%s router identity %s", "created" if created else "loaded", b64encode(self.keys.hash))
        self.netdb = NetDb(datadir / "netDb", self.config.netid, self.clock, own_hash=self.keys.hash)
        loaded = self.netdb.load()
        if self.config.reseed_file:
            self.reseed_from_file(self.config.reseed_file)
        log.info("netDb: %d routers known (%d loaded from disk)", len(self.netdb), loaded)
        self.refresh_router_info()
        self.started_at = time.monotonic()
        if len(self.netdb) == 0:
            log.warning("no peers yet: the netDb is empty; give a reseed file (--reseed-file) to join a network")
        self._tasks.append(asyncio.create_task(self._republish_loop(), name="republish"))

    def reseed_from_file(self, path: str) -> int:
        assert self.netdb is not None
        try:
            blobs = read_reseed_file(path)
        except ProtocolError as exc:
            log.error("reseed: %s", exc)
            return 0
        added = sum(1 for blob in blobs if self.netdb.add_router_info(blob) is not None)
        log.info("reseed: %d of %d RouterInfos from %s accepted", added, len(blobs), path)
        return added

    async def _republish_loop(self) -> None:
        while True:
            await asyncio.sleep(REPUBLISH_INTERVAL_S)
            self.refresh_router_info()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    @property
    def uptime_s(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at
