"""Two ratchet sessions in memory through their whole life: NS, NSR, ES, ratchets, loss, expiry, termination."""
from __future__ import annotations

import random

import pytest

from core.crypto import elligator2
from core.garlic.blocks import Ack, AckRequest, NextKey, Padding, Termination
from core.garlic.session import MessageKind, RatchetConfig, SessionNotReady, SessionState

from .helpers import Pair, bodies, clove


def test_handshake_then_existing_session_both_ways():
    p = Pair()
    ns = p.alice.encrypt(p.b_key(), [clove(b"GET /")])
    assert ns.kind is MessageKind.NEW_SESSION
    received = p.bob.decrypt(ns.data)
    assert received.kind is MessageKind.NEW_SESSION
    assert bodies(received) == [b"GET /"]
    assert received.remote_static_key == p.a_key()
    assert type(received.blocks[0]).__name__ == "DateTime"

    nsr = p.bob.encrypt(p.a_key(), [clove(b"200 OK")])
    assert nsr.kind is MessageKind.NEW_SESSION_REPLY
    received = p.alice.decrypt(nsr.data)
    assert received.kind is MessageKind.NEW_SESSION_REPLY and bodies(received) == [b"200 OK"]
    assert p.alice.session(p.b_key()).established
    assert p.alice.session(p.b_key()).wants_reply  # Bob waits for our first ES

    # Bob must not send ES before Alice's first ES arrives: more NSRs meanwhile
    assert p.bob.encrypt(p.a_key(), [clove(b"more")]).kind is MessageKind.NEW_SESSION_REPLY

    es = p.alice.encrypt(p.b_key(), [clove(b"ack")])
    assert es.kind is MessageKind.EXISTING_SESSION and es.ack_id == (0, 0)
    assert bodies(p.bob.decrypt(es.data)) == [b"ack"]
    assert p.bob.session(p.a_key()).established

    for i in range(300):
        m = p.bob.encrypt(p.a_key(), [clove(b"b%d" % i)])
        assert m.kind is MessageKind.EXISTING_SESSION
        assert bodies(p.alice.decrypt(m.data)) == [b"b%d" % i]
        m = p.alice.encrypt(p.b_key(), [clove(b"a%d" % i)])
        assert bodies(p.bob.decrypt(m.data)) == [b"a%d" % i]
    assert p.alice.stats["tagged_failed"] == p.bob.stats["tagged_failed"] == 0


def test_message_sizes_follow_the_spec_layouts():
    p = Pair(config=RatchetConfig(padding_max=0))
    c = clove(b"x" * 100)
    payload_len = len(c.to_block())
    ns = p.alice.encrypt(p.b_key(), [c])
    assert len(ns.data) == 96 + 7 + payload_len            # ecies.rst "1b": 96 + payload (DateTime + clove)
    p.bob.decrypt(ns.data)
    nsr = p.bob.encrypt(p.a_key(), [c])
    assert len(nsr.data) == 72 + payload_len               # "1g": 72 + payload
    p.alice.decrypt(nsr.data)
    es = p.alice.encrypt(p.b_key(), [c])
    assert len(es.data) == 24 + payload_len                # "1h": 8 + payload + 16


def test_ephemeral_keys_are_elligator2_and_fresh_per_message():
    p = Pair()
    first = p.alice.encrypt(p.b_key(), [clove(b"1")]).data
    second = p.alice.encrypt(p.b_key(), [clove(b"2")]).data
    assert first[:32] != second[:32]
    for data in (first, second):
        point = elligator2.decode(data[:32])
        masked = data[:31] + bytes((data[31] & 0x3F,))
        assert masked in (elligator2.encode(point, 0), elligator2.encode(point, 1))
    # both NS decrypt (a retransmission-style second NS uses a new key)
    assert p.bob.decrypt(first).kind is MessageKind.NEW_SESSION
    assert p.bob.decrypt(second).kind is MessageKind.NEW_SESSION


def test_lost_and_reordered_messages_within_the_window():
    p = Pair()
    p.handshake()
    sent = [p.alice.encrypt(p.b_key(), [clove(b"%d" % i)]) for i in range(40)]
    rng = random.Random(7)
    kept = [m for i, m in enumerate(sent) if i % 5 != 3]   # lose every fifth
    runs = [kept[start:start + 10] for start in range(0, len(kept), 10)]
    kept = [m for run in runs for m in rng.sample(run, len(run))]   # reorder within runs of ten
    got = sorted(int(bodies(p.bob.decrypt(m.data))[0]) for m in kept)
    assert got == sorted(i for i in range(40) if i % 5 != 3)
    # a late straggler from far behind the window is gone
    for i in range(200):
        p.bob.decrypt(p.alice.encrypt(p.b_key(), [clove(b"x")]).data)
    assert p.bob.decrypt(sent[3].data) is None


