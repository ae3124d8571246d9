"""naming.md "Naming Rules"."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from apps.naming.names import NamingError, is_valid_name, normalize_name


@pytest.mark.parametrize("name", ["example.i2p", "a.i2p", "sub.example.i2p", "x-y.i2p", "xn--bcher-kva.i2p",
                                  "a" * 63 + ".i2p", "0day.i2p"])
def test_valid_names(name):
    assert is_valid_name(name)
    assert normalize_name(name.upper()) == name


@pytest.mark.parametrize("name, problem", [
    ("example.com", "end with .i2p"), (".i2p", "end with .i2p"), ("a" * 64 + ".i2p", "longer than 67"),
    ("ex_ample.i2p", "only a-z"), ("exämple.i2p", "only a-z"), ("-x.i2p", "start"), (".x.i2p", "start"),
    ("a..b.i2p", "'..'"), ("a.-b.i2p", "'..'"), ("a-.b.i2p", "'..'"), ("a--b.i2p", "xn--"),
    ("ukeu3k5oycgaauneqgtnvselmt4yemvoilkln7jpvamvfx7dnkdq.b32.i2p", "b32"),
    ("proxy.i2p", "reserved"), ("router.i2p", "reserved"), ("x.console.i2p", "reserved"),
    ("mail.i2p", "reserved"), ("a.b.mail.i2p", "reserved"),
])
def test_invalid_names(name, problem):
    with pytest.raises(NamingError, match=problem):
        normalize_name(name)


def test_i2p_alt_is_stripped_and_case_folded():
    assert normalize_name(" Example.I2P.alt ") == "example.i2p"


@given(st.text(max_size=80))
def test_any_text_is_a_name_or_a_naming_error(text):
    try:
        name = normalize_name(text)
    except NamingError:
        return
    assert is_valid_name(name) and name == name.lower() and len(name) <= 67
