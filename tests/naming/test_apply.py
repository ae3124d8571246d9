"""Feeds applied to the router book by subscription.rst "Commands": valid and forged, first come stays."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from apps.naming.apply import apply_feed
from apps.naming.book import AddressBook
from apps.naming.feed import FeedLine, sign_line, signed_text
from core.data.encoding import b64encode

SRC = "http://reg.i2p/hosts.txt"


@pytest.fixture
def book(tmp_path):
    return AddressBook(tmp_path)


def forge(line: FeedLine, other_keys, **changes) -> str:
    """The line with its outer signature made by a key that is not the one it names."""
    props = dict(line.properties, **changes)
    props["sig"] = b64encode(other_keys.sign(signed_text(FeedLine(line.name, line.dest, props), inner=False)))
    return FeedLine(line.name, line.dest, props).to_text()


def inner_forged(line: FeedLine, other_keys, signer) -> str:
    """The line with oldsig made by a key that is not olddest's, and a good outer sig over that."""
    props = dict(line.properties)
    props["oldsig"] = b64encode(other_keys.sign(signed_text(line, inner=True)))
    props["sig"] = b64encode(signer.sign(signed_text(FeedLine(line.name, line.dest, props), inner=False)))
    return FeedLine(line.name, line.dest, props).to_text()


def apply(book, *lines):
    return apply_feed(book, "\n".join(lines) + "\n", source=SRC)


def test_plain_and_signed_adds_first_come_stays(book, keys):
    a, b = keys[0].destination, keys[1].destination
    result = apply(book, f"plain.i2p={a.b64}", sign_line("signed.i2p", keys[1]).to_text())
    assert (result.added, result.skipped.total()) == (2, 0)
    assert book.lookup("plain.i2p") == a and book.lookup("signed.i2p") == b
    assert book.get("signed.i2p").properties["sig"] and book.get("signed.i2p").source == SRC
    # a later claim on either name, signed or not, changes nothing
    result = apply(book, f"plain.i2p={b.b64}", sign_line("signed.i2p", keys[0]).to_text(), f"plain.i2p={a.b64}")
    assert result.skipped["name taken"] == 2 and result.unchanged == 1
    assert book.lookup("plain.i2p") == a and book.lookup("signed.i2p") == b


def test_a_forged_add_is_not_taken(book, keys):
    line = sign_line("site.i2p", keys[0])
    result = apply(book, forge(line, keys[1]))
    assert result.skipped["bad signature"] == 1 and book.get("site.i2p") is None


def test_feeds_never_touch_local_or_private_names(book, keys):
    book.add("mine.i2p", keys[0].destination, book="local")
    book.add("pet.i2p", keys[0].destination, book="private")
    result = apply(book, f"mine.i2p={keys[1].destination.b64}",
                   sign_line("mine.i2p", keys[1], action="changedest", old_keys=keys[0]).to_text(),
                   f"pet.i2p={keys[1].destination.b64}")
    assert result.skipped["name taken"] == 1 and result.skipped["name is in the local book"] == 1
    assert book.lookup("mine.i2p") == keys[0].destination
    # naming.md: privatehosts.txt is not checked for conflicts; the private entry still wins the lookup
    assert book.get("pet.i2p", ).book == "private" and book.entries("router")["pet.i2p"]
    assert book.lookup("pet.i2p") == keys[0].destination


def test_changedest_valid_and_forged(book, keys):
    old, new, thief = keys[0], keys[1], keys[2]
    apply(book, f"site.i2p={old.destination.b64}")
    forged = [
        forge(sign_line("site.i2p", thief, action="changedest", old_keys=old), keys[3]),        # outer forged
        sign_line("site.i2p", thief, action="changedest", old_keys=keys[3]).to_text(),           # wrong olddest
        FeedLine("site.i2p", thief.destination.b64,                                               # no oldsig
                 {k: v for k, v in sign_line("site.i2p", thief, action="changedest", old_keys=old).properties.items()
                  if k != "oldsig"}).to_text(),
        f"site.i2p={thief.destination.b64}#!action=changedest#olddest={old.destination.b64}",    # unsigned
        inner_forged(sign_line("site.i2p", thief, action="changedest", old_keys=old), keys[3], thief),
    ]
    result = apply(book, *forged)
    assert book.lookup("site.i2p") == old.destination
    assert result.skipped["bad signature"] == 3 and result.skipped["olddest is not the name's destination"] == 1
    assert result.skipped["unsigned command"] == 1
    result = apply(book, sign_line("site.i2p", new, action="changedest", old_keys=old).to_text())
    assert result.changed == 1 and book.lookup("site.i2p") == new.destination
    assert book.get("site.i2p").properties["action"] == "changedest"


