"""The address book: precedence, persistence, sharing the files with another process, imports."""
from __future__ import annotations

import multiprocessing
import os

import pytest
from hypothesis import given, strategies as st

from apps.naming.book import AddressBook, Entry, load_book_text, storage_line
from apps.naming.names import NamingError
from pyi2p.cli import main as cli


def test_private_beats_local_beats_router(tmp_path, keys):
    book = AddressBook(tmp_path)
    a, b, c = (k.destination for k in keys[:3])
    book.add("site.i2p", c, book="router")
    assert book.lookup("site.i2p") == c and book.get("site.i2p").book == "router"
    book.add("site.i2p", b, book="local")
    assert book.lookup("site.i2p") == b
    book.add("site.i2p", a, book="private")
    assert book.lookup("SITE.i2p") == a and book.get("site.i2p").book == "private"
    assert book.remove("site.i2p", book="private")
    assert book.lookup("site.i2p") == b
    assert [e.book for e in book.names()] == ["local"]
    assert {e.book for e in book.names("router")} == {"router"}
    assert book.lookup("other.i2p") is None and book.get("other.i2p") is None
    assert not book.remove("other.i2p")


def test_books_are_hosts_txt_files_reloaded_by_a_new_book(tmp_path, keys):
    book = AddressBook(tmp_path)
    book.add("a.i2p", keys[0].destination, book="local", source="cli")
    book.add("b.i2p", keys[1].destination, book="router", properties={"sig": "x", "date": "5"})
    book.add("c.i2p", keys[2].destination, book="private")
    assert (tmp_path / "userhosts.txt").read_text().splitlines()[1].startswith(f"a.i2p={keys[0].destination.b64}#!")
    assert (tmp_path / "hosts.txt").exists() and (tmp_path / "privatehosts.txt").exists()
    again = AddressBook(tmp_path)
    assert again.lookup("a.i2p") == keys[0].destination and again.get("a.i2p").source == "cli"
    assert again.get("b.i2p").properties["sig"] == "x" and again.get("b.i2p").added > 0
    assert again.lookup("c.i2p") == keys[2].destination


def test_a_change_by_another_process_is_seen_at_the_next_lookup(tmp_path, keys):
    book = AddressBook(tmp_path / "addressbook")        # what a running node holds
    assert book.lookup("new.i2p") is None
    assert cli(["naming", "--datadir", str(tmp_path), "add", "new.i2p", "--", keys[0].destination.b64]) == 0
    assert book.lookup("new.i2p") == keys[0].destination
    assert cli(["naming", "--datadir", str(tmp_path), "add", "new.i2p", keys[1].destination.b32_address]) == 0
    assert book.lookup("new.i2p") is None and book.resolve_alias("new.i2p") == keys[1].destination.b32_address
    assert cli(["naming", "--datadir", str(tmp_path), "remove", "new.i2p"]) == 0
    assert book.get("new.i2p") is None


def _add_many(folder, b64s, start):
    book = AddressBook(folder)
    for i in range(20):
        book.add(f"p{start}-{i}.i2p", b64s[i % len(b64s)])


def test_concurrent_writers_lose_nothing(tmp_path, keys):
    b64s = [k.destination.b64 for k in keys[:3]]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_many, args=(tmp_path, b64s, n)) for n in range(3)]
    for p in procs:
        p.start()
    _add_many(tmp_path, b64s, 9)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert AddressBook(tmp_path).count("local") == 80


def test_b32_alias_entries(tmp_path, keys):
    book = AddressBook(tmp_path)
    b32 = keys[0].destination.b32_address
    book.add("alias.i2p", b32.upper())
    entry = book.get("alias.i2p")
    assert entry.is_alias and entry.dest == b32 and entry.b32 == b32
    assert book.lookup("alias.i2p") is None and book.resolve_alias("alias.i2p") == b32
    assert AddressBook(tmp_path).resolve_alias("alias.i2p") == b32


@pytest.mark.parametrize("name, dest", [("bad_name.i2p", None), ("x.b32.i2p", None), ("router.i2p", None),
                                        ("ok.i2p", "A" * 600), ("ok.i2p", "%" * 520), ("ok.i2p", "tooshort"), ("ok.i2p", "x.b32.i2p")])
