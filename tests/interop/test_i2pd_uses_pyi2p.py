"""i2pd uses a pyi2p router, with each i2pd version (`each_i2pd_testnet`): its floodfills store, answer and save
our RouterInfo, and its routers build their tunnels through us.

What differs between the versions: i2pd 2.45.1 built tunnels through a newly joined pyi2p router within
seconds on its own; 2.58 builds new tunnels only when its pools need them (its tunnels last 10 minutes and are
rebuilt shortly before they expire, or when tests of them fail), so on a testnet whose pools are full it builds
none for minutes, through any router: on three 2.58 routers, in 4 of 5 trials of 15-150 s none built through a
newly joined pyi2p router on its own (in one, no new tunnel at all in the 60 s after it joined). That is i2pd's timing, not our RouterInfo (caps, version and address pass 2.58's hop filters):
asked for tunnels (a fresh SAM destination on each i2pd), 2.58 builds through us as 2.45.1 does.
2.58 also marks a router unreachable when its own dial to it loses a race with the router's dial to it (seen
at start, when our first tunnel builds make an i2pd hop send to us before we reached it: "NTCP2: Session with
<us> already exists. Replaced", "SessionCreated read error: Operation canceled", "Transports: No compatible
addresses available"); with no second transport to try (pyi2p publishes NTCP2 only, no SSU2) it then neither
picks us as a hop nor saves our RouterInfo, until a later netDb save makes us reachable again (below 90
routers) and our RouterInfo arrives anew.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from core.data.encoding import b64decode, b64encode
from core.data.routerinfo import RouterInfo
from core.netdb.lookup import LookupState
from pyi2p.testnet import i2pd_version, netdb_file
from tests.interop.test_tunnels import PyRouter, client_pools, connect, i2pd_hashes, running, wait_for

pytestmark = [pytest.mark.interop,
              pytest.mark.i2pd_defect("i2pd 2.58 marks a router unreachable when its dial to it loses a race with "
                                      "that router's dial to it, then drops its RouterInfo (docstring above)")]


async def test_i2pd_stores_saves_and_builds_through_a_pyi2p_router(each_i2pd_testnet, tmp_path):
    testnet = each_i2pd_testnet
    i2pd = i2pd_hashes(testnet)
    floodfills = {b64decode(r.ident_hash) for r in testnet.i2pd_routers if r.floodfill}
    me = PyRouter(testnet, tmp_path, "used", 24110)
    with testnet.in_netns():
        async with running(me):
            started = time.monotonic()
            service, netdb = me.service, me.router.netdb_service
            assert service is not None
            # published with reply tokens: both floodfills confirm, then answer a lookup with our RouterInfo
            await wait_for(lambda: set(netdb.published_to) == floodfills, 30, state=lambda: netdb.stats)
            for floodfill in floodfills:
                lookup = netdb.verify_router_info(floodfill)
                await wait_for(lambda: lookup.done, 15)
                assert lookup.state == LookupState.FOUND and lookup.found_from == floodfill, i2pd[floodfill]
            for peer in i2pd:  # every i2pd gets our RouterInfo in the session, not only the floodfills
                assert await connect(me.router, peer)

            def carrying() -> bool:
                return any(r.messages_in > 0 and r.messages_out > 0 for r in service.transit_records())
            # i2pd builds when its pools run short; a fresh SAM destination on each i2pd asks for new 3-hop
            # client tunnels now, from routers it knows (ours among them), instead of at its pools' next expiry
            async with client_pools(testnet, "used"):
                await wait_for(carrying, 100, step=1.0, state=lambda: (service.transit.stats, service.summary()))
            carrying_after = time.monotonic() - started
            records = service.transit_records()
            assert service.participating_tunnels == len(records) >= 1
            assert service.transit.stats.builds_accepted >= 1
            assert service.transit.stats.messages_forwarded >= 1 and service.transit_bytes_per_tunnel() > 0
            # the next hops we forward to are routers of the testnet that our netDb knows (or ourselves)
            assert all(r.next_hash == me.router.hash or me.router.netdb.get_router_info(r.next_hash) is not None
                       for r in records)
            assert service.transit.stats.builds_undecryptable == 0 and service.stats["malformed"] == 0

            # i2pd writes new and updated RouterInfos to its netDb folder once a minute
            ours = b64encode(me.router.hash)
            paths = [netdb_file(r.datadir, ours) for r in testnet.i2pd_routers if r.floodfill]
            await wait_for(lambda: all(p.exists() for p in paths), 90, step=1.0)
            for path in paths:
                saved = RouterInfo.parse(path.read_bytes())
                assert saved.hash == me.router.hash and saved.verify()
            print(f"\n{i2pd_version(testnet.i2pd)}: floodfills confirmed and answered; tunnels through us carried "
                  f"traffic {carrying_after:.0f} s after start ({len(records)} transit tunnels); both floodfills "
                  f"saved our RouterInfo {time.monotonic() - started:.0f} s after start")
