"""SAM NAMING LOOKUP answered from the address book, plugged in as the node does it."""
from __future__ import annotations

from apps.naming.book import AddressBook
from pyi2p.cli import main as cli
from tests.sam.helpers import Sam, running_bridge


async def test_sam_naming_lookup_uses_the_book_and_sees_cli_changes(tmp_path, keys):
    book = AddressBook(tmp_path / "addressbook")
    book.add("site.i2p", keys[0].destination, book="router")
    book.add("site.i2p", keys[1].destination, book="private")
    async with running_bridge(address_book=book.lookup) as bridge:
        sam = await Sam.open(bridge)
        reply = await sam.cmd("NAMING LOOKUP NAME=Site.i2p")
        assert reply.options["RESULT"] == "OK" and reply.options["VALUE"] == keys[1].destination.b64
        assert (await sam.cmd("NAMING LOOKUP NAME=new.i2p")).options["RESULT"] == "KEY_NOT_FOUND"
        assert cli(["naming", "--datadir", str(tmp_path), "add", "new.i2p", "--", keys[2].destination.b64]) == 0
        reply = await sam.cmd("NAMING LOOKUP NAME=new.i2p")
        assert reply.options["RESULT"] == "OK" and reply.options["VALUE"] == keys[2].destination.b64
