"""`pyi2p status` against a running server (JSON and text output) and against nothing."""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket

import pytest

from core.control.config import ControlConfig, save_control_config
from core.control.methods import b64
from core.control.server import start_control_server
from pyi2p.status import EXIT_NO_ROUTER, EXIT_REFUSED, add_parser, format_duration, run_status

from .fakes import HOP_A, HOP_B, ROUTER_HASH, FakeRouter


def parse(argv):
    parser = argparse.ArgumentParser(prog="pyi2p")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def status(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = parse(argv)
    code = args.func(args, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
async def running(tmp_path):
    save_control_config(tmp_path, ControlConfig("127.0.0.1", 0, "secret"))
    server = await start_control_server(FakeRouter(), tmp_path)
    yield tmp_path
    await server.stop()


def test_parser_defaults():
    args = parse(["status"])
    assert args.datadir == "~/.pyi2p" and args.json is False and args.func is run_status


async def test_status_json(running):
    code, out, err = await asyncio.to_thread(status, ["status", "--datadir", str(running), "--json"])
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["Summary"]["RouterHash"] == b64(ROUTER_HASH)
    assert report["RouterInfo"]["i2p.router.netdb.knownpeers"] == 120
    assert report["RouterInfo"]["i2p.router.net.tunnels.participating"] == 3
    assert report["Summary"]["Floodfills"] == 9 and report["Summary"]["Peers"]["NTCP2"] == 2
    assert report["Tunnels"][0]["Hops"] == [b64(HOP_A), b64(HOP_B)]
    assert report["Tunnels"][0]["State"] == "established"
    assert report["Summary"]["BuildSuccessRatio"] == 0.84
    assert [p["Transport"] for p in report["Peers"]] == ["NTCP2", "NTCP2", "SSU2"]
    assert report["Destinations"][0]["Name"] == "shared clients"


async def test_status_text(running):
    code, out, err = await asyncio.to_thread(status, ["status", "--datadir", str(running)])
    assert (code, err) == (0, "")
    assert b64(ROUTER_HASH) in out
    assert "up 1h 02m 03s" in out and "network FIREWALLED" in out
    assert "120 routers (9 floodfills)" in out and "2 NTCP2, 1 SSU2" in out
    assert "3 ours (1 building, 2 established), 3 transit, build success 84%" in out
    assert f"{b64(HOP_A)[:6]} > {b64(HOP_B)[:6]}" in out and "(zero hop)" in out
    assert "NTCP2       127.0.0.1:12345" in out


async def test_status_with_a_wrong_password(running):
    save_control_config(running, ControlConfig("127.0.0.1", json.loads((running / "control.json").read_text())["port"],
                                               "stale"))
    code, out, err = await asyncio.to_thread(status, ["status", "--datadir", str(running)])
    assert code == EXIT_REFUSED and out == ""
    assert err.count("\n") == 1 and "Invalid password" in err and "Traceback" not in err


def test_status_without_control_file(tmp_path):
    code, out, err = status(["status", "--datadir", str(tmp_path / "empty")])
    assert code == EXIT_NO_ROUTER and out == ""
    assert err.count("\n") == 1 and "no router found" in err and "control.json does not exist" in err


def test_status_when_nothing_listens(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    save_control_config(tmp_path, ControlConfig("127.0.0.1", port, "secret"))
    code, out, err = status(["status", "--datadir", str(tmp_path)])
    assert code == EXIT_NO_ROUTER and out == ""
    assert err.count("\n") == 1 and "connection refused" in err and "Traceback" not in err


def test_status_with_a_broken_control_file(tmp_path):
    (tmp_path / "control.json").write_text("{not json")
    code, out, err = status(["status", "--datadir", str(tmp_path)])
    assert code == EXIT_NO_ROUTER and err.count("\n") == 1 and "not valid JSON" in err


def test_durations():
    assert format_duration(0) == "0m 00s"
    assert format_duration(3_723_500) == "1h 02m 03s"
    assert format_duration(90_061_000) == "1d 1h 01m"
