"""netDb over garlic and tunnels against i2pd 2.45.1: (a) a pyi2p floodfill, the testnet's only one, stores
i2pd's garlic-wrapped LeaseSet stores and answers its ECIES-encrypted lookups, so two i2pd destinations reach
each other; (b) our client's LeaseSet goes to the i2pd floodfills through tunnels and i2pd finds it."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

from core.config import load_config
from core.datagram import PROTO_RAW
from core.router import Router
from tests.client.routers import ClientRouter, two_hop_leases, wait_for
from tests.interop.test_client_i2pd import OPTIONS, SETTINGS, SamDatagrams, _first_contact, _send_until_received
from tests.interop.test_netdb import pyi2p_floodfill_net  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.interop,
              pytest.mark.i2pd_defect('i2pd 2.45.1 sometimes never publishes a fresh SAM destination\'s LeaseSet ("Destination is not ready", testnet README pitfall 5)')]


async def test_two_i2pd_destinations_meet_through_a_pyi2p_floodfill(pyi2p_floodfill_net):
    net = pyi2p_floodfill_net
    with net.in_netns():
        sender, receiver = await asyncio.gather(SamDatagrams.create(net.sam_port("r2"), "DATAGRAM", "ffa"),
                                                SamDatagrams.create(net.sam_port("r3"), "DATAGRAM", "ffb"))
        started = time.monotonic()
        message = os.urandom(200)
        try:
            # r2's destination finds r3's LeaseSet at p1 only: p1 stored it (garlic-wrapped store) and answered
            # r2's lookup (an ECIES-encrypted reply into r2's inbound tunnel)
            receiver, (source, payload) = await _first_contact(lambda: asyncio.sleep(0, receiver), lambda sam: (
                _send_until_received(lambda: asyncio.ensure_future(sender.send(sam.destination, message)),
                                     sam.receive, attempts=8, wait=8.0)))
            assert payload == message and source == sender.destination
            print(f"\ni2pd -> i2pd datagram through the pyi2p floodfill after {time.monotonic() - started:.1f} s")
        finally:
            sender.close()
            receiver.close()


async def test_our_leaseset_reaches_i2pd_floodfills_through_tunnels(testnet, tmp_path):
    address = testnet.add_pyi2p_address()
    with testnet.in_netns():
        router = Router(load_config(tmp_path / "client", {"netid": testnet.netid, "host": address, "port": 24300,
                                                          "reseed_file": str(testnet.seed_file), "control_port": 0}),
                        tunnel_settings=SETTINGS)
        node = ClientRouter(router)
        raw_task = lookup_task = None
        try:
            await router.start()
            raw_task = asyncio.create_task(SamDatagrams.create(testnet.sam_port("r4"), "RAW", "raw"))
            lookup_task = asyncio.create_task(SamDatagrams.create(testnet.sam_port("r3"), "RAW", "looked"))
            session = await node.api.open_session(options=OPTIONS, name="tunneled")
            await wait_for(lambda: two_hop_leases(session), 120, interval=0.2)
            await asyncio.wait_for(session.wait_published(), 60)
            stats = router.netdb_service.stats
            await wait_for(lambda: stats["stores_via_tunnels"] >= 1 and stats["stores_confirmed"] >= 1, 60)
            # i2pd finds our LeaseSet at its floodfills and reaches us
            first_raw = await raw_task
            raw, first = await _first_contact(lambda: asyncio.sleep(0, first_raw), lambda sam: (
                _send_until_received(lambda: asyncio.ensure_future(sam.send(session.destination, b"found you")),
                                     lambda t: asyncio.wait_for(session.receive_datagram(), t))))
            assert first.payload == b"found you" and first.protocol == PROTO_RAW
            # and our lookup of another i2pd destination, never heard from, goes through tunnels with an
            # encrypted reply
            first_lookup = await lookup_task
            try:
                target, got = await _first_contact(lambda: asyncio.sleep(0, first_lookup), lambda sam: (
                    _send_until_received(lambda: session.send_datagram(sam.destination.hash, b"looked up",
                                                                       protocol=PROTO_RAW), sam.receive, attempts=6)))
            except AssertionError as exc:
                raise AssertionError(f"{exc}: netDb {dict(stats)} dropped {dict(router.netdb_service.dropped)} "
                                     f"garlic {dict(router.garlic.stats)} session {dict(session.stats)}") from None
            assert got == (None, b"looked up")
            assert stats["lookups_via_tunnels"] >= 1 and router.garlic.stats["reply"] >= 1
            target.close()
            raw.close()
        finally:
            for task in (raw_task, lookup_task):
                if task is not None:
                    task.cancel()
            await node.stop()
