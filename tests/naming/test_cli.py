"""`pyi2p naming`: sign, lookup, list, subscriptions, update through an HTTP proxy."""
from __future__ import annotations

import asyncio
import json
import threading

from apps.naming.book import AddressBook
from apps.naming.feed import parse_line, verify_line
from apps.naming.http import format_response, parse_request_head
from pyi2p.cli import main as cli


def run(capsys, *args) -> tuple[int, str, str]:
    code = cli(["naming", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sign_every_form(tmp_path, keys, capsys):
    files = []
    for i in range(3):
        keys[i].save(tmp_path / f"k{i}.keys")
        files.append(str(tmp_path / f"k{i}.keys"))
    forms = [([], "add"), (["--change", files[1]], "changedest"), (["--adddest", files[1]], "adddest"),
             (["--alias", "old.i2p"], "addname"), (["--rename", "old.i2p"], "changename"),
             (["--subdomain", files[2]], "addsubdomain"), (["--remove"], "remove"), (["--removeall"], "removeall")]
    for extra, action in forms:
        name = "sub.site.i2p" if action == "addsubdomain" else "site.i2p"
        code, out, _ = run(capsys, "sign", name, files[0], *extra)
        line = parse_line(out.strip())
        assert code == 0 and line.action == action and verify_line(line), action
        assert "date" in line.properties
    code, _, err = run(capsys, "sign", "bad_name.i2p", files[0])
    assert code == 2 and "only a-z" in err


def test_lookup_list_and_exit_codes(tmp_path, keys, capsys):
    d = str(tmp_path)
    assert run(capsys, "--datadir", d, "add", "a.i2p", "--", keys[0].destination.b64)[0] == 0
    assert run(capsys, "--datadir", d, "add", "b.i2p", keys[1].destination.b32_address, "--book", "private")[0] == 0
    code, out, _ = run(capsys, "--datadir", d, "lookup", "A.i2p", "--json")
    assert code == 0 and json.loads(out)["b32"] == keys[0].destination.b32_address
    assert run(capsys, "--datadir", d, "lookup", "none.i2p")[0] == 1
    code, out, _ = run(capsys, "--datadir", d, "list")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["a.i2p", "b.i2p"]
    assert run(capsys, "--datadir", d, "remove", "b.i2p")[0] == 1          # it is in the private book
    assert run(capsys, "--datadir", d, "remove", "b.i2p", "--book", "private")[0] == 0


def test_subscriptions_list_add_remove(tmp_path, capsys):
    d = str(tmp_path)
    code, out, _ = run(capsys, "--datadir", d, "subscriptions")
    assert code == 0 and "reg.i2p" not in out and ".b32.i2p/hosts.txt" in out and "not fetched yet" in out
    assert run(capsys, "--datadir", d, "subscriptions", "add", "http://x.i2p/hosts.txt")[0] == 0
    assert run(capsys, "--datadir", d, "subscriptions", "remove", "http://nothere.i2p/")[0] == 1
    code, out, _ = run(capsys, "--datadir", d, "subscriptions", "--json")
    assert [s["url"] for s in json.loads(out)][-1] == "http://x.i2p/hosts.txt"
    code, _, err = run(capsys, "--datadir", d, "update")
    assert code == 1 and "--proxy" in err


def test_update_through_an_http_proxy(tmp_path, keys, capsys):
    seen: list = []
    feed = f"via-proxy.i2p={keys[0].destination.b64}\n".encode()
    ready = threading.Event()
    box: dict = {}

    def proxy_thread():
        async def handle(reader, writer):
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(parse_request_head(head[:-4]))
            writer.write(format_response(200, "OK", {}, feed))
            await writer.drain()
            writer.close()

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            box["port"] = server.sockets[0].getsockname()[1]
            box["stop"] = asyncio.Event()
            ready.set()
            await box["stop"].wait()
            server.close()
        box["loop"] = asyncio.new_event_loop()
        box["loop"].run_until_complete(main())

    thread = threading.Thread(target=proxy_thread, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        code, out, _ = run(capsys, "--datadir", str(tmp_path), "update", "http://reg.i2p/hosts.txt",
                           "--proxy", f"127.0.0.1:{box['port']}")
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
    assert code == 0 and "1 added" in out
    assert seen[0].target == "http://reg.i2p/hosts.txt" and seen[0].headers["host"] == "reg.i2p"
    assert AddressBook(tmp_path / "addressbook").lookup("via-proxy.i2p") == keys[0].destination
