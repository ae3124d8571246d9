"""The in-process client API: one ClientAPI per router hosts any number of destinations (ClientSessions).

    api = ClientAPI(RouterNetwork(tunnel_service, netdb_service))
    session = await api.open_session(options={"inbound.length": "2"}, name="web")
    session.send_datagram(remote_hash, b"hello", dst_port=7)
    datagram = await session.receive_datagram()

Destinations of one ClientAPI reach each other directly (local delivery), as in Java I2P and i2pd.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from core.clock import Clock, Rng, SystemClock
from core.data.leaseset import AnyLeaseSet, LeaseSet2
from core.data.privatekeys import PrivateKeys
from core.data.errors import ProtocolError
from core.i2np import I2NPMessage, MessageType
from core.i2np.registry import parse_payload

from .session import ClientNetwork, ClientSession

CLIENT_POOL_PREFIX = "client:"
# what floodfills send back into a client's tunnels for its LeaseSet lookups and stores
_NETDB_REPLY_TYPES = frozenset({MessageType.DATABASE_STORE, MessageType.DATABASE_SEARCH_REPLY,
                                MessageType.DELIVERY_STATUS})


class ClientAPI:
    """The destinations hosted on one router, and local delivery between them."""

    def __init__(self, network: ClientNetwork | None = None, *, clock: Clock | None = None, rng: Rng = os.urandom,
                 max_sessions: int = 256):
        self.network = network
        self.clock = clock or SystemClock()
        self.rng = rng
        self.max_sessions = max_sessions
        self._sessions: dict[bytes, ClientSession] = {}
        self._names: dict[str, ClientSession] = {}

    async def open_session(self, keys: PrivateKeys | None = None, options: Mapping[str, str] | None = None,
                           name: str | None = None) -> ClientSession:
        """Host a destination: `keys` or a new transient one (Ed25519, X25519). Tunnels and the LeaseSet
        follow in the background; `await session.wait_published()` waits for the LeaseSet."""
        keys = keys or PrivateKeys.generate(rng=self.rng)
        if keys.destination.hash in self._sessions:
            raise ValueError(f"destination {keys.destination.b32_address} is already open")
        if len(self._sessions) >= self.max_sessions:
            raise ValueError(f"at most {self.max_sessions} sessions")
        name = name or keys.destination.b32_address[:16]
        if name in self._names:
            raise ValueError(f"a session named {name!r} is already open")
        session = ClientSession(self, keys, {str(k): str(v) for k, v in (options or {}).items()}, name,
                                network=self.network, clock=self.clock, rng=self.rng)
        self._sessions[session.hash] = session
        self._names[name] = session
        try:
            session.start()
        except BaseException:
            self._unregister(session)
            raise
        return session

    def local_session(self, dest_hash: bytes) -> ClientSession | None:
        return self._sessions.get(dest_hash)

    def session(self, name: str) -> ClientSession | None:
        return self._names.get(name)

    @property
    def sessions(self) -> list[ClientSession]:
        return list(self._sessions.values())

    def _unregister(self, session: ClientSession) -> None:
        if self._sessions.get(session.hash) is session:
            del self._sessions[session.hash]
        if self._names.get(session.name) is session:
            del self._names[session.name]

    async def close(self) -> None:
        for session in list(self._sessions.values()):
            await session.close()


class RouterNetwork:
    """ClientNetwork over a router's TunnelService and NetDbService."""

    def __init__(self, tunnels: Any, netdb: Any):
        self.tunnels = tunnels
        self.netdb = netdb

    def open_pools(self, name: str, options: Mapping[str, str], on_message: Callable[[I2NPMessage], None]) -> Any:
        from core.tunnel.pool import PoolConfig
        pools = []
        settings = getattr(self.tunnels, "settings", None)
        default_restriction = str(getattr(settings, "ip_restriction", 2))
        # client tunnels are tested as often as exploratory ones: a broken one must leave use (and the LeaseSet) soon
        timing = {"test_interval": settings.test_interval_s} if settings is not None else {}
        for inbound in (True, False):
            prefix = "inbound." if inbound else "outbound."
            merged = {prefix + "IPRestriction": default_restriction, **options}
            pools.append(self.tunnels.create_pool(CLIENT_POOL_PREFIX + name,
                                                  PoolConfig.from_i2cp(merged, inbound, **timing)))
        inbound_pool, outbound_pool = pools
        inbound_pool.on_message = lambda _tunnel_id, message: self._offer_netdb(message) or on_message(message)
        return inbound_pool, outbound_pool

    def _offer_netdb(self, message: I2NPMessage) -> bool:
        """netDb replies out of the client's tunnels go to the netDb; True when it took (or dropped) one."""
        if message.type not in _NETDB_REPLY_TYPES:
            return False
        try:
            payload = parse_payload(message)
        except ProtocolError:
            return message.type != MessageType.DELIVERY_STATUS
        return bool(self.netdb.handle(self.netdb.own_hash, payload))

    def close_pools(self, handle: Any) -> None:
        for pool in handle:
            self.tunnels.remove_pool(pool)

    def leases(self, handle: Any) -> list[tuple[bytes, int, float]]:
        return self.tunnels.leases(handle[0])

    def send(self, handle: Any, message: I2NPMessage, gateway: bytes, tunnel_id: int) -> bool:
        # one outbound tunnel per remote lease: a new lease (after a failure) gets a new tunnel too
        return self.tunnels.send_via_outbound(handle[1], message, to_router=gateway, to_tunnel=tunnel_id,
                                              route=(gateway, tunnel_id))

    async def lookup_leaseset(self, handle: Any, dest_hash: bytes, *, fresh: bool = False) -> AnyLeaseSet | None:
        return await self.netdb.lookup_leaseset(dest_hash, handle, fresh=fresh)

    async def publish_leaseset(self, handle: Any, leaseset: LeaseSet2) -> int:
        return await self.netdb.store_leaseset(leaseset, handle)
