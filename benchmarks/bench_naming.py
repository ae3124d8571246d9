"""Address book figures: lookup (hit, miss) in a 50,000-name book, its load time and memory, and the
time to apply a 10,000-line feed (plain and signed).

Run: python benchmarks/bench_naming.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import timeit
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.naming.apply import apply_feed  # noqa: E402
from apps.naming.book import AddressBook  # noqa: E402
from apps.naming.feed import sign_line  # noqa: E402
from core.data.privatekeys import PrivateKeys  # noqa: E402

BOOK_NAMES = 50_000
FEED_LINES = 10_000


def per_call_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def _rss_growth_in_a_fresh_process(folder: Path) -> float:
    """MB of RSS a fresh interpreter grows by when it loads the book."""
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from core.stats import rss_mb; "
            "from apps.naming.book import AddressBook; b = rss_mb(); book = AddressBook(sys.argv[1]); "
            "print(rss_mb() - b)")
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", code, str(folder), root], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def _timed_load(folder: Path) -> float:
    start = time.perf_counter()
    AddressBook(folder)
    return time.perf_counter() - start


def main() -> None:
    keys = [PrivateKeys.generate(rng=os.urandom) for _ in range(200)]
    dests = [k.destination.b64 for k in keys]
    folder = Path(tempfile.mkdtemp(prefix="bench-naming-"))
    # a router book as a subscription leaves it: name=dest#!@added=...#@source=...
    lines = ["# bench\n"] + [f"host{i}.i2p={dests[i % len(dests)]}#!@added=1700000000#@source=http://reg.i2p/hosts.txt\n"
                             for i in range(BOOK_NAMES)]
    (folder / "hosts.txt").write_text("".join(lines))
    size_mb = (folder / "hosts.txt").stat().st_size / 1e6

    rss_growth = _rss_growth_in_a_fresh_process(folder)
    load_s = min(_timed_load(folder) for _ in range(3))
    tracemalloc.start()
    book = AddressBook(folder)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert book.count("router") == BOOK_NAMES

    hit_same = per_call_us(lambda: book.lookup("host12345.i2p"), 20_000)
    names = [f"host{i}.i2p" for i in range(0, BOOK_NAMES, 7)]
    hit_cold_start = time.perf_counter()
    for name in names[:5000]:
        book._parsed.clear() if len(book._parsed) > 4000 else None      # noqa: SLF001 - measure the parse
        book.lookup(name)
    hit_cold = (time.perf_counter() - hit_cold_start) / 5000 * 1e6
    miss = per_call_us(lambda: book.lookup("nothere.i2p"), 20_000)
    get = per_call_us(lambda: book.get("host12345.i2p"), 20_000)

    plain_feed = "".join(f"new{i}.i2p={dests[i % len(dests)]}\n" for i in range(FEED_LINES))
    start = time.perf_counter()
    signed_feed = "".join(sign_line(f"signed{i}.i2p", keys[i % len(keys)]).to_text() + "\n"
                          for i in range(FEED_LINES))
    sign_s = time.perf_counter() - start
    start = time.perf_counter()
    plain = apply_feed(book, plain_feed, source="bench")
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    signed = apply_feed(book, signed_feed, source="bench")
    signed_s = time.perf_counter() - start
    start = time.perf_counter()
    again = apply_feed(book, signed_feed, source="bench")
    again_s = time.perf_counter() - start
    assert plain.added == FEED_LINES and signed.added == FEED_LINES and again.unchanged == FEED_LINES

    print(f"book: {BOOK_NAMES} names, hosts.txt {size_mb:.1f} MB")
    print(f"  load                         {load_s * 1000:8.0f} ms")
    print(f"  memory held by the index     {held / 1e6:8.1f} MB (peak while loading {peak / 1e6:.1f} MB)")
    print(f"  RSS growth, fresh process    {rss_growth:8.1f} MB")
    print(f"  lookup hit (same name)       {hit_same:8.2f} µs")
    print(f"  lookup hit (Destination parsed) {hit_cold:5.2f} µs")
    print(f"  lookup miss                  {miss:8.2f} µs")
    print(f"  get (entry, no parse)        {get:8.2f} µs")
    print(f"feed of {FEED_LINES} lines applied to that book (one locked edit, one write of the book):")
    print(f"  plain name=dest lines        {plain_s * 1000:8.0f} ms")
    print(f"  signed lines (verified)      {signed_s * 1000:8.0f} ms   (signing them took {sign_s * 1000:.0f} ms)")
    print(f"  the same signed feed again   {again_s * 1000:8.0f} ms   (all unchanged)")


if __name__ == "__main__":
    main()
