"""NTCP2 against real i2pd 2.45.1 on the private testnet: both directions, RouterInfo exchange, idle survival."""
from __future__ import annotations

import asyncio
import os

import pytest

from core.config import load_config
from core.data.encoding import b64encode
from core.data.routerinfo import RouterInfo
from core.i2np.messages import DatabaseLookup, DatabaseStore, LookupType
from core.i2np.registry import parse_payload
from core.router import Router

pytestmark = pytest.mark.interop

IDLE_S = float(os.environ.get("PYI2P_IDLE_TEST_S", "130"))   # i2pd ends sessions silent for 120 s


async def wait_for(predicate, timeout: float, step: float = 0.2):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


def i2pd_hashes(testnet) -> dict[bytes, str]:
    from core.data.encoding import b64decode
    return {b64decode(r.ident_hash): r.name for r in testnet.i2pd_routers}


async def test_ntcp2_both_directions_with_i2pd(testnet, tmp_path):
    """pyi2p dials the i2pd floodfills, then an i2pd router dials pyi2p; RouterInfos cross both ways."""
    i2pd = i2pd_hashes(testnet)
    address = testnet.add_pyi2p_address()
    with testnet.in_netns():
        config = load_config(tmp_path / "p", {"netid": testnet.netid, "host": address, "port": 24000,
                                              "reseed_file": str(testnet.seed_file), "control_port": 0})
        router = Router(config)
        received: list[tuple[bytes, bytes]] = []   # (peer, RouterInfo bytes) from RouterInfo blocks and stores
        on_router_info, on_message = router.handle_router_info, router.handle_message

        def record_block(peer, data):
            received.append((peer, data))
            on_router_info(peer, data)

        def record_store(peer, message):
            payload = parse_payload(message)
            if isinstance(payload, DatabaseStore) and payload.is_router_info:
                received.append((peer, payload.router_info_bytes()))
            on_message(peer, message)
        router.handle_router_info, router.handle_message = record_block, record_store
        await router.start()
        try:
            assert set(i2pd) <= set(router.netdb.router_infos)
            # outbound: publishing our RouterInfo dials the closest floodfills (tunnel builds may dial others first)
            floodfills = {h for h, name in i2pd.items() if testnet.router(name).floodfill}
            await wait_for(lambda: any(not c.inbound and h in floodfills
                                       for h, c in router.transports.sessions.items()), 30)
            outbound = [h for h, c in router.transports.sessions.items() if not c.inbound]
            assert all(h in i2pd for h in outbound)
            # SSU2 is on as well: the i2pd routers publish both, and NTCP2 is dialled first
            assert all(router.transports.sessions[h].transport_style == "NTCP2" for h in outbound)
            # the first frames carry the peer's RouterInfo, and it verifies
            await wait_for(lambda: any(peer in outbound for peer, _ in received), 15)
            for peer, data in received:
                ri = RouterInfo.parse(data)
                assert ri.verify() and ri.netid == testnet.netid
            # i2pd shows us as an established NTCP2 peer
            me = b64encode(router.hash)
            name = i2pd[outbound[0]]
            await wait_for(lambda: any(me.startswith(p) for p in testnet.i2pd_peers(name)), 15, step=1.0)

            # inbound: a second router, known to nobody and dialling nobody, whose RouterInfo we store at
            # the floodfill; a lookup from "it" makes the floodfill dial it to deliver the direct reply
            flood_name = next(name for h, name in i2pd.items() if h in outbound and testnet.router(name).floodfill)
            flood_hash = next(h for h, name in i2pd.items() if name == flood_name)
            other = Router(load_config(tmp_path / "q", {"netid": testnet.netid, "host": testnet.add_pyi2p_address(),
                                                        "port": 24001, "control_port": 0}))
            await other.start()
            try:
                router.transports.send(flood_hash, router.new_message(
                    DatabaseStore.for_router_info(other.hash, other.router_info.to_bytes())))
                await asyncio.sleep(1.0)
                router.transports.send(flood_hash, router.new_message(
                    DatabaseLookup(flood_hash, other.hash, LookupType.ROUTER_INFO)))
                await wait_for(lambda: flood_hash in other.transports.sessions, 30)
                conn = other.transports.sessions[flood_hash]
                assert conn.inbound and not conn.closed
                await wait_for(lambda: other.netdb.get_router_info(flood_hash) is not None, 15)
            finally:
                await other.stop()

            # NTCP2 sessions survive two minutes without I2NP traffic (i2pd may have dialled us over SSU2)
            watched = {h: c for h, c in router.transports.sessions.items() if c.transport_style == "NTCP2"}
            assert watched
            await asyncio.sleep(IDLE_S)
            still = [h for h, c in watched.items() if not c.closed]
            assert still, "every NTCP2 session closed while idle"
            assert any(me.startswith(p) for p in testnet.i2pd_peers(i2pd[still[0]]))
        finally:
            await router.stop()
