"""What the I2PControl server needs from the router: a small Protocol and plain records."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence


class NetStatus(enum.IntEnum):
    """i2pcontrol.md RouterInfo "i2p.router.net.status" enum."""

    OK = 0
    TESTING = 1
    FIREWALLED = 2
    HIDDEN = 3
    WARN_FIREWALLED_AND_FAST = 4
    WARN_FIREWALLED_AND_FLOODFILL = 5
    WARN_FIREWALLED_WITH_INBOUND_TCP = 6
    WARN_FIREWALLED_WITH_UDP_DISABLED = 7
    ERROR_I2CP = 8
    ERROR_CLOCK_SKEW = 9
    ERROR_PRIVATE_TCP_ADDRESS = 10
    ERROR_SYMMETRIC_NAT = 11
    ERROR_UDP_PORT_IN_USE = 12
    ERROR_NO_ACTIVE_PEERS_CHECK_CONNECTION_AND_FIREWALL = 13
    ERROR_UDP_DISABLED_AND_TCP_UNSET = 14


@dataclass(frozen=True, slots=True)
class RouterSnapshot:
    """The router's figures at one moment; rates in bytes per second, times in seconds."""

    router_hash: bytes                 # 32-byte SHA-256 of our RouterIdentity
    version: str                       # I2P API version we speak, e.g. "0.9.66"
    uptime_s: float
    status_text: str                   # free-form, for display ("Running", "Starting", "Shutting down")
    net_status: NetStatus
    known_routers: int                 # RouterInfos in our netDb
    floodfills: int                    # of which floodfills
    leasesets: int                     # LeaseSets in our netDb
    active_peers: int                  # peers we exchanged messages with recently
    fast_peers: int
    high_capacity_peers: int
    is_reseeding: bool
    participating_tunnels: int         # transit tunnels we are a hop of
    build_success_ratio: float         # 0.0-1.0, our tunnel builds that succeeded recently
    bw_in_1s: float
    bw_in_15s: float
    bw_out_1s: float
    bw_out_15s: float
    bytes_received: int                # totals since start, for GetRate over longer periods
    bytes_sent: int


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """One transport session to another router."""

    router_hash: bytes
    transport: str                     # "NTCP2" or "SSU2"
    inbound: bool                      # True if the peer dialled us
    caps: str                          # the peer's RouterInfo "caps", e.g. "XfR"
    address: str                       # "host:port" of the remote end
    established: float                 # wall-clock seconds when the session was established


@dataclass(frozen=True, slots=True)
class TunnelRecord:
    """One of our own tunnels (not transit)."""

    tunnel_id: int                     # our end's tunnel id
    direction: str                     # "inbound" or "outbound"
    hops: tuple[bytes, ...]            # router hashes from gateway to endpoint, ourselves excluded
    state: str                         # "building", "established", "expiring" or "failed"
    expires: float                     # wall-clock seconds
    pool: str                          # "exploratory" or the client destination's name


@dataclass(frozen=True, slots=True)
class DestinationRecord:
    """A local client destination (I2CP/SAM/app session)."""

    b32: str                           # "xxxx...xxxx.b32.i2p"
    name: str                          # nickname the app gave it


class SettingError(Exception):
    """A NetworkSetting value the router refuses (answered as JSON-RPC -32602)."""


# i2pcontrol.md NetworkSetting keys; values travel as strings.
NETWORK_SETTING_KEYS = (
    "i2p.router.net.ntcp.port",
    "i2p.router.net.ntcp.hostname",
    "i2p.router.net.ntcp.autoip",
    "i2p.router.net.ssu.port",
    "i2p.router.net.ssu.hostname",
    "i2p.router.net.ssu.autoip",
    "i2p.router.net.ssu.detectedip",
    "i2p.router.net.upnp",
    "i2p.router.net.bw.share",
    "i2p.router.net.bw.in",
    "i2p.router.net.bw.out",
    "i2p.router.net.laptopmode",
)


class ControlledRouter(Protocol):
    """The router as the control server sees it. Reads are cheap and synchronous.

    The actions (shutdown...reseed) only start the work and return promptly: they
    must not wait for the router to stop, since stopping also stops this server.
    """

    def snapshot(self) -> RouterSnapshot: ...

    def peers(self) -> Sequence[PeerRecord]: ...

    def tunnels(self) -> Sequence[TunnelRecord]: ...

    def destinations(self) -> Sequence[DestinationRecord]: ...

    def network_settings(self) -> Mapping[str, str]:
        """Current values of the NETWORK_SETTING_KEYS the router knows (others are answered "")."""

    def apply_network_settings(self, changes: Mapping[str, str]) -> bool:
        """Apply and persist already-validated changes; True if a restart is needed. SettingError if refused."""

    async def shutdown(self) -> None: ...

    async def shutdown_graceful(self) -> None: ...

    async def restart(self) -> None: ...

    async def restart_graceful(self) -> None: ...

    async def reseed(self) -> None: ...
