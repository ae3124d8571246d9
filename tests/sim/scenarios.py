"""Scenarios over a SimNetwork, each giving its figures: simulated time, wall time, messages, memory and the
scenario's own measure. The N = 50 test asserts them loosely; benchmarks/bench_sim_network.py prints them."""
from __future__ import annotations

import asyncio
import resource
import time
import tracemalloc
from dataclasses import dataclass, field

from core.tunnel.service import MAX_LOOKUPS

from .network import SimNetwork, SimRouter


@dataclass
class Figures:
    name: str
    simulated_s: float = 0.0
    wall_s: float = 0.0
    messages: int = 0
    peak_rss_mb: float = 0.0
    traced_peak_mb: float | None = None
    result: dict = field(default_factory=dict)

    def line(self) -> str:
        traced = f" traced peak {self.traced_peak_mb:.0f} MB" if self.traced_peak_mb is not None else ""
        per_minute = self.wall_s / (self.simulated_s / 60) if self.simulated_s else 0.0
        result = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.result.items())
        return (f"{self.name}: simulated {self.simulated_s:.0f} s, wall {self.wall_s:.1f} s "
                f"({per_minute:.1f} s per simulated minute), {self.messages} messages, "
                f"peak RSS {self.peak_rss_mb:.0f} MB{traced}; {result}")


class Measure:
    """Times, counts and memory around one scenario."""

    def __init__(self, net: SimNetwork, name: str):
        self.net = net
        self.figures = Figures(name)

    def __enter__(self) -> Figures:
        self._wall = time.perf_counter()
        self._sim = self.net.clock.monotonic()
        self._messages = self.net.delivered
        if tracemalloc.is_tracing():
            tracemalloc.reset_peak()
        return self.figures

    def __exit__(self, *exc) -> None:
        f = self.figures
        f.wall_s = time.perf_counter() - self._wall
        f.simulated_s = self.net.clock.monotonic() - self._sim
        f.messages = self.net.delivered - self._messages
        f.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if tracemalloc.is_tracing():
            f.traced_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20


