"""Floodfill decisions without I/O: answers to DatabaseLookup, flood targets, what may be flooded.

network-database.md "Flooding", "RouterInfo and LeaseSet Lookup", "Exploration"; i2np.rst "DatabaseLookup".
"""
from __future__ import annotations

from typing import Iterable

from core.data.leaseset import AnyLeaseSet
from core.data.routerinfo import RouterInfo
from core.i2np.messages import DatabaseLookup, DatabaseSearchReply, DatabaseStore, LookupType

from .kademlia import closest
from .store import NetDb

FLOOD_REDUNDANCY = 3            # "it looks up several (currently 3) floodfill routers closest to the routing key"
SEARCH_REPLY_PEERS = 3          # i2np.rst DatabaseSearchReply notes: "Typical number of hashes returned: 3"
MAX_FLOOD_RI_AGE_MS = 3600 * 1000   # "never flood ... a RouterInfo published more than one hour ago"
ZERO_HASH = bytes(32)


def answer_lookup(db: NetDb, lookup: DatabaseLookup, *, own_hash: bytes, routing_key: bytes,
                  floodfill: bool, own_router_info: RouterInfo | None = None) -> DatabaseStore | DatabaseSearchReply:
    """The reply to `lookup`: a DatabaseStore of the entry, or a DatabaseSearchReply of peers closer to it.

    Exploration (type 3, or an all-zero excluded hash) names non-floodfill routers only and never the
    entry itself (as i2pd). Only a floodfill serves entries other than our own RouterInfo, and
    leasesets only when they were stored to us, never ones we fetched (network-database.md "Sub-Databases").
    """
    key = lookup.key
    excluded = set(lookup.excluded_peers) | {own_hash, lookup.from_hash, ZERO_HASH}
    if lookup.is_exploratory:
        routers = [ri.hash for ri in db.router_infos.values() if not ri.is_floodfill]
        return DatabaseSearchReply(key, tuple(closest(routing_key, routers, SEARCH_REPLY_PEERS, excluded)), own_hash)
    if lookup.lookup_type in (LookupType.ANY, LookupType.ROUTER_INFO):
        if key == own_hash and own_router_info is not None:
            return DatabaseStore.for_router_info(key, own_router_info.to_bytes())
        ri = db.get_router_info(key) if floodfill else None
        if ri is not None:
            return DatabaseStore.for_router_info(key, ri.to_bytes())
    if floodfill and lookup.lookup_type in (LookupType.ANY, LookupType.LEASE_SET):
        ls = db.get_leaseset(key, include_replies=False)
        if ls is not None:
            return DatabaseStore.for_lease_set(ls)
    floodfills = [ri.hash for ri in db.floodfills()]
    return DatabaseSearchReply(key, tuple(closest(routing_key, floodfills, SEARCH_REPLY_PEERS, excluded)), own_hash)


def flood_targets(db: NetDb, routing_key: bytes, exclude: Iterable[bytes],
                  count: int = FLOOD_REDUNDANCY) -> list[bytes]:
    """The floodfills closest to the entry's routing key (not to us), minus `exclude`."""
    return closest(routing_key, [ri.hash for ri in db.floodfills()], count, exclude)


def may_flood_router_info(ri: RouterInfo, now_ms: int) -> bool:
    return ri.published >= now_ms - MAX_FLOOD_RI_AGE_MS


def may_flood_leaseset(ls: AnyLeaseSet, now_ms: int) -> bool:
    return ls.expires > now_ms and not getattr(ls, "unpublished", False)
