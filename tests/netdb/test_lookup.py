"""The iterative lookup state machine under replies, lost replies and timeouts (simulated time)."""
from hypothesis import given, settings
from hypothesis import strategies as st

from core.i2np.messages import MAX_EXCLUDED_PEERS, LookupType
from core.netdb.kademlia import xor_distance
from core.netdb.lookup import Lookup, LookupSettings, LookupState

KEY = b"\x42" * 32
TARGET = bytes(32)      # routing key used by these tests


def peer(n: int) -> bytes:
    """Peers numbered by closeness to TARGET: peer(1) is closest."""
    return n.to_bytes(32, "big")


def new_lookup(n_candidates=6, **kw) -> Lookup:
    lookup = Lookup(KEY, kw.pop("lookup_type", LookupType.ROUTER_INFO), TARGET, started=0.0,
                    settings=kw.pop("settings", LookupSettings()), **kw)
    lookup.add_candidates([peer(i) for i in range(n_candidates, 0, -1)])
    return lookup


def test_asks_the_three_closest_first_then_one_more_per_timeout():
    lookup = new_lookup()
    assert lookup.next_queries(0.0) == [peer(1), peer(2), peer(3)]
    assert lookup.next_queries(0.1) == []              # three in flight already
    assert lookup.tick(4.9) == []
    assert lookup.tick(5.0) == [peer(1), peer(2), peer(3)]
    assert lookup.tick(5.1) == []                      # each timeout reported once
    assert lookup.next_queries(5.0) == [peer(4), peer(5), peer(6)]
    assert lookup.state == LookupState.RUNNING


def test_store_finishes_the_lookup():
    lookup = new_lookup()
    lookup.next_queries(0.0)
    lookup.on_store(1.5, peer(2))
    assert lookup.state == LookupState.FOUND and lookup.found_from == peer(2) and lookup.finished_at == 1.5
    assert lookup.next_queries(2.0) == [] and not lookup.in_flight


def test_search_reply_frees_a_slot_and_returns_only_new_referrals():
    lookup = new_lookup(n_candidates=3)
    lookup.next_queries(0.0)
    new = lookup.on_search_reply(0.5, peer(1), [peer(2), peer(100), peer(101), KEY])
    assert new == [peer(100), peer(101)]                  # asked peers and the key itself are not referrals
    assert peer(1) in lookup.replied and peer(1) not in lookup.in_flight
    assert lookup.on_search_reply(0.6, peer(1), [peer(102)]) == []    # one reply per peer counts
    lookup.add_candidates([peer(100)])
    assert lookup.next_queries(0.7) == [peer(100)]


def test_reply_from_a_peer_never_asked_is_ignored():
    lookup = new_lookup()
    lookup.next_queries(0.0)
    assert lookup.on_search_reply(0.2, peer(50), [peer(60)]) == []
    assert peer(50) not in lookup.replied


def test_late_reply_after_timeout_is_still_used():
    lookup = new_lookup(n_candidates=1)
    lookup.await_referral(peer(77))                     # keeps the lookup alive while a referral is fetched
    assert lookup.next_queries(0.0) == [peer(1)]
    assert lookup.tick(5.0) == [peer(1)]
    assert lookup.latency(peer(1), 6.0) == 6.0
    assert lookup.on_search_reply(6.0, peer(1), [peer(9)]) == [peer(9)]


def test_all_replies_lost_fails_at_the_total_timeout():
    lookup = new_lookup(n_candidates=20, settings=LookupSettings(max_queries=100, total_timeout_s=20.0))
    now, asked = 0.0, []
    while lookup.state == LookupState.RUNNING and now < 100:
        asked += lookup.next_queries(now)
        lookup.tick(now)
        now += 0.5
    assert lookup.state == LookupState.FAILED and lookup.finished_at == 20.0
    assert len(asked) == 12                             # 4 rounds of 3 within 20 s