def test_message_far_beyond_the_look_ahead_is_not_decryptable():
    p = Pair()
    p.handshake()
    sent = [p.alice.encrypt(p.b_key(), [clove(b"%d" % i)]) for i in range(60)]
    # Bob has seen index 0 only: look-ahead is 24 + 0/4 tags
    assert p.bob.decrypt(sent[59].data) is None
    assert bodies(p.bob.decrypt(sent[20].data)) == [b"20"]
    assert bodies(p.bob.decrypt(sent[40].data)) == [b"40"]    # the window moved on


def test_replayed_existing_session_message_is_rejected_cheaply():
    p = Pair()
    p.handshake()
    m = p.alice.encrypt(p.b_key(), [clove(b"once")])
    assert p.bob.decrypt(m.data) is not None
    assert p.bob.decrypt(m.data) is None
    assert p.bob.stats["replayed_tag"] == 1
    assert p.bob.stats["ns_failed"] == 0                      # no New Session trial for it


def test_forged_message_with_a_valid_tag_does_not_burn_the_tag():
    p = Pair()
    p.handshake()
    m = p.alice.encrypt(p.b_key(), [clove(b"real")])
    forged = m.data[:8] + bytes(len(m.data) - 8)
    assert p.bob.decrypt(forged) is None
    assert bodies(p.bob.decrypt(m.data)) == [b"real"]


@pytest.mark.parametrize("ratchet_after", [3, 10])
def test_dh_ratchets_in_both_directions(ratchet_after):
    p = Pair(config=RatchetConfig(ratchet_after=ratchet_after))
    p.handshake()
    a_ids, b_ids = set(), set()
    for i in range(120):
        m = p.alice.encrypt(p.b_key(), [clove(b"a%d" % i)])
        a_ids.add(m.ack_id[0])
        assert bodies(p.bob.decrypt(m.data)) == [b"a%d" % i]
        m = p.bob.encrypt(p.a_key(), [clove(b"b%d" % i)])
        b_ids.add(m.ack_id[0])
        assert bodies(p.alice.decrypt(m.data)) == [b"b%d" % i]
    # tag set ids run 0, 1, 2, ... (1 + sender key id + receiver key id) in each direction
    assert a_ids == set(range(len(a_ids))) and len(a_ids) >= 5
    assert b_ids == set(range(len(b_ids))) and len(b_ids) >= 5
    # old inbound tag sets are kept only a while: after 3 minutes only the current ones remain
    p.clock.advance(200)
    p.alice.upkeep()
    p.bob.upkeep()
    assert len(p.alice.session(p.b_key()).receive_tagsets) == 1
    assert len(p.bob.session(p.a_key()).receive_tagsets) == 1
    m = p.alice.encrypt(p.b_key(), [clove(b"after")])
    assert bodies(p.bob.decrypt(m.data)) == [b"after"]


def test_ratchet_key_ids_follow_the_spec_table():
    p = Pair()
    p.handshake()
    sender = p.alice.session(p.b_key())
    seen = []
    for _ in range(5):
        sender.start_ratchet()
        m = p.alice.encrypt(p.b_key(), [])
        forward = [b for b in p.bob.decrypt(m.data).blocks if isinstance(b, NextKey)]
        reply = p.bob.encrypt(p.a_key(), [])
        reverse = [b for b in p.alice.decrypt(reply.data).blocks if isinstance(b, NextKey)]
        seen.append((forward[0].key_id, forward[0].public_key is not None, forward[0].requests_reverse,
                     reverse[0].key_id, reverse[0].public_key is not None, sender.send_tagset.tagset_id))
        # the sender's next message is on the new tag set, which stops Bob's reverse key
        p.bob.decrypt(p.alice.encrypt(p.b_key(), []).data)
    # ecies.rst "DH RATCHET MESSAGE FLOW" table: (sender id, new?, request, receiver id, new?, tag set)
    assert seen == [(0, True, True, 0, True, 1), (1, True, False, 0, False, 2), (1, False, True, 1, True, 3),
                    (2, True, False, 1, False, 4), (2, False, True, 2, True, 5)]