def test_changename(book, keys):
    apply(book, f"old.i2p={keys[0].destination.b64}", f"other.i2p={keys[1].destination.b64}")
    forged = forge(sign_line("new.i2p", keys[0], action="changename", extra={"oldname": "old.i2p"}), keys[1])
    not_theirs = sign_line("new.i2p", keys[2], action="changename", extra={"oldname": "other.i2p"}).to_text()
    result = apply(book, forged, not_theirs)
    assert result.skipped["bad signature"] == 1 and result.skipped["oldname has another destination"] == 1
    assert book.get("new.i2p") is None
    result = apply(book, sign_line("new.i2p", keys[0], action="changename", extra={"oldname": "old.i2p"}).to_text())
    assert result.changed == 1 and book.get("old.i2p") is None and book.lookup("new.i2p") == keys[0].destination


def test_addname_alias(book, keys):
    apply(book, f"site.i2p={keys[0].destination.b64}")
    bad = sign_line("alias.i2p", keys[1], action="addname", extra={"oldname": "site.i2p"}).to_text()
    result = apply(book, bad, forge(sign_line("alias2.i2p", keys[0], action="addname",
                                              extra={"oldname": "site.i2p"}), keys[1]))
    assert result.skipped["oldname has another destination"] == 1 and result.skipped["bad signature"] == 1
    result = apply(book, sign_line("alias.i2p", keys[0], action="addname", extra={"oldname": "site.i2p"}).to_text())
    assert result.added == 1 and book.lookup("alias.i2p") == keys[0].destination == book.lookup("site.i2p")


def test_adddest_keeps_the_first_destination(book, keys):
    apply(book, f"site.i2p={keys[0].destination.b64}")
    result = apply(book, sign_line("site.i2p", keys[1], action="adddest", old_keys=keys[2]).to_text(),
                   forge(sign_line("site.i2p", keys[1], action="adddest", old_keys=keys[0]), keys[3]),
                   sign_line("site.i2p", keys[1], action="adddest", old_keys=keys[0]).to_text(),
                   sign_line("fresh.i2p", keys[1], action="adddest", old_keys=keys[0]).to_text())
    assert result.skipped["olddest is not the name's destination"] == 1 and result.skipped["bad signature"] == 1
    assert result.unchanged == 1 and result.added == 1
    assert book.lookup("site.i2p") == keys[0].destination and book.lookup("fresh.i2p") == keys[1].destination


def test_addsubdomain_needs_the_parent(book, keys):
    apply(book, f"site.i2p={keys[0].destination.b64}")
    result = apply(book,
                   sign_line("a.site.i2p", keys[1], action="addsubdomain", old_keys=keys[2],
                             extra={"oldname": "site.i2p"}).to_text(),                       # not the parent's key
                   sign_line("b.other.i2p", keys[1], action="addsubdomain", old_keys=keys[0],
                             extra={"oldname": "site.i2p"}).to_text(),                       # not a subdomain
                   forge(sign_line("c.site.i2p", keys[1], action="addsubdomain", old_keys=keys[0],
                                   extra={"oldname": "site.i2p"}), keys[3]))
    assert result.skipped["olddest is not the parent's destination"] == 1
    assert result.skipped["not a subdomain of oldname"] == 1 and result.skipped["bad signature"] == 1
    assert book.count("router") == 1
    result = apply(book, sign_line("a.site.i2p", keys[1], action="addsubdomain", old_keys=keys[0],
                                   extra={"oldname": "site.i2p"}).to_text())
    assert result.added == 1 and book.lookup("a.site.i2p") == keys[1].destination


