"""NTCP2 data phase: framing, SipHash length chaining, split input, failures, termination."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import FakeClock
from core.crypto.chacha import ChaChaPoly
from core.crypto.siphash import siphash24
from core.data.errors import ProtocolError
from core.transport.ntcp2 import blocks as b
from core.transport.ntcp2.session import DataPhase, DataPhaseKeys, FrameError, LengthObfuscator

from .test_ntcp2_support import CountingRng, make_pair, make_router, run_handshake

KEYS_A = DataPhaseKeys(bytes([1]) * 32, bytes([2]) * 32, bytes(range(16)), bytes(range(16, 24)),
                       bytes(range(24, 40)), bytes(range(40, 48)))
KEYS_B = DataPhaseKeys(KEYS_A.receive_key, KEYS_A.send_key, KEYS_A.receive_sip_key, KEYS_A.receive_sip_iv,
                       KEYS_A.send_sip_key, KEYS_A.send_sip_iv)

ALL_BLOCKS = [
    b.DateTimeBlock(1_750_000_000),
    b.OptionsBlock(0, 0x10, 0, 0x20, 100, 0, 5, 0, b"more"),
    b.RouterInfoBlock(b"R" * 300, flags=1),
    b.I2NPBlock(18, 12345, 1_750_000_060, bytes(1028)),
    b.UnknownBlock(224, b"future"),
    b.I2NPBlock(11, 1, 2, b""),
]


def pair(**kwargs):
    return (DataPhase(KEYS_A, rng=CountingRng("a"), **kwargs), DataPhase(KEYS_B, rng=CountingRng("b"), **kwargs))


def test_frame_layout_by_hand():
    alice, _ = pair()
    payload = b.DateTimeBlock(7).to_bytes()
    wire = alice.encrypt_payload(payload)
    mask = siphash24(KEYS_A.send_sip_key, KEYS_A.send_sip_iv) & 0xFFFF
    assert int.from_bytes(wire[:2], "big") ^ mask == len(payload) + 16
    assert wire[2:] == ChaChaPoly(KEYS_A.send_key).encrypt(0, payload)
    second = alice.encrypt_payload(b"")
    iv1 = siphash24(KEYS_A.send_sip_key, KEYS_A.send_sip_iv).to_bytes(8, "little")
    assert int.from_bytes(second[:2], "big") ^ (siphash24(KEYS_A.send_sip_key, iv1) & 0xFFFF) == 16
    assert second[2:] == ChaChaPoly(KEYS_A.send_key).encrypt(1, b"")


def test_length_obfuscator_chains_iv():
    obf = LengthObfuscator(bytes(16), bytes(8))
    first = siphash24(bytes(16), bytes(8))
    assert obf.next_mask() == first & 0xFFFF
    assert obf.next_mask() == siphash24(bytes(16), first.to_bytes(8, "little")) & 0xFFFF


def test_all_block_types_both_directions():
    alice, bob = pair()
    frames = bob.feed(alice.encrypt_frame(ALL_BLOCKS))
    assert frames == [ALL_BLOCKS]
    frames = alice.feed(bob.pack(ALL_BLOCKS, pad=False))
    assert frames == [ALL_BLOCKS]
    assert alice.frames_received == bob.frames_received == 1


def test_pack_padding_and_frame_target():
    alice, bob = pair(frame_target=2000, max_padding=15)
    messages = [b.I2NPBlock(20, i, 0, bytes(700)) for i in range(6)]
    frames = bob.feed(alice.pack(messages))
    assert len(frames) == 3            # two 712-byte blocks per 2000-byte frame
    received = [blk for frame in frames for blk in frame if not isinstance(blk, b.PaddingBlock)]
    assert received == messages
    assert all(isinstance(frame[-1], b.PaddingBlock) and len(frame[-1].padding) <= 15 for frame in frames)


def test_largest_i2np_message_fits_one_frame():
    alice, bob = pair()
    big = b.I2NPBlock(20, 1, 2, bytes(b.MAX_BLOCK_DATA - 9))
    assert bob.feed(alice.pack([big])) == [[big]]
    with pytest.raises(ValueError):
        alice.encrypt_payload(bytes(b.MAX_FRAME_PAYLOAD + 1))


def test_split_at_every_byte_boundary():
    alice, _ = pair()
    wire = alice.encrypt_frame(ALL_BLOCKS[:2]) + alice.encrypt_frame([b.DateTimeBlock(9)])
    for cut in range(len(wire) + 1):
        _, bob = pair()
        frames = bob.feed(wire[:cut]) + bob.feed(wire[cut:])
        assert frames == [ALL_BLOCKS[:2], [b.DateTimeBlock(9)]], cut


def test_byte_by_byte():
    alice, bob = pair()
    wire = alice.pack(ALL_BLOCKS) + alice.pack([b.DateTimeBlock(1)])
    frames = []
    for byte in wire:
        frames += bob.feed(bytes([byte]))
    assert len(frames) == 2 and frames[0][:len(ALL_BLOCKS)] == ALL_BLOCKS


def _assert_dead(bob, reason):
    with pytest.raises(FrameError) as info:
        while bob.next_frame() is not None:
            pass
    assert info.value.termination_reason == reason
    assert bob.receive_closed
    with pytest.raises(FrameError):
        bob.feed(b"")
    return info.value


def test_bad_mac_kills_receive_side():
    alice, bob = pair()
    wire = bytearray(alice.encrypt_frame([b.DateTimeBlock(1)]))
    wire[-1] ^= 1
    bob.receive_data(bytes(wire))
    _assert_dead(bob, b.TerminationReason.DATA_PHASE_AEAD_FAILURE)
    # the send side still works: the Termination block tells Alice how many frames were good
    frames = alice.feed(bob.terminate(b.TerminationReason.DATA_PHASE_AEAD_FAILURE))
    assert frames[0][0] == b.TerminationBlock(0, b.TerminationReason.DATA_PHASE_AEAD_FAILURE)
    assert alice.peer_termination is not None and alice.next_frame() is None
    with pytest.raises(ProtocolError):
        bob.encrypt_frame([b.DateTimeBlock(1)])


def test_earlier_frames_survive_a_later_bad_one():
    alice, bob = pair()
    good = alice.encrypt_frame([b.DateTimeBlock(1)])
    bad = bytearray(alice.encrypt_frame([b.DateTimeBlock(2)]))
    bad[5] ^= 1
    bob.receive_data(good + bytes(bad))
    assert bob.next_frame() == [b.DateTimeBlock(1)]
    _assert_dead(bob, b.TerminationReason.DATA_PHASE_AEAD_FAILURE)


def test_wrong_key_or_reordered_frames_fail():
    alice, bob = pair()
    first = alice.encrypt_frame([b.DateTimeBlock(1)])
    alice.encrypt_frame([b.DateTimeBlock(2)])   # a frame bob never sees: nonces and SipHash IVs now differ
    bob.receive_data(alice.encrypt_frame([b.DateTimeBlock(3)]) + bytes(65536))  # whatever length it decodes
    with pytest.raises(FrameError):
        while bob.next_frame() is not None:
            pass
    _, fresh = pair()
    assert fresh.feed(first) == [[b.DateTimeBlock(1)]]


def test_short_length_is_framing_error():
    alice, bob = pair()
    mask = siphash24(KEYS_A.send_sip_key, KEYS_A.send_sip_iv) & 0xFFFF
    bob.receive_data((15 ^ mask).to_bytes(2, "big") + bytes(15))
    _assert_dead(bob, b.TerminationReason.AEAD_FRAMING_ERROR)


def test_bad_payload_is_format_error():
    alice, bob = pair()
    bob.receive_data(alice.encrypt_payload(b.PaddingBlock().to_bytes() + b.DateTimeBlock(1).to_bytes()))
    _assert_dead(bob, b.TerminationReason.PAYLOAD_FORMAT_ERROR)
    alice, bob = pair()
    bob.receive_data(alice.encrypt_payload(b"\x00\x00\x09" + bytes(9)))   # DateTime of 9 bytes
    _assert_dead(bob, b.TerminationReason.PAYLOAD_FORMAT_ERROR)


def test_termination_stops_receiving():
    alice, bob = pair()
    wire = alice.terminate(b.TerminationReason.IDLE_TIMEOUT, b"bye") + b"trailing junk"
    frames = bob.feed(wire)
    assert frames[0][0] == b.TerminationBlock(0, b.TerminationReason.IDLE_TIMEOUT, b"bye")
    assert bob.peer_termination.reason == b.TerminationReason.IDLE_TIMEOUT
    assert bob.feed(b"more") == [] and bob.buffered == 0
    assert alice.send_closed


def test_real_handshake_into_data_phase():
    clock = FakeClock(1_750_000_000.0)
    initiator, responder = make_pair(clock, make_router("alice", clock), make_router("bob", clock))
    a, b_ = run_handshake(initiator, responder)
    alice = DataPhase(a.keys, rng=CountingRng("x"))
    bob = DataPhase(b_.keys, rng=CountingRng("y"))
    assert bob.feed(alice.pack(ALL_BLOCKS, pad=False)) == [ALL_BLOCKS]
    assert alice.feed(bob.pack(ALL_BLOCKS[::-1], pad=False)) == [ALL_BLOCKS[::-1]]


def test_settings_validated():
    with pytest.raises(ValueError):
        DataPhase(KEYS_A, frame_target=70000)
    with pytest.raises(ValueError):
        LengthObfuscator(bytes(15), bytes(8))


@settings(max_examples=100)
@given(st.binary(max_size=2000))
def test_random_bytes_into_receiver(data):
    _, bob = pair()
    try:
        bob.feed(data)
    except ProtocolError:
        assert bob.receive_closed


@settings(max_examples=100)
@given(st.data())
def test_mutated_frames_into_receiver(data):
    alice, bob = pair()
    first = alice.pack(ALL_BLOCKS[:3], pad=False)
    wire = bytearray(first + alice.pack([b.DateTimeBlock(5)], pad=False))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] ^= data.draw(st.integers(1, 255))
    try:
        frames = bob.feed(bytes(wire))
    except ProtocolError:
        return
    # no error: a corrupted length is still waiting for bytes; nothing corrupted was delivered
    assert frames in ([], [ALL_BLOCKS[:3]]) and bob.buffered > 0
    assert (frames == []) == (index < len(first))


@settings(max_examples=60)
@given(st.lists(st.sampled_from(ALL_BLOCKS), min_size=1, max_size=12), st.integers(100, 3000),
       st.lists(st.integers(1, 700), min_size=1, max_size=40))
def test_random_packing_and_chunking(blocks, frame_target, chunks):
    alice, bob = pair(frame_target=frame_target)
    wire = alice.pack(blocks) + alice.pack([b.DateTimeBlock(3)])
    received, pos, i = [], 0, 0
    while pos < len(wire):
        step = chunks[i % len(chunks)]
        for frame in bob.feed(wire[pos:pos + step]):
            received += [blk for blk in frame if not isinstance(blk, b.PaddingBlock)]
        pos, i = pos + step, i + 1
    assert received == list(blocks) + [b.DateTimeBlock(3)]
    assert bob.buffered == 0 and bob.frames_received == alice.frames_sent


def test_pack_i2np_coalesces_messages_into_few_frames_in_order_within_the_target():
    alice, bob = pair(frame_target=16384, max_padding=15)
    messages = [(18, i + 1, 1_750_000_010, i.to_bytes(4, "big") + bytes(1024)) for i in range(100)]
    wire = alice.pack_i2np(messages)
    frames = bob.feed(wire)
    per_frame = 16384 // (b.I2NP_BLOCK_OVERHEAD + 1028)       # 15 whole 1040-byte blocks fit a 16 KB frame
    assert len(frames) == alice.frames_sent == -(-100 // per_frame)
    received = [blk for frame in frames for blk in frame if not isinstance(blk, b.PaddingBlock)]
    assert [(blk.msg_type, blk.msg_id, blk.expiration, blk.body) for blk in received] == messages
    assert all(sum(len(blk.to_bytes()) for blk in frame) <= 16384 + b.BLOCK_HEADER_SIZE + 15 for frame in frames)
    assert alice.pack_i2np(messages) != wire    # same messages, next nonces: nothing is cached


def test_pack_i2np_is_pack_of_i2np_blocks():
    alice, _ = pair(frame_target=3000, max_padding=0)
    alice2, _ = pair(frame_target=3000, max_padding=0)
    messages = [(20, i, 7, bytes(range(i % 256)) * 3) for i in range(1, 30)]
    assert alice.pack_i2np(messages) == alice2.pack([b.I2NPBlock(*m) for m in messages])
    with pytest.raises(ValueError):
        alice.pack_i2np([(20, 1, 2, bytes(b.MAX_BLOCK_DATA - 8))])


def test_mixed_frames_of_a_peer_parse_in_order():
    # a peer's frame may carry any blocks in any order, I2NP ones among them (ntcp2.rst "Data Phase")
    alice, bob = pair()
    first = [b.DateTimeBlock(9), b.I2NPBlock(18, 1, 5, bytes(1028)), b.RouterInfoBlock(b"R" * 200),
             b.I2NPBlock(20, 2, 5, b"\x00\x00\x00\x01x"), b.OptionsBlock(0, 0, 0, 0, 0, 0, 0, 0, b"")]
    second = [b.I2NPBlock(18, 3, 5, bytes(1028)), b.UnknownBlock(224, b"x"), b.PaddingBlock(bytes(7))]
    bob.receive_data(alice.encrypt_frame(first) + alice.encrypt_frame(second))
    assert bob.next_items() == [first[0], (18, 1, 5, bytes(1028)), first[2], (20, 2, 5, b"\x00\x00\x00\x01x"),
                                first[4]]
    assert bob.next_items() == [(18, 3, 5, bytes(1028)), *second[1:]]
    assert bob.next_items() is None
