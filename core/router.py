"""The router: wires identity, network database, transports and control; owns the data dir."""
from __future__ import annotations

import asyncio
import ipaddress
from collections import OrderedDict, deque
import logging
import os

from core.clock import Clock, SystemClock
from core.config import REAL_NETID, ConfigError, RouterConfig, save_settings
from core.crypto.x25519 import X25519Keypair
from core.data.encoding import b64encode
from core.data.errors import ProtocolError
from core.data.routerinfo import RouterAddress, RouterInfo
from core.fsutil import DataDirLock, atomic_write, remove_stale_temp_files
from core.identity_store import RouterKeys, load_or_create_router_keys
from core.client import ClientAPI, RouterNetwork
from core.garlic.routers import RouterGarlicReceiver
from core.control.api import (DestinationRecord, NetStatus, PeerRecord, RouterSnapshot, SettingError,
                              TunnelRecord)
from core.i2np.header import I2NPMessage
from core.i2np.registry import parse_payload
from core.netdb.profiles import ProfileStore, Tier
from core.netdb.reseed import (ReseedFetcher, ReseedService, default_cert_dirs, default_reseed_urls,
                               read_reseed_file)
from core.netdb.service import NetDbService
from core.netdb.store import NetDb
from core.stats import RateMeter
from core.transport.manager import TransportManager
from core.transport.ssu2.peertest import Reachability
from core.tunnel.service import TunnelService, TunnelSettings
from core.version import ROUTER_VERSION

log = logging.getLogger(__name__)

_REACHABILITY_STATUS = {Reachability.OK: NetStatus.OK, Reachability.FIREWALLED: NetStatus.FIREWALLED,
                        Reachability.SYMMETRIC_NAT: NetStatus.ERROR_SYMMETRIC_NAT}

ROUTER_INFO_FILE = "router.info"
REPUBLISH_INTERVAL_S = 30 * 60   # re-sign our RouterInfo so its published time stays fresh
MESSAGE_EXPIRATION_MS = 60_000
AUTO_FLOODFILL_UPTIME_S = 2 * 3600
AUTO_FLOODFILL_BANDWIDTH = ("O", "P", "X")
AUTO_FLOODFILL_ENOUGH = 500       # known floodfills beyond which the network needs no more
AUTO_FLOODFILL_CHECK_S = 300
RESEED_THRESHOLD = 25            # reseed from servers while we know fewer routers than this


class NetDbTunnelPaths:
    """core.netdb.service.NetDbTunnels over the TunnelService: a client's pools (inbound, outbound) when
    given and ready, else the exploratory ones."""

    def __init__(self, tunnels: TunnelService):
        self.tunnels = tunnels

    def reply_tunnel(self, pools) -> tuple[bytes, int] | None:
        reply = self.tunnels.reply_tunnel(pools[0]) if pools else None
        return reply or self.tunnels.reply_tunnel(None)

    def send_out(self, pools, message: I2NPMessage, to_router: bytes) -> bool:
        if pools and self.tunnels.send_via_outbound(pools[1], message, to_router=to_router):
            return True
        return self.tunnels.send_via_outbound(None, message, to_router=to_router)


STOP_PART_TIMEOUT_S = 15.0
NEWCOMERS_PER_PREFIX_HOUR = 10          # unknown routers dialling in from one /24 (IPv4) or /48 (IPv6)
PRIVATE_NET_NEWCOMERS_PER_PREFIX_HOUR = 1000   # a private testnet puts every router in one /24


class NewcomerBudget:
    """How many unknown routers dialling in from one network prefix are stored per hour (bounded state)."""

    def __init__(self, per_hour: int, max_prefixes: int = 4096):
        self.per_hour = per_hour
        self.max_prefixes = max_prefixes
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def prefix(address: str) -> str:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        return str(ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 48}", strict=False))

    def admit(self, address: str, now: float) -> bool:
        key = self.prefix(address)
        times = self._seen.pop(key, None) or deque()
        while times and now - times[0] > 3600:
            times.popleft()
        admitted = len(times) < self.per_hour
        if admitted:
            times.append(now)
        self._seen[key] = times
        while len(self._seen) > self.max_prefixes:
            self._seen.popitem(last=False)
        return admitted