def test_max_queries_bounds_a_lookup_and_exhaustion_fails_it():
    lookup = new_lookup(n_candidates=20, settings=LookupSettings(max_queries=4))
    asked = lookup.next_queries(0.0)
    lookup.tick(5.0)
    asked += lookup.next_queries(5.0)
    assert len(asked) == 4
    lookup.tick(10.0)
    assert lookup.state == LookupState.FAILED


def test_no_candidates_fails_at_once():
    lookup = new_lookup(n_candidates=0)
    assert lookup.next_queries(0.0) == [] and lookup.state == LookupState.FAILED


def test_bad_and_preferred_peers_change_the_order():
    lookup = Lookup(KEY, LookupType.LEASE_SET, TARGET, 0.0, preferred={peer(9)})
    lookup.add_candidates([peer(1), peer(2), peer(3), peer(9)], bad=[peer(1)])
    assert lookup.next_queries(0.0) == [peer(9), peer(2), peer(3)]
    lookup.tick(5.0)
    assert lookup.next_queries(5.0) == [peer(1)]


def test_send_failure_moves_on_to_the_next_peer():
    lookup = new_lookup(n_candidates=4, settings=LookupSettings(parallelism=1))
    assert lookup.next_queries(0.0) == [peer(1)]
    lookup.on_send_failed(peer(1), 0.0)
    assert lookup.next_queries(0.0) == [peer(2)]


def test_exploration_ends_after_enough_replies_and_keeps_discoveries():
    excluded = tuple(peer(1000 + i) for i in range(600))
    lookup = new_lookup(lookup_type=LookupType.EXPLORATION, extra_excluded=excluded,
                        settings=LookupSettings(parallelism=2, exploration_replies=2))
    first = lookup.next_queries(0.0)
    assert first == [peer(1), peer(2)]
    sent = lookup.excluded_peers()
    assert len(sent) == MAX_EXCLUDED_PEERS and sent[:2] == (peer(1), peer(2))
    lookup.on_store(0.1, peer(1))                        # stores do not end an exploration
    assert lookup.state == LookupState.RUNNING
    lookup.on_search_reply(0.2, peer(1), [peer(500), peer(501)])
    lookup.on_search_reply(0.3, peer(2), [peer(501), peer(502)])
    assert lookup.state == LookupState.FOUND
    assert lookup.discovered == [peer(500), peer(501), peer(502)]


def test_exploration_with_one_reply_then_silence_still_succeeds():
    lookup = new_lookup(n_candidates=2, lookup_type=LookupType.EXPLORATION,
                        settings=LookupSettings(parallelism=2, exploration_replies=2))
    lookup.next_queries(0.0)
    lookup.on_search_reply(0.2, peer(1), [peer(500)])
    lookup.tick(5.0)
    assert lookup.state == LookupState.FOUND and lookup.discovered == [peer(500)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["tick", "reply", "store", "send_fail", "add"]),
                          st.integers(1, 30), st.floats(0, 3)), max_size=60))
def test_random_event_sequences_keep_the_invariants(events):
    lookup = new_lookup(n_candidates=10, settings=LookupSettings(max_queries=8))
    now = 0.0
    for kind, n, dt in events:
        now += dt
        if kind == "tick":
            lookup.tick(now)
        elif kind == "reply":
            lookup.on_search_reply(now, peer(n), [peer(n + 40)])
        elif kind == "store":
            lookup.on_store(now, peer(n))
        elif kind == "send_fail":
            lookup.on_send_failed(peer(n), now)
        else:
            lookup.add_candidates([peer(n + 40)])
        lookup.next_queries(now)
        assert len(lookup.in_flight) <= lookup.settings.parallelism
        assert len(lookup.sent_at) <= lookup.settings.max_queries
        assert set(lookup.in_flight) <= set(lookup.sent_at)
        if lookup.done:
            assert not lookup.in_flight and lookup.finished_at is not None
    lookup.tick(now + 100)
    assert lookup.done                                  # every lookup ends by the total timeout
    asked = list(lookup.sent_at)
    assert len(asked) == len(set(asked))
    assert all(xor_distance(p, TARGET) >= 0 for p in asked)
