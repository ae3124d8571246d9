"""`pyi2p status --json` on a router in the testnet reports the i2pd routers it is connected to (NTCP2 or SSU2)."""
from __future__ import annotations

import asyncio
import json
import sys

import pytest

from core.config import load_config
from core.data.encoding import b64encode
from core.router import Router

pytestmark = pytest.mark.interop


async def test_status_json_lists_connected_i2pd_peers(testnet, tmp_path):
    i2pd = {r.ident_hash for r in testnet.i2pd_routers}
    address = testnet.add_pyi2p_address()
    datadir = tmp_path / "p"
    with testnet.in_netns():
        router = Router(load_config(datadir, {"netid": testnet.netid, "host": address, "port": 24100,
                                              "reseed_file": str(testnet.seed_file), "control_port": 0}))
        await router.start()
        try:
            async with asyncio.timeout(30):
                while len(router.transports.sessions) < 2:
                    await asyncio.sleep(0.2)
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", testnet.netns, sys.executable, "-m", "pyi2p", "status",
                "--datadir", str(datadir), "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            status = json.loads(out)
            assert {p["Transport"] for p in status["Peers"]} <= {"NTCP2", "SSU2"}   # both on by default
            peers = {p["Hash"] for p in status["Peers"]}
            connected = {b64encode(h) for h in router.transports.sessions}
            assert len(peers) >= 2 and peers <= i2pd and peers <= connected
            assert status["Summary"]["RouterHash"] == b64encode(router.hash)
            assert status["Summary"]["KnownRouters"] >= len(i2pd)
            assert status["RouterInfo"]["i2p.router.netdb.knownpeers"] >= len(i2pd)
            assert status["RouterInfo"]["i2p.router.netdb.activepeers"] == len(peers)
        finally:
            await router.stop()
