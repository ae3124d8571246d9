"""Bencode: exact round trips, and strict refusal of anything non-canonical (fuzzed)."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from apps.torrent.bencode import BencodeError, bdecode, bdecode_prefix, bencode
from core.data.errors import ProtocolError

values = st.recursive(
    st.integers(min_value=-(10 ** 18), max_value=10 ** 18) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.binary(max_size=10), children, max_size=5),
    max_leaves=30)


@given(values)
def test_round_trip(value):
    assert bdecode(bencode(value)) == value
    assert bencode(bdecode(bencode(value))) == bencode(value)


@given(st.binary(max_size=200))
def test_garbage_raises_only_protocol_errors(data):
    try:
        value = bdecode(data)
    except ProtocolError:
        return
    assert bencode(value) == data       # whatever decodes is canonical


def test_known_encodings():
    assert bencode({b"spam": [b"a", 1], "b": -3}) == b"d1:bi-3e4:spaml1:ai1eee"
    assert bdecode(b"d1:bi-3e4:spaml1:ai1eee") == {b"b": -3, b"spam": [b"a", 1]}
    assert bdecode_prefix(b"d1:ai1eeTAIL") == ({b"a": 1}, 8)


@pytest.mark.parametrize("bad", [b"i-0e", b"i03e", b"ie", b"i1", b"03:abc", b"4:abc", b"d1:bi1e1:ai2ee",
                                 b"d1:ai1e1:ai2ee", b"di1ei2ee", b"l", b"i1ei2e", b"x", b"-1:a", b"i+1e",
                                 b"l" * 100 + b"e" * 100])
def test_non_canonical_refused(bad):
    with pytest.raises(BencodeError):
        bdecode(bad)


def test_item_limit():
    with pytest.raises(BencodeError, match="too many items"):
        bdecode(b"l" + b"i1e" * 100 + b"e", max_items=50)