def test_bad_names_and_destinations_raise_naming_error(tmp_path, keys, name, dest):
    book = AddressBook(tmp_path)
    with pytest.raises(NamingError):
        book.add(name, dest or keys[0].destination)
    with pytest.raises(NamingError):
        book.add("fine.i2p", keys[0].destination, book="public")
    assert book.count() == 0 and not (tmp_path / "userhosts.txt").exists()


def test_stored_book_survives_damaged_lines(tmp_path, keys):
    dest = keys[0].destination.b64
    text = f"# header\ngarbage\n=x\na.i2p={dest}\na.i2p={keys[1].destination.b64}\nb.i2p={dest}#!a=1#novalue\n\x00\xff\n"
    entries = load_book_text(text, "local")
    assert list(entries) == ["a.i2p"] and entries["a.i2p"].dest == dest
    (tmp_path / "userhosts.txt").write_text(text)
    assert AddressBook(tmp_path).lookup("a.i2p") == keys[0].destination


def test_storage_line_keeps_local_keys_and_escapes_hash(keys):
    entry = Entry("a.i2p", keys[0].destination.b64, "router", {"@source": "http://x/#frag".replace("#", "%23"),
                                                               "sig": "s"})
    parsed = load_book_text(storage_line(entry), "router")["a.i2p"]
    assert parsed == entry


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path, keys):
    book = AddressBook(tmp_path)
    for i in range(5):
        book.add(f"n{i}.i2p", keys[i].destination)
    assert sorted(os.listdir(tmp_path)) == [".lock", "userhosts.txt"]


def test_import_java_files_and_i2pd_csv(tmp_path, keys, capsys):
    java = tmp_path / "java"
    java.mkdir()
    d0, d1, d2 = (k.destination.b64 for k in keys[:3])
    (java / "hosts.txt").write_text(f"# Java hosts.txt\nzzz.i2p={d0}\nbad line\nforum.i2p={d1}#!date=1#sig=x\n")
    (java / "privatehosts.txt").write_text(f"mine.i2p={d2}\n")
    i2pd = tmp_path / "i2pd" / "addressbook"
    i2pd.mkdir(parents=True)
    hash0 = keys[3].destination.b32_address[:-8]
    hash1 = keys[4].destination.b32_address[:-8]
    (i2pd / "addresses.csv").write_text(f"full.i2p,{hash0}\nhashonly.i2p,{hash1}\nnocomma\n")
    (i2pd / f"b{hash0[0]}").mkdir()
    (i2pd / f"b{hash0[0]}" / f"{hash0}.b32").write_bytes(keys[3].destination.to_bytes())
    datadir = tmp_path / "node"
    assert cli(["naming", "--datadir", str(datadir), "import", str(java / "hosts.txt")]) == 0
    assert cli(["naming", "--datadir", str(datadir), "import", str(java / "privatehosts.txt")]) == 0
    assert cli(["naming", "--datadir", str(datadir), "import", str(i2pd / "addresses.csv"), "--book", "local"]) == 0
    book = AddressBook(datadir / "addressbook")
    assert book.get("zzz.i2p").book == "router" and book.get("forum.i2p").properties["sig"] == "x"
    assert book.get("mine.i2p").book == "private"
    assert book.lookup("full.i2p") == keys[3].destination
    assert book.resolve_alias("hashonly.i2p") == keys[4].destination.b32_address
    out = capsys.readouterr()
    assert "1 lines skipped" in out.err
    # a second import keeps what is there
    (java / "hosts.txt").write_text(f"zzz.i2p={d2}\n")
    assert cli(["naming", "--datadir", str(datadir), "import", str(java / "hosts.txt")]) == 0
    assert AddressBook(datadir / "addressbook").lookup("zzz.i2p") == keys[0].destination
    assert cli(["naming", "--datadir", str(datadir), "import", str(java / "hosts.txt"), "--replace"]) == 0
    assert AddressBook(datadir / "addressbook").lookup("zzz.i2p") == keys[2].destination
    capsys.readouterr()
    assert cli(["naming", "--datadir", str(datadir), "export", "--book", "router"]) == 0
    exported = capsys.readouterr().out.splitlines()
    assert f"zzz.i2p={d2}" in exported and f"forum.i2p={d1}#!date=1#sig=x" in exported


@given(st.text(max_size=3000))
def test_any_stored_text_loads_without_raising(text):
    for name, entry in load_book_text(text, "router").items():
        assert entry.name == name and entry.book == "router"