def test_update_replaces_properties_only_when_signed_by_the_holder(book, keys):
    apply(book, sign_line("site.i2p", keys[0], extra={"note": "first"}).to_text())
    result = apply(book, sign_line("site.i2p", keys[1], action="update", extra={"note": "thief"}).to_text(),
                   forge(sign_line("site.i2p", keys[0], action="update", extra={"note": "forged"}), keys[1]))
    assert result.skipped.total() == 2 and book.get("site.i2p").properties["note"] == "first"
    result = apply(book, sign_line("site.i2p", keys[0], action="update", extra={"note": "second"}).to_text())
    assert result.changed == 1 and book.get("site.i2p").properties["note"] == "second"


def test_remove_and_removeall(book, keys):
    apply(book, f"a.i2p={keys[0].destination.b64}", f"b.i2p={keys[0].destination.b64}",
          f"c.i2p={keys[1].destination.b64}", f"d.i2p={keys[1].destination.b64}")
    result = apply(book, sign_line("a.i2p", keys[1], action="remove").to_text(),          # another dest's
                   forge(sign_line("c.i2p", keys[1], action="remove"), keys[0]),
                   forge(sign_line(None, keys[0], action="removeall"), keys[1]),
                   f"#!action=remove#name=a.i2p#dest={keys[0].destination.b64}")            # unsigned
    assert result.skipped["remove for a name with another destination"] == 1
    assert result.skipped["bad signature"] == 2 and result.skipped["unsigned command"] == 1
    assert book.count("router") == 4
    result = apply(book, sign_line("a.i2p", keys[0], action="remove").to_text())
    assert result.removed == 1 and book.get("a.i2p") is None and book.get("b.i2p")
    result = apply(book, sign_line("c.i2p", keys[1], action="removeall").to_text())
    assert result.removed == 2 and book.count("router") == 1


def test_order_of_a_feed_does_not_matter_for_changes_without_an_add(book, keys):
    # subscription.rst "Ordering": a change may come without its add
    result = apply(book, sign_line("site.i2p", keys[1], action="changedest", old_keys=keys[0]).to_text())
    assert result.added == 1 and book.lookup("site.i2p") == keys[1].destination


def test_binary_junk_costs_nothing(book, keys):
    apply(book, f"site.i2p={keys[0].destination.b64}")
    junk = os.urandom(200_000).decode("latin-1")
    result = apply_feed(book, junk, source=SRC)
    assert result.added == 0 and result.skipped["malformed"] >= 0 and len(result.examples) <= 20
    assert book.count("router") == 1 and book.lookup("site.i2p") == keys[0].destination


def test_100000_lines_half_malformed_and_a_forged_changedest(book, keys):
    dests = [k.destination.b64 for k in keys[:6]]
    apply(book, f"victim.i2p={dests[0]}")
    lines = []
    for i in range(50_000):
        lines.append(f"host{i}.i2p={dests[i % 6]}")
        lines.append(("bad_" if i % 2 else "") + f"junk{i}" + ("=short" if i % 3 else ".i2p"))
    lines.append(forge(sign_line("victim.i2p", keys[1], action="changedest", old_keys=keys[0]), keys[2]))
    result = apply_feed(book, "\n".join(lines), source=SRC)
    assert result.added == 50_000 and result.skipped["malformed"] == 50_000
    assert result.skipped["bad signature"] == 1 and result.lines == 100_001
    assert book.lookup("victim.i2p") == keys[0].destination and book.count("router") == 50_001
    assert AddressBook(book.folder).lookup("host49999.i2p") == keys[49_999 % 6].destination
    assert result.to_json()["skipped_by_reason"] == {"malformed": 50_000, "bad signature": 1}


@settings(max_examples=50)
@given(st.lists(st.one_of(st.text(max_size=100), st.sampled_from(["#!action=remove#name=a.i2p#dest=x#sig=y",
                                                                  "a.i2p=" + "A" * 516 + "#!sig=zz",
                                                                  "a.i2p=" + "A" * 516])), max_size=30))
def test_any_feed_applies_without_raising(tmp_path_factory, lines):
    book = AddressBook(tmp_path_factory.mktemp("fuzz"))
    text = "\n".join(lines)
    result = apply_feed(book, text, source=SRC)
    assert result.lines == text.count("\n") + 1
    assert result.added + result.changed + result.removed + result.unchanged + result.skipped.total() <= result.lines
    assert book.count("local") == 0