def test_next_key_is_repeated_until_answered_and_answered_once():
    p = Pair()
    p.handshake()
    p.alice.session(p.b_key()).start_ratchet()
    for _ in range(3):   # Bob answers nothing yet; Alice repeats her key, Bob ratchets only once
        m = p.alice.encrypt(p.b_key(), [])
        assert any(isinstance(b, NextKey) for b in p.bob.decrypt(m.data).blocks)
    assert len(p.bob.session(p.a_key()).receive_tagsets) == 2
    assert p.bob.sessions_wanting_reply() == [p.bob.session(p.a_key())]
    reply = p.bob.encrypt(p.a_key(), [])                   # the empty answer a driver sends on the timer
    p.alice.decrypt(reply.data)
    assert p.alice.session(p.b_key()).send_tagset.tagset_id == 1
    m = p.alice.encrypt(p.b_key(), [])
    assert not any(isinstance(b, NextKey) for b in p.bob.decrypt(m.data).blocks)


def test_ack_request_is_answered_with_the_message_id():
    p = Pair()
    p.handshake()
    m = p.alice.encrypt(p.b_key(), [clove(b"please ack")], ack_request=True)
    got = p.bob.decrypt(m.data)
    assert any(isinstance(b, AckRequest) for b in got.blocks)
    assert p.bob.session(p.a_key()).wants_reply
    reply = p.bob.encrypt(p.a_key(), [])
    assert p.alice.decrypt(reply.data).acks == (m.ack_id,)
    assert not p.bob.session(p.a_key()).wants_reply


def test_several_new_sessions_and_replies_out_of_order():
    p = Pair()
    ns = [p.alice.encrypt(p.b_key(), [clove(b"post%d" % i)]) for i in range(3)]
    nsr = []
    for i, m in enumerate(ns):   # Bob answers each NS before the next arrives
        assert p.bob.decrypt(m.data).kind is MessageKind.NEW_SESSION
        nsr.append(p.bob.encrypt(p.a_key(), [clove(b"r%d" % i)]))
    nsr.append(p.bob.encrypt(p.a_key(), [clove(b"r3")]))      # a second NSR to the last NS, with fresh keys
    assert nsr[3].data[8:40] != nsr[2].data[8:40]
    # the second NSR arrives first: its keys become Alice's session; the others still decrypt
    assert bodies(p.alice.decrypt(nsr[1].data)) == [b"r1"]
    for i in (0, 3, 2):
        assert bodies(p.alice.decrypt(nsr[i].data)) == [b"r%d" % i]
    assert p.bob.session_count == 3
    es = p.alice.encrypt(p.b_key(), [clove(b"es")])
    assert bodies(p.bob.decrypt(es.data)) == [b"es"]
    assert p.bob.session(p.a_key()).established
    back = p.bob.encrypt(p.a_key(), [clove(b"es back")])
    assert back.kind is MessageKind.EXISTING_SESSION
    assert bodies(p.alice.decrypt(back.data)) == [b"es back"]
    p.clock.advance(100)
    p.alice.decrypt(p.bob.encrypt(p.a_key(), []).data)
    p.bob.decrypt(p.alice.encrypt(p.b_key(), []).data)
    p.clock.advance(81)
    p.bob.upkeep()
    assert p.bob.session_count == 1                          # the unanswered NS sessions expired


def test_nsr_limit_per_new_session():
    p = Pair(config=RatchetConfig(max_nsr_per_ns=2))
    p.bob.decrypt(p.alice.encrypt(p.b_key(), [clove(b"x")]).data)
    session = p.bob.session(p.a_key())
    session.encrypt([])
    session.encrypt([])
    with pytest.raises(SessionNotReady):
        session.encrypt([])
    # the manager starts Bob's own outbound session instead
    assert p.bob.encrypt(p.a_key(), []).kind is MessageKind.NEW_SESSION


def test_termination_ends_both_sides():
    p = Pair()
    p.handshake()
    assert p.alice.tag_count > 0 and p.bob.tag_count > 0
    final = p.alice.terminate(p.b_key(), reason=0)
    got = p.bob.decrypt(final.data)
    assert got.terminated and any(isinstance(b, Termination) for b in got.blocks)
    assert p.bob.session(p.a_key()) is None and p.bob.tag_count == 0
    assert p.alice.session(p.b_key()) is None and p.alice.tag_count == 0
    # a new message starts over with NS
    assert p.alice.encrypt(p.b_key(), []).kind is MessageKind.NEW_SESSION


