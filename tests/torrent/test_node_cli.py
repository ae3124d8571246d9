"""`pyi2p torrent add|list|peers|pause|resume|remove` against a running node: the node builds TorrentService
from its [torrent] table and registers pyi2p.Torrent.* in I2PControl, the commands call them."""
from __future__ import annotations

import asyncio
import io

from core.config import load_config
from pyi2p.cli import build_parser
from pyi2p.node import APPS, Node

TORRENT = tuple(spec for spec in APPS if spec.name == "torrent")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    args = build_parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    code = args.func(args, out=out, err=err) if args.verb != "create" else args.func(args, out)
    return code, out.getvalue(), err.getvalue()


async def test_commands_drive_the_nodes_torrents(tmp_path):
    config = load_config(tmp_path / "node", {"netid": 42, "control_port": 0, "sam_port": 0})
    sections = {"torrent": {"download_dir": str(tmp_path / "files"), "dht": False, "tracker": True,
                            "inbound.length": 0, "outbound.length": 0}}
    node = Node(config, sections=sections, apps=TORRENT)
    await asyncio.wait_for(node.start(), 120)
    loop = asyncio.get_running_loop()
    datadir = ["--datadir", str(tmp_path / "node")]
    try:
        assert node.slot("torrent").state == "running", node.services_status()
        assert "pyi2p.Torrent.List" in node.slot("torrent").methods
        (tmp_path / "files").mkdir(exist_ok=True)
        (tmp_path / "files" / "a.bin").write_bytes(b"x" * 40_000)
        code, out, _ = await loop.run_in_executor(None, run_cli, ["torrent", "create", str(tmp_path / "files" / "a.bin"),
                                                                  "-o", str(tmp_path / "a.torrent")])
        assert code == 0
        code, out, err = await loop.run_in_executor(None, run_cli, ["torrent", "add", str(tmp_path / "a.torrent"),
                                                                    "--up-limit", "100", *datadir])
        assert code == 0, err
        assert "100.0% seeding" in out and "a.bin" in out
        code, out, _ = await loop.run_in_executor(None, run_cli, ["torrent", "list", *datadir])
        assert code == 0 and out.count("\n") == 1 and "[########################]" in out
        code, out, _ = await loop.run_in_executor(None, run_cli, ["torrent", "pause", "a.bin", *datadir])
        assert code == 0 and " paused " in out
        code, out, _ = await loop.run_in_executor(None, run_cli, ["torrent", "resume", "a.bin", *datadir])
        assert code == 0 and " seeding " in out
        code, out, _ = await loop.run_in_executor(None, run_cli, ["torrent", "peers", "a.bin", *datadir])
        assert code == 0 and out == "no peers connected\n"
        code, _, err = await loop.run_in_executor(None, run_cli, ["torrent", "pause", "nothing", *datadir])
        assert code == 1 and "names no torrent" in err
        code, out, _ = await loop.run_in_executor(None, run_cli, ["torrent", "remove", "a.bin", *datadir])
        assert code == 0 and out.startswith("removed ")
        code, out, _ = await loop.run_in_executor(None, run_cli, ["torrent", "list", *datadir])
        assert out == "no torrents\n"
        assert any(what == "torrent tracker" for what, _ in node.listening())
    finally:
        await node.stop()