async def bootstrap(net: SimNetwork, *, share: float = 0.9, limit_s: float = 1800.0, step: float = 1.0,
                    reseed_size: int = 10, progress=None) -> Figures:
    """Every router starts from one reseed of ~10 routers and publishes itself; time until every live router
    knows `share` of the network. `progress(line)`, if given, hears how far it is every simulated minute."""
    with Measure(net, "bootstrap") as figures:
        net.reseed(reseed_size)
        net.publish_all()
        marks: dict[str, float] = {"reported": 0.0}
        start, wall_start = net.clock.monotonic(), time.perf_counter()

        def converged() -> bool:
            known = net.knowledge()
            now = net.clock.monotonic() - start
            median = sorted(known)[len(known) // 2]
            if median >= share and "median_s" not in marks:
                marks["median_s"] = now
            if progress is not None and now - marks["reported"] >= 60.0:
                marks["reported"] = now
                progress(f"  bootstrap at {now:.0f} s: wall {time.perf_counter() - wall_start:.0f} s, known min "
                         f"{min(known):.2f} median {median:.2f}, {net.delivered} messages, peak RSS "
                         f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
            return min(known) >= share
        done = await net.advance(limit_s, step, until=converged)
        known = net.knowledge()
        figures.result = {"converged": done, "time_to_all_s": net.clock.monotonic() - start if done else None,
                          "time_to_median_s": marks.get("median_s"), "min_known": min(known),
                          "median_known": sorted(known)[len(known) // 2]}
    return figures


def _lookup_rate(results: list) -> float:
    return sum(1 for r in results if r) / len(results) if results else 0.0


async def _run_lookups(net: SimNetwork, coroutines: list, limit_s: float, step: float) -> list:
    """Results (None for a failure); `net.instant_messages`: what was delivered before the clock moved, all of
    it their own (no periodic work runs while time stands still)."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    before = net.delivered
    await net.settle()
    net.instant_messages = net.delivered - before
    await net.advance(limit_s, step, until=lambda: all(t.done() for t in tasks))
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return [r if not isinstance(r, BaseException) else None for r in results]


async def publish_destinations(net: SimNetwork, owners: list[SimRouter], *, limit_s: float = 60.0,
                               step: float = 1.0) -> list:
    """One destination per owner, its LeaseSet2 stored at the floodfills; [(owner, keys, leaseset)]."""
    hosted = [(owner, *net.make_leaseset(owner, 10_000 + owner.index)) for owner in owners]
    await _run_lookups(net, [owner.netdb.store_leaseset(ls) for owner, _, ls in hosted], limit_s, step)
    return hosted


async def floodfill_churn(net: SimNetwork, *, share: float = 0.2, lookups: int = 100, limit_s: float = 120.0,
                          step: float = 1.0, after_s: float = 60.0) -> Figures:
    """`share` of the floodfills go away; `after_s` later (tunnel tests retire the tunnels that crossed them
    every 30 s), RouterInfo and LeaseSet lookups from the others still succeed."""
    with Measure(net, "floodfill churn") as figures:
        rnd = net.random
        clients = [r for r in net.live() if not r.floodfill]
        hosted = await publish_destinations(net, rnd.sample(clients, min(lookups, len(clients))))
        gone = rnd.sample(net.floodfills(), max(1, round(len(net.floodfills()) * share)))
        net.down.update(r.hash for r in gone)
        await net.advance(after_s, step)
        # the askers are not floodfills: removing an entry from a floodfill's netDb would take a copy off the network
        live = [r for r in net.live() if not r.floodfill]
        ri_lookups, ls_lookups = [], []
        for _ in range(lookups):
            asker, target = rnd.sample(live, 2)
            asker.db.remove_router_info(target.hash)      # it must be searched for, not found at home
            ri_lookups.append(asker.netdb.lookup_router_info(target.hash))
        for _ in range(lookups):
            asker = rnd.choice(live)
            owner, _, ls = rnd.choice(hosted)
            if owner is asker:
                continue
            asker.db.leasesets.pop(ls.hash, None)
            ls_lookups.append(asker.netdb.lookup_leaseset(ls.hash))
        results = await _run_lookups(net, ri_lookups + ls_lookups, limit_s, step)
        ri_results, ls_results = results[:len(ri_lookups)], results[len(ri_lookups):]
        figures.result = {"floodfills_down": len(gone), "router_info_success": _lookup_rate(ri_results),
                          "leaseset_success": _lookup_rate(ls_results),
                          "messages_per_lookup": net.instant_messages / max(1, len(results))}
        net.down.difference_update(r.hash for r in gone)
    return figures


def _build_counts(net: SimNetwork, routers) -> tuple[int, int]:
    stats = [r.tunnels.stats for r in routers]
    return (sum(s["builds_succeeded"] for s in stats),
            sum(s["builds_timed_out"] + s["builds_rejected"] for s in stats))


async def tunnel_builds(net: SimNetwork, *, share: float = 0.2, window_s: float = 180.0,
                        step: float = 1.0, after_s: float = 0.0) -> Figures:
    """`share` of all routers go away; the share of exploratory builds (2 hops) that succeed among those the
    others finish in `window_s`, starting `after_s` later (a failure counts when its build times out)."""
    with Measure(net, "tunnel builds") as figures:
        gone = net.random.sample(net.routers, round(len(net.routers) * share))
        net.down.update(r.hash for r in gone)
        live = net.live()
        await net.advance(after_s, step)
        ok_before, failed_before = _build_counts(net, live)
        await net.advance(window_s, step)
        ok, failed = _build_counts(net, live)
        ok, failed = ok - ok_before, failed - failed_before
        with_tunnels = sum(1 for r in live if r.tunnels.reply_tunnel(None) is not None
                           and r.tunnels.exploratory_inbound.core.usable(net.clock.monotonic()))
        figures.result = {"routers_down": len(gone), "builds": ok + failed,
                          "build_success": ok / (ok + failed) if ok + failed else 0.0,
                          "routers_with_inbound_tunnel": with_tunnels / len(live)}
        net.down.difference_update(r.hash for r in gone)
    return figures


async def leaseset_storm(net: SimNetwork, *, destinations: int = 100, limit_s: float = 120.0,
                         step: float = 1.0) -> Figures:
    """Many destinations publish, then each looks another up at the same moment."""
    with Measure(net, "leaseset storm") as figures:
        rnd = net.random
        clients = [r for r in net.live() if not r.floodfill]     # as in floodfill_churn
        owners = rnd.sample(clients, min(destinations, len(clients)))
        hosted = await publish_destinations(net, owners)
        coroutines = []
        for index, (owner, _, _) in enumerate(hosted):
            _, _, ls = hosted[(index + 1 + rnd.randrange(len(hosted) - 1)) % len(hosted)]
            owner.db.leasesets.pop(ls.hash, None)
            coroutines.append(owner.netdb.lookup_leaseset(ls.hash))
        results = await _run_lookups(net, coroutines, limit_s, step)
        figures.result = {"lookups": len(results), "success": _lookup_rate(results),
                          "messages_per_lookup": net.instant_messages / max(1, len(results))}
    return figures


def bounds(net: SimNetwork) -> dict[str, tuple[int, int]]:
    """Per kept thing: (largest over routers, its configured limit)."""
    netdb_settings = net.settings.netdb
    tunnel_settings = net.settings.tunnels
    first = net.routers[0]
    limits = {"router_infos": first.db.max_routers, "leasesets": first.db.max_leasesets,
              "profiles": first.profiles.max_profiles, "lookups": netdb_settings.max_lookups,
              "pending_stores": netdb_settings.max_pending_stores,
              "requesters": netdb_settings.max_tracked_requesters,
              "referrals": netdb_settings.max_lookups * netdb_settings.max_referral_fetches_per_reply,
              "pending_builds": tunnel_settings.max_pending_builds, "tunnel_tests": tunnel_settings.max_tests,
              "own_tunnels": 4 * (tunnel_settings.exploratory_quantity + 2),
              "transit_tunnels": first.tunnels.transit.policy.max_tunnels, "next_hop_waits": MAX_LOOKUPS, "reply_keys": first.garlic.reply_keys.capacity,
              "sessions": net.settings.max_sessions,
              # the decaying Bloom filters keep this period's keys and the last one's
              "build_replays": 2 * first.tunnels.transit._build_replays.capacity,
              "data_replays": 2 * first.tunnels.transit._data_replays.capacity,
              "garlic_replays": first.garlic._replay.capacity, "used_tags": 2 * first.garlic._used_tags.capacity}
    peaks = {key: 0 for key in limits}
    for router in net.routers:
        for key, value in router.state().items():
            peaks[key] = max(peaks[key], value)
    return {key: (peaks[key], limits[key]) for key in limits}


async def run_all(net: SimNetwork, *, bootstrap_limit_s: float = 1800.0, lookups: int = 100,
                  destinations: int = 100, step: float = 1.0, report=print) -> list[Figures]:
    figures = [await bootstrap(net, limit_s=bootstrap_limit_s, step=step, progress=report)]
    report(figures[-1].line())
    figures.append(await floodfill_churn(net, lookups=lookups, step=step))
    report(figures[-1].line())
    figures.append(await tunnel_builds(net, step=step))
    report(figures[-1].line())
    figures.append(await leaseset_storm(net, destinations=destinations, step=step))
    report(figures[-1].line())
    return figures