def test_sessions_expire_on_the_injected_clock():
    p = Pair()
    p.handshake()
    p.bob.decrypt(p.alice.encrypt(p.b_key(), []).data)
    p.clock.advance(479)
    p.alice.upkeep()
    p.bob.upkeep()
    assert p.alice.session(p.b_key()) is not None and p.bob.session(p.a_key()) is not None
    p.clock.advance(200)   # no traffic for 679 s: past the 600 s receive and 480 s send timeouts
    p.alice.upkeep()
    p.bob.upkeep()
    assert p.alice.session_count == p.bob.session_count == 0
    assert p.alice.tag_count == p.bob.tag_count == 0


def test_unanswered_new_session_expires_and_restarts_after_silence():
    p = Pair()
    p.alice.encrypt(p.b_key(), [])
    assert p.alice.session(p.b_key()).state is SessionState.NEW_SESSION_SENT
    assert p.alice.tag_count == 12                          # the NSR tag set
    p.clock.advance(181)
    p.alice.upkeep()
    assert p.alice.session_count == 0 and p.alice.tag_count == 0
    # an established session whose peer went silent is replaced by a new NS (i2pd's restart rule)
    p.handshake()
    p.clock.advance(121)
    assert p.alice.encrypt(p.b_key(), []).kind is MessageKind.NEW_SESSION


def test_one_time_message_has_no_session():
    p = Pair()
    m = p.alice.encrypt_one_time(p.b_key(), [clove(b"raw")])
    assert m.kind is MessageKind.ONE_TIME
    got = p.bob.decrypt(m.data)
    assert got.kind is MessageKind.ONE_TIME and bodies(got) == [b"raw"] and got.session is None
    assert p.bob.session_count == 0 and p.alice.session_count == 0


def test_new_session_replay_and_clock_skew_are_rejected():
    p = Pair()
    m = p.alice.encrypt(p.b_key(), [clove(b"x")])
    assert p.bob.decrypt(m.data) is not None
    assert p.bob.decrypt(m.data) is None
    assert p.bob.stats["replayed_ns"] == 1
    flipped = m.data[:31] + bytes((m.data[31] ^ 0x80,)) + m.data[32:]   # same key, other padding bits
    assert p.bob.decrypt(flipped) is None
    assert p.bob.stats["replayed_ns"] == 2
    p.clock.advance(-301)                                   # Alice's clock 5 min behind Bob's
    stale = p.alice.encrypt(p.b_key(), [clove(b"old")])
    p.clock.advance(301)
    assert p.bob.decrypt(stale.data) is None and p.bob.stats["ns_skew"] == 1
    p.clock.advance(121)                                    # ... and 2 min ahead
    ahead_ok = p.alice.encrypt(p.b_key(), [clove(b"new")])
    p.clock.advance(-121)
    assert p.bob.decrypt(ahead_ok.data) is None and p.bob.stats["ns_skew"] == 2


def test_padding_is_last_and_bounded():
    p = Pair()
    p.handshake()
    for _ in range(20):
        got = p.bob.decrypt(p.alice.encrypt(p.b_key(), [clove(b"x")]).data)
        pads = [b for b in got.blocks if isinstance(b, Padding)]
        assert len(pads) <= 1 and all(len(x.data) <= 15 for x in pads)
        if pads:
            assert got.blocks[-1] is pads[0]


def test_ack_block_round_trips_through_sessions():
    p = Pair()
    p.handshake()
    ids = [p.alice.encrypt(p.b_key(), [], ack_request=True) for _ in range(3)]
    for m in ids:
        p.bob.decrypt(m.data)
    got = p.alice.decrypt(p.bob.encrypt(p.a_key(), []).data)
    assert [b for b in got.blocks if isinstance(b, Ack)][0].acks == tuple(m.ack_id for m in ids)


def test_message_number_trims_the_previous_tag_set():
    from core.garlic.blocks import MessageNumber
    p = Pair()
    p.handshake()
    for _ in range(5):
        p.bob.decrypt(p.alice.encrypt(p.b_key(), []).data)    # indexes 1-5 of tag set 0
    p.alice.session(p.b_key()).start_ratchet()
    p.bob.decrypt(p.alice.encrypt(p.b_key(), []).data)        # index 6 carries the Next Key
    p.alice.decrypt(p.bob.encrypt(p.a_key(), []).data)        # reverse key: Alice moves to tag set 1
    previous = p.bob.session(p.a_key()).receive_tagsets[0]
    assert previous.tag_count > 0
    m = p.alice.encrypt(p.b_key(), [MessageNumber(6)])
    assert m.ack_id == (1, 0)
    p.bob.decrypt(m.data)
    assert previous.tag_count == 0                          # nothing above PN 6 will come; 0-6 were received
