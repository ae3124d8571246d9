"""The hosts.txt line format and the signatures of subscription.rst."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from apps.naming.feed import (FeedLine, format_line, iter_lines, parse_line, parse_properties, sign_line,
                              signed_text, verify_line)
from apps.naming.names import NamingError
from core.data.encoding import b64decode, b64encode


def test_plain_comment_and_blank_lines(keys):
    dest = keys[0].destination.b64
    assert parse_line("# a comment") is None
    assert parse_line("   ") is None
    line = parse_line(f"Example.I2P={dest}")
    assert (line.name, line.dest, dict(line.properties), line.action) == ("example.i2p", dest, {}, "add")
    assert parse_line(f"example.i2p={dest} # a trailing comment").properties == {}


def test_extended_lines_parse_and_format_back(keys):
    dest = keys[0].destination.b64
    text = f"example.i2p={dest}#!action=update#date=1#k=v=w#sig=abc"
    line = parse_line(text)
    assert line.action == "update" and line.properties["k"] == "v=w"
    assert line.to_text() == text
    remove = parse_line(f"#!action=remove#dest={dest}#name=example.i2p#sig=x")
    assert remove.name is None and remove.action == "remove" and remove.to_text().startswith("#!action=remove")


@pytest.mark.parametrize("bad", ["example.i2p", "example.i2p=short", "bad_name.i2p=" + "A" * 516,
                                 "x.i2p=" + "A" * 617, "#!action=add#sig=x", "#!name=x.i2p",
                                 "x.i2p=" + "A" * 516 + "#!action=frobnicate", "x.i2p=" + "A" * 516 + "#!a=1#a=2",
                                 "x.i2p=" + "A" * 516 + "#!novalue", "x.i2p=" + "A" * 9000])
def test_malformed_lines_raise_naming_error(bad):
    with pytest.raises(NamingError):
        parse_line(bad)


def test_signature_input_is_sorted_without_sig_and_newline(keys):
    # subscription.rst "Input for signatures"
    line = FeedLine("a.i2p", "DEST", {"sig": "S", "zz": "1", "action": "changedest", "oldsig": "O", "olddest": "D"})
    assert signed_text(line, inner=False) == b"a.i2p=DEST#!action=changedest#olddest=D#oldsig=O#zz=1"
    assert signed_text(line, inner=True) == b"a.i2p=DEST#!action=changedest#olddest=D#zz=1"
    assert signed_text(FeedLine("a.i2p", "DEST", {"sig": "S"}), inner=False) == b"a.i2p=DEST"
    assert signed_text(FeedLine(None, None, {"action": "remove", "name": "a.i2p", "dest": "D", "sig": "S"}),
                       inner=False) == b"#!action=remove#dest=D#name=a.i2p"


@pytest.mark.parametrize("index", range(8))
def test_every_signature_type_signs_and_verifies(keys, index):
    line = sign_line("site.i2p", keys[index], date=1700000000)
    parsed = parse_line(line.to_text())
    assert verify_line(parsed)
    assert b64decode(parsed.properties["sig"]) and parsed.properties["date"] == "1700000000"


@pytest.mark.parametrize("action, extra, needs_old", [
    ("add", {}, False), ("addname", {"oldname": "old.i2p"}, False), ("changename", {"oldname": "old.i2p"}, False),
    ("update", {"k": "v"}, False), ("changedest", {}, True), ("adddest", {}, True),
    ("addsubdomain", {"oldname": "site.i2p"}, True), ("remove", {}, False), ("removeall", {}, False)])
def test_each_action_verifies_and_forgeries_do_not(keys, action, extra, needs_old):
    name = "sub.site.i2p" if action == "addsubdomain" else "site.i2p"
    line = sign_line(name, keys[0], action=action, old_keys=keys[1] if needs_old else None, extra=extra)
    parsed = parse_line(line.to_text())
    assert parsed.action == action and verify_line(parsed)
    props = dict(parsed.properties)
    # the outer signature by another key
    forged = dict(props, sig=sign_line(name, keys[2], action=action, old_keys=keys[1] if needs_old else None,
                                       extra=extra).properties["sig"])
    assert not verify_line(FeedLine(parsed.name, parsed.dest, forged))
    # a changed value under the same signatures
    assert not verify_line(FeedLine(parsed.name, parsed.dest, dict(props, date="1")))
    if needs_old:
        # inner signature by a key that is not olddest's
        inner = sign_line(name, keys[0], action=action, old_keys=keys[3], extra=extra)
        assert not verify_line(FeedLine(parsed.name, parsed.dest, dict(props, oldsig=inner.properties["oldsig"])))
        # ... even with the outer signature made over it by the right key
        bad_inner = FeedLine(parsed.name, parsed.dest, dict(props, oldsig=inner.properties["oldsig"]))
        resigned = dict(bad_inner.properties, sig=b64encode(keys[0].sign(signed_text(bad_inner, inner=False))))
        assert not verify_line(FeedLine(parsed.name, parsed.dest, resigned))
    if parsed.name is not None:
        # the same signature claimed for another destination
        assert not verify_line(FeedLine(parsed.name, keys[2].destination.b64, props))
    without = {k: v for k, v in props.items() if k != "sig"}
    assert not verify_line(FeedLine(parsed.name, parsed.dest, without))


def test_garbage_signatures_do_not_verify(keys):
    line = sign_line("site.i2p", keys[0])
    for sig in ("", "!!!", b64encode(b"\0" * 64), b64encode(b"\0" * 3)):
        assert not verify_line(FeedLine(line.name, line.dest, dict(line.properties, sig=sig)))
    assert not verify_line(FeedLine(line.name, "A" * 516, dict(line.properties)))


lines = st.one_of(
    st.text(max_size=200),
    st.builds(lambda n, d, p: f"{n}={d}#!{p}", st.text("abc.i2p-", max_size=20), st.text(max_size=700),
              st.text("=#!abcsig", max_size=60)),
    st.builds(lambda p: "#!" + p, st.text("=#!actionremove", max_size=80)),
)


@given(lines)
def test_any_line_parses_or_raises_naming_error(text):
    try:
        line = parse_line(text)
    except NamingError:
        return
    if line is not None:
        again = parse_line(line.to_text())
        assert (again.name, again.dest, dict(again.properties)) == (line.name, line.dest, dict(line.properties))
        verify_line(line)      # never raises


@given(st.binary(max_size=2000))
def test_binary_junk_feeds_yield_errors_not_exceptions(data):
    for _, line, error in iter_lines(data.decode("utf-8", errors="replace")):
        assert line is None or error is None


@given(st.dictionaries(st.text("abcdefg", min_size=1, max_size=5), st.text("xyz=0", max_size=5), max_size=8))
def test_properties_round_trip(props):
    text = "#".join(f"{k}={v}" for k, v in props.items())
    assert parse_properties(text) == props
    assert format_line("a.i2p", "D", props) == ("a.i2p=D" + ("#!" + "#".join(
        f"{k}={v}" for k, v in sorted(props.items())) if props else ""))