class Router:
    """One I2P router: `await start()`, then `await stop()`; everything it runs is owned here."""

    def __init__(self, config: RouterConfig, clock: Clock | None = None, rng=os.urandom,
                 tunnel_settings: TunnelSettings | None = None):
        self.config = config
        self.tunnel_settings = tunnel_settings
        self.floodfill_active = config.floodfill is True     # "auto": decided by floodfill_wanted() later
        self.clock = clock or SystemClock()
        self.rng = rng
        self.keys: RouterKeys | None = None
        self.netdb: NetDb | None = None
        self.profiles: ProfileStore | None = None
        self.netdb_service: NetDbService | None = None
        self.reseed_service: ReseedService | None = None
        self.router_info: RouterInfo | None = None
        self.started_at: float | None = None
        self.transports: TransportManager | None = None
        self.tunnel_service: TunnelService | None = None
        self.client: ClientAPI | None = None
        self.garlic: RouterGarlicReceiver | None = None
        self.control = None
        self.sam = None
        self.status_text = "Starting"
        self.unhandled_messages = 0
        self.bandwidth_in = RateMeter()
        self.bandwidth_out = RateMeter()
        self._tasks: list[asyncio.Task] = []
        self._stopped = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self.restart_requested = False
        self.newcomers = NewcomerBudget(NEWCOMERS_PER_PREFIX_HOUR if config.netid == REAL_NETID
                                        else PRIVATE_NET_NEWCOMERS_PER_PREFIX_HOUR)
        self._lock = DataDirLock(config.datadir)

    # --- identity and our RouterInfo

    @property
    def hash(self) -> bytes:
        assert self.keys is not None
        return self.keys.hash

    def caps(self) -> str:
        caps = self.config.bandwidth
        if self.floodfill_active:
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

    def ssu2_address(self) -> RouterAddress:
        """ssu2.rst "Published Router Info": s, i and v always; host and port when we accept inbound, else
        caps 4 ("Unpublished SSU2 Address")."""
        assert self.keys is not None
        options = {"s": b64encode(self.keys.ssu2_static.public_bytes), "i": b64encode(self.keys.ssu2_intro), "v": "2"}
        if self.config.host:
            # "B": we take part in others' peer tests as Bob and Charlie; "C": we introduce (ssu2.rst)
            options.update(host=self.config.host, port=str(self.config.port), caps="BC")
        else:
            options["caps"] = "4"
            # ssu2.rst "Published Router Info": the introducers that hold a relay tag for us
            for k, (bob, tag, expires) in enumerate(self.transports.introducers if self.transports else []):
                options.update({f"ih{k}": b64encode(bob), f"itag{k}": str(tag), f"iexp{k}": str(expires)})
        return RouterAddress.create("SSU2", options, cost=8 if self.config.host else 15)

    def build_router_info(self) -> RouterInfo:
        assert self.keys is not None
        options = {"caps": self.caps(), "netId": str(self.config.netid), "router.version": ROUTER_VERSION}
        if self.floodfill_active and self.netdb is not None:
            # network-database.md "Additional Options": floodfills include these in every RouterInfo
            options.update({"netdb.knownLeaseSets": str(len(self.netdb.leasesets)),
                            "netdb.knownRouters": str(len(self.netdb))})
        published = int(self.clock.time() * 1000)
        if self.router_info is not None and published <= self.router_info.published:
            published = self.router_info.published + 1
        return RouterInfo.create(self.keys.identity, self.keys.signing_private_key, published,
                                 [self.ntcp2_address()] + ([self.ssu2_address()] if self.config.ssu2_enabled else []),
                                 options)

    def _introducers_changed(self) -> None:
        self.refresh_router_info()
        if self.netdb_service is not None:
            self.publish_router_info()

    def refresh_router_info(self) -> RouterInfo:
        self.router_info = self.build_router_info()
        atomic_write(self.config.datadir / ROUTER_INFO_FILE, self.router_info.to_bytes())
        return self.router_info

    # --- lifecycle

    async def start(self) -> None:
        datadir = self.config.datadir
        self._lock.acquire()             # before any file is touched: one router per data folder
        stale = remove_stale_temp_files(datadir)
        if stale:
            log.info("removed %d temp files an earlier run left when it was killed mid-write", stale)
        self.keys, created = load_or_create_router_keys(datadir, self.rng)
        log.info("%s router identity %s", "created" if created else "loaded", b64encode(self.keys.hash))
        self.netdb = NetDb(datadir / "netDb", self.config.netid, self.clock, own_hash=self.keys.hash)
        loaded = self.netdb.load()
        self.profiles = ProfileStore(datadir / "peerProfiles", self.clock, self.rng)
        self.profiles.load()
        if self.config.reseed_file:
            self.reseed_from_file(self.config.reseed_file)
        log.info("netDb: %d routers known (%d loaded from disk)", len(self.netdb), loaded)
        self.refresh_router_info()
        self.transports = TransportManager(
            router_hash=self.keys.hash, static_key=self.keys.ntcp2_static, iv=self.keys.ntcp2_iv,
            netid=self.config.netid, router_info=lambda: self.router_info.to_bytes(),
            lookup_router_info=self.netdb.get_router_info, on_message=self.handle_message,
            on_router_info=self.handle_router_info, clock=self.clock, rng=self.rng,
            on_dial_failure=self.profiles.record_connect_failure,
            ssu2_keys=(self.keys.ssu2_static, self.keys.ssu2_intro) if self.config.ssu2_enabled else None,
            sign=self.keys.sign, on_introducers=self._introducers_changed)
        # one receiver for garlic to our router: Noise N one-shots and replies under our reply keys
        self.garlic = RouterGarlicReceiver(self.keys.keys.private_key, clock=self.clock, rng=self.rng)
        self.netdb_service = NetDbService(
            self.netdb, self.profiles, own_hash=self.keys.hash, own_router_info=lambda: self.router_info,
            send=self._send_or_deliver, clock=self.clock, rng=self.rng, floodfill=self.floodfill_active,
            uptime=lambda: self.uptime_s, garlic=self.garlic)
        await self.transports.start(self.config.host, self.config.port)
        await self.netdb_service.start()
        self.tunnel_service = TunnelService(
            router_hash=self.keys.hash, static_key=X25519Keypair(self.keys.keys.private_key),
            send=self.transports.send, netdb=self.netdb, clock=self.clock, rng=self.rng, profiles=self.profiles,
            settings=self.tunnel_settings or self.default_tunnel_settings(),
            lookup_router_info=self.netdb_service.lookup_router_info, garlic=self.garlic,
            connected=self.transports.is_connected, ssu2=self.config.ssu2_enabled,
            send_raw=self.transports.send_raw)
        self.transports.relay = self.tunnel_service.relay_tunnel_data
        self.tunnel_service.on_local_message = lambda message: self.handle_message(self.hash, message)
        self.netdb_service.tunnels = NetDbTunnelPaths(self.tunnel_service)
        await self.tunnel_service.start()
        self.client = ClientAPI(RouterNetwork(self.tunnel_service, self.netdb_service), clock=self.clock,
                                rng=self.rng)
        await self._start_control()
        await self._start_sam()
        self.started_at = self.clock.monotonic()
        self.status_text = "Running"
        self._start_reseed_service()
        if len(self.netdb) == 0:
            log.warning("no peers yet: the netDb is empty; give a reseed file (--reseed-file) to join a network")
        self._tasks.append(asyncio.create_task(self._republish_loop(), name="republish"))
        self._tasks.append(asyncio.create_task(self._bandwidth_loop(), name="bandwidth"))
        if self.config.floodfill == "auto":
            self._tasks.append(asyncio.create_task(self._floodfill_monitor(), name="floodfill-monitor"))

    def floodfill_wanted(self) -> bool:
        """The automatic choice, after Java's: reachable, a fast bandwidth class, long enough up, and the
        network short of floodfills."""
        return (bool(self.config.host) and self.config.bandwidth in AUTO_FLOODFILL_BANDWIDTH
                and self.uptime_s >= AUTO_FLOODFILL_UPTIME_S
                and len(self.netdb.floodfills()) < AUTO_FLOODFILL_ENOUGH)

    def set_floodfill(self, active: bool) -> None:
        if active == self.floodfill_active:
            return
        log.info("floodfill role %s", "taken on" if active else "given up")
        self.floodfill_active = active
        self.netdb_service.floodfill = active
        self.refresh_router_info()
        self.publish_router_info()

    async def _floodfill_monitor(self) -> None:
        while True:
            self.set_floodfill(self.floodfill_wanted())
            await asyncio.sleep(AUTO_FLOODFILL_CHECK_S)

    async def _bandwidth_loop(self) -> None:
        while True:
            now = self.clock.monotonic()
            self.bandwidth_in.sample(now, self.transports.bytes_received)
            self.bandwidth_out.sample(now, self.transports.bytes_sent)
            await asyncio.sleep(1.0)

    def default_tunnel_settings(self) -> TunnelSettings:
        # peer-selection.md: no two hops from one /16, except on a private network, where all may share one
        return TunnelSettings(ip_restriction=2 if self.config.netid == REAL_NETID else 0)

    def _start_reseed_service(self) -> None:
        """Reseed from servers, with backoff, while the netDb is small; never gives up."""
        urls = list(self.config.reseed_urls) if self.config.reseed_urls is not None \
            else default_reseed_urls(self.config.netid)
        if not urls:
            if len(self.netdb) < RESEED_THRESHOLD:
                log.info("no reseed servers for netid %d: only reseed files and peers add routers",
                         self.config.netid)
            return
        fetcher = ReseedFetcher(urls, self.config.netid, default_cert_dirs(self.config.datadir), clock=self.clock,
                                rng=self.rng, own_hash=self.keys.hash)
        self.reseed_service = ReseedService(fetcher, router_count=lambda: len(self.netdb),
                                            add_router_info=self.netdb.add_router_info, clock=self.clock,
                                            threshold=RESEED_THRESHOLD)
        self._tasks.append(asyncio.create_task(self.reseed_service.run(), name="reseed"))

    async def _start_control(self) -> None:
        from core.control.config import ControlConfigError
        from core.control.server import start_control_server   # aiohttp is loaded only when the API runs
        try:
            self.control = await start_control_server(self, self.config.datadir, address=self.config.control_host,
                                                      port=self.config.control_port, rng=self.rng)
        except OSError as exc:
            log.error("I2PControl not started on %s:%d: %s", self.config.control_host, self.config.control_port,
                      exc.strerror or exc)
        except ControlConfigError as exc:
            log.error("I2PControl not started: %s (fix or delete that file: a new one gets a new password)", exc)
        if self.control is not None and not ipaddress.ip_address(self.control.host).is_loopback:
            log.warning("I2PControl listens on %s, reachable from other machines: anyone who learns the "
                        "password controls this router (control_host = \"127.0.0.1\" keeps it local)",
                        self.control.host)

    async def _start_sam(self) -> None:
        if not self.config.sam_port:
            return
        if not ipaddress.ip_address(self.config.control_host).is_loopback and not self.config.sam_users:
            log.error("SAM not started: it would listen on %s, reachable from other machines, without a password "
                      "(set sam_users = [\"user:password\"] in config.toml, or keep control_host on 127.0.0.1)",
                      self.config.control_host)
            return
        from core.sam.bridge import SamAuth, SamBridge, SamConfig
        from core.sam.client_backend import ClientBackend
        config = SamConfig(host=self.config.control_host, port=self.config.sam_port, udp_host=self.config.control_host,
                           udp_port=self.config.sam_udp_port or None)
        users = dict(entry.split(":", 1) for entry in self.config.sam_users)
        bridge = SamBridge(ClientBackend(self.client), config, auth=SamAuth(users, enabled=bool(users)),
                           clock=self.clock, rng=self.rng)
        try:
            await bridge.start()
        except OSError as exc:
            log.error("SAM not started: %s", exc.strerror or exc)
            return
        self.sam = bridge
        log.info("SAM v3 bridge listening on %s:%d", config.host, bridge.port)

    def reseed_from_file(self, path: str) -> int:
        assert self.netdb is not None
        try:
            blobs = read_reseed_file(path, datadir=self.config.datadir, clock=self.clock)
        except ProtocolError as exc:
            log.error("reseed: %s", exc)
            return 0
        added = sum(1 for blob in blobs if self.netdb.add_router_info(blob) is not None)
        log.info("reseed: %d of %d RouterInfos from %s accepted", added, len(blobs), path)
        return added

    async def _republish_loop(self) -> None:
        while True:
            self.publish_router_info()
            await asyncio.sleep(REPUBLISH_INTERVAL_S)
            self.refresh_router_info()

    def publish_router_info(self) -> int:
        """Store our RouterInfo at the floodfills closest to its routing key, with reply tokens; how many were sent."""
        assert self.netdb_service is not None
        store_round = self.netdb_service.publish_router_info()
        return len(store_round.tried) if store_round else 0

    def new_message(self, payload) -> I2NPMessage:
        msg_id = int.from_bytes(self.rng(4), "big")
        return I2NPMessage.build(payload, msg_id, int(self.clock.time() * 1000) + MESSAGE_EXPIRATION_MS)

    def _send_or_deliver(self, peer: bytes, message: I2NPMessage) -> bool:
        """Send to a peer; to ourselves (a reply into a tunnel whose gateway we are) it is handled here."""
        if peer != self.hash:
            return self.transports.send(peer, message)
        try:
            self.handle_message(self.hash, message)
        except ProtocolError as exc:
            log.debug("message to ourselves dropped: %s", exc)
            return False
        return True

    # --- inbound traffic

    def handle_router_info(self, peer_hash: bytes, data: bytes) -> None:
        assert self.netdb_service is not None and self.profiles is not None and self.netdb is not None
        self.profiles.record_connect_success(peer_hash)
        conn = self.transports.sessions.get(peer_hash) if self.transports is not None else None
        if conn is not None and conn.inbound and self.netdb.get_router_info(peer_hash) is None:
            # a stranger that dialled us: throwaway identities from one network must not fill our netDb
            address = (conn.peername or ("?",))[0]
            if not self.newcomers.admit(address, self.clock.monotonic()):
                self.netdb.rejected["newcomer_budget"] += 1
                return
        self.netdb_service.handle_router_info(peer_hash, data)

    def handle_message(self, peer_hash: bytes, message: I2NPMessage) -> None:
        """Dispatch one I2NP message from a directly connected peer. Parse errors are ProtocolErrors."""
        assert self.netdb_service is not None
        if self.tunnel_service is not None and self.tunnel_service.handle_message(peer_hash, message):
            return
        payload = parse_payload(message)
        if not self.netdb_service.handle(peer_hash, payload):
            self.unhandled_messages += 1
            log.debug("no handler yet for I2NP %s from %s", type(payload).__name__, b64encode(peer_hash)[:8])

    async def stop(self) -> None:
        self.status_text = "Shutting down"
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        # each part gets a bounded time: a part that hangs is logged by name, and the rest still stop
        for name, part in (("client API", self.client and self.client.close),
                           ("tunnels", self.tunnel_service and self.tunnel_service.stop),
                           ("netDb", self.netdb_service and self.netdb_service.stop),
                           ("SAM", self.sam and self.sam.stop),
                           ("I2PControl", self.control and self.control.stop),
                           ("transports", self.transports and self.transports.stop)):
            if part is None:
                continue
            try:
                await asyncio.wait_for(part(), STOP_PART_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.error("%s did not stop within %.0f s; going on", name, STOP_PART_TIMEOUT_S)
        self._lock.release()
        self._stopped.set()

    def request_stop(self) -> None:
        self._stop_requested.set()

    async def wait_stop_requested(self) -> None:
        await self._stop_requested.wait()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    @property
    def uptime_s(self) -> float:
        return 0.0 if self.started_at is None else self.clock.monotonic() - self.started_at

    # --- core.control.api.ControlledRouter

    def snapshot(self) -> RouterSnapshot:
        netdb, transports = self.netdb, self.transports
        peers = len(transports.sessions) if transports else 0
        reachability = transports.ssu2.reachability if transports and transports.ssu2 else None
        if peers and reachability in _REACHABILITY_STATUS:
            net_status = _REACHABILITY_STATUS[reachability]     # what the last SSU2 peer test found
        elif peers:
            net_status = NetStatus.OK if self.config.host else NetStatus.FIREWALLED
        else:
            net_status = NetStatus.ERROR_NO_ACTIVE_PEERS_CHECK_CONNECTION_AND_FIREWALL
        tiers = self.profiles.counts() if self.profiles else {}
        reseeder = self.reseed_service
        return RouterSnapshot(
            router_hash=self.hash, version=ROUTER_VERSION, uptime_s=self.uptime_s, status_text=self.status_text,
            net_status=net_status, known_routers=len(netdb) if netdb else 0,
            floodfills=len(netdb.floodfills()) if netdb else 0, leasesets=len(netdb.leasesets) if netdb else 0,
            active_peers=peers, fast_peers=tiers.get(Tier.FAST, 0),
            # Java counts the fast peers among the high-capacity ones
            high_capacity_peers=tiers.get(Tier.FAST, 0) + tiers.get(Tier.HIGH_CAPACITY, 0),
            is_reseeding=bool(reseeder is not None and reseeder.is_reseeding),
            participating_tunnels=self.tunnel_service.participating_tunnels if self.tunnel_service else 0,
            build_success_ratio=self.tunnel_service.build_success_ratio() if self.tunnel_service else 0.0,
            bw_in_1s=self.bandwidth_in.rate(1), bw_in_15s=self.bandwidth_in.rate(15),
            bw_out_1s=self.bandwidth_out.rate(1), bw_out_15s=self.bandwidth_out.rate(15),
            bytes_received=transports.bytes_received if transports else 0,
            bytes_sent=transports.bytes_sent if transports else 0)

    def peers(self) -> list[PeerRecord]:
        records = []
        for peer_hash, conn in (self.transports.sessions.items() if self.transports else ()):
            ri = self.netdb.get_router_info(peer_hash) if self.netdb else None
            host, port = (conn.peername or ("?", 0))[:2]
            records.append(PeerRecord(peer_hash, conn.transport_style, conn.inbound, ri.caps if ri else "", f"{host}:{port}",
                                      conn.established_at))
        return records

    def tunnels(self) -> list[TunnelRecord]:
        return self.tunnel_service.tunnel_records() if self.tunnel_service else []

    def destinations(self) -> list[DestinationRecord]:
        sessions = self.client.sessions if self.client else ()
        return [DestinationRecord(s.b32_address, s.name or "") for s in sessions]

    def network_settings(self) -> dict[str, str]:
        return {"i2p.router.net.ntcp.port": str(self.config.port),
                "i2p.router.net.ntcp.hostname": self.config.host or "",
                "i2p.router.net.ntcp.autoip": "false"}

    def apply_network_settings(self, changes) -> bool:
        """The NTCP2 port and host are saved to config.toml for the next start (RestartNeeded); the
        other keys name things this router does not have (SSU, UPnP, laptop mode) or sets elsewhere."""
        saved = {}
        for key, value in changes.items():
            if key == "i2p.router.net.ntcp.port":
                saved["port"] = int(value)
            elif key == "i2p.router.net.ntcp.hostname":
                try:
                    ipaddress.ip_address(value)
                except ValueError:
                    raise SettingError(f"{key}: {value!r} is not an IP address") from None
                saved["host"] = value
            else:
                raise SettingError(f"{key} cannot be changed on this router (only i2p.router.net.ntcp.port "
                                   "and .hostname; other settings are in config.toml)")
        try:
            save_settings(self.config.datadir, saved)
        except (ConfigError, OSError) as exc:
            raise SettingError(str(exc)) from None
        return True

    async def shutdown(self) -> None:
        self.request_stop()

    async def shutdown_graceful(self) -> None:
        self.request_stop()

    async def restart(self) -> None:
        """Stop, then start again in the same process with config.toml re-read (pyi2p run does the start)."""
        self.restart_requested = True
        self.request_stop()

    async def restart_graceful(self) -> None:
        await self.restart()

    async def reseed(self) -> None:
        if self.config.reseed_file:
            self.reseed_from_file(self.config.reseed_file)
        if self.reseed_service is not None:
            self.reseed_service.request()
