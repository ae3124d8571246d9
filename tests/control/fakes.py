"""A FakeRouter that satisfies core.control.api.ControlledRouter with fixed, checkable figures."""
from __future__ import annotations

import dataclasses

from core.control.api import (DestinationRecord, NetStatus, PeerRecord, RouterSnapshot, SettingError,
                              TunnelRecord)

ROUTER_HASH = bytes(range(32))
HOP_A, HOP_B, HOP_C = b"\xa0" * 32, b"\xb1" * 32, b"\xfc" * 32


class FakeRouter:
    def __init__(self) -> None:
        self.state = RouterSnapshot(
            router_hash=ROUTER_HASH, version="0.9.66", uptime_s=3723.5, status_text="Running",
            net_status=NetStatus.FIREWALLED, known_routers=120, floodfills=9, leasesets=4,
            active_peers=11, fast_peers=7, high_capacity_peers=15, is_reseeding=False,
            participating_tunnels=3, build_success_ratio=0.84, bw_in_1s=1500.0, bw_in_15s=1200.5,
            bw_out_1s=900.0, bw_out_15s=800.25, bytes_received=10_000, bytes_sent=5_000,
        )
        self.peer_list = [
            PeerRecord(HOP_A, "NTCP2", False, "XfR", "127.0.0.2:12345", 1_750_000_000.0),
            PeerRecord(HOP_B, "NTCP2", True, "LU", "127.0.0.3:23456", 1_750_000_100.5),
            PeerRecord(HOP_C, "SSU2", False, "PfR", "127.0.0.4:34567", 1_750_000_200.0),
        ]
        self.tunnel_list = [
            TunnelRecord(1001, "inbound", (HOP_A, HOP_B), "established", 1_750_000_600.0, "exploratory"),
            TunnelRecord(1002, "outbound", (HOP_C,), "building", 1_750_000_660.0, "shared clients"),
            TunnelRecord(1003, "outbound", (), "established", 1_750_000_700.0, "exploratory"),
        ]
        self.destination_list = [DestinationRecord("a" * 52 + ".b32.i2p", "shared clients")]
        self.settings = {
            "i2p.router.net.ntcp.port": "12345", "i2p.router.net.ntcp.hostname": "127.0.0.1",
            "i2p.router.net.ntcp.autoip": "false", "i2p.router.net.ssu.port": "12345",
            "i2p.router.net.ssu.hostname": "127.0.0.1", "i2p.router.net.ssu.autoip": "false",
            "i2p.router.net.ssu.detectedip": "", "i2p.router.net.upnp": "false",
            "i2p.router.net.bw.share": "80", "i2p.router.net.bw.in": "256", "i2p.router.net.bw.out": "128",
            "i2p.router.net.laptopmode": "false",
        }
        self.applied: list[dict] = []
        self.actions: list[str] = []
        self.snapshot_calls = 0

    def update(self, **changes) -> None:
        self.state = dataclasses.replace(self.state, **changes)

    def snapshot(self) -> RouterSnapshot:
        self.snapshot_calls += 1
        return self.state

    def peers(self):
        return list(self.peer_list)

    def tunnels(self):
        return list(self.tunnel_list)

    def destinations(self):
        return list(self.destination_list)

    def network_settings(self):
        return dict(self.settings)

    def apply_network_settings(self, changes):
        if changes.get("i2p.router.net.upnp") == "true":
            raise SettingError("UPnP is not supported")
        self.applied.append(dict(changes))
        self.settings.update(changes)
        return any(key.endswith((".port", ".hostname")) for key in changes)

    async def shutdown(self):
        self.actions.append("shutdown")

    async def shutdown_graceful(self):
        self.actions.append("shutdown_graceful")

    async def restart(self):
        self.actions.append("restart")

    async def restart_graceful(self):
        self.actions.append("restart_graceful")

    async def reseed(self):
        self.actions.append("reseed")
