"""BufferedRng: the source's bytes in order, one source call per block."""
from core.clock import BufferedRng


def test_buffered_rng_hands_out_the_source_bytes_in_order():
    calls = []
    stream = bytes(range(256)) * 64

    def source(n):
        start = sum(calls)
        calls.append(n)
        return stream[start:start + n]
    rng = BufferedRng(source, block=100)
    out = b"".join(rng(n) for n in (4, 16, 30, 60, 16))
    assert calls == [100, 100]
    assert out == stream[:50] + stream[100:176]   # a block's tail too short for the next call is skipped
    assert rng(500) == stream[200:700] and calls[-1] == 500   # more than a block: straight from the source
