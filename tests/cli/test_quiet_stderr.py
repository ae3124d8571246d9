"""Every `pyi2p` subcommand's --help, and ordinary runs of the offline tools, print nothing on stderr
(scripts read stderr, and `2>&1 | jq` must stay parseable)."""
from __future__ import annotations

import argparse
import subprocess
import sys

from pathlib import Path

import pytest

from core.data.privatekeys import PrivateKeys
from pyi2p.cli import build_parser


def _subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(prefix + (name,))
                found += _subcommands(sub, prefix + (name,))
    return found


def _pyi2p(*args: str, cwd=None, input: str | None = None) -> subprocess.CompletedProcess:
    # PYTHONWARNINGS=default: a warning any import raises shows, as it would for a user
    return subprocess.run([sys.executable, "-m", "pyi2p", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, input=input, env={"PYTHONWARNINGS": "default", "PATH": "/usr/bin:/bin"})


def test_every_subcommand_is_listed():
    commands = _subcommands(build_parser())
    assert ("run",) in commands and ("testnet", "up") in commands and len(commands) >= 10


@pytest.mark.parametrize("command", [(), *_subcommands(build_parser())], ids=lambda c: " ".join(c) or "pyi2p")
def test_help_prints_nothing_on_stderr(command):
    result = _pyi2p(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "usage: pyi2p" in result.stdout


def test_ordinary_tool_runs_print_nothing_on_stderr(tmp_path):
    keys = tmp_path / "site.keys"
    for args in (("keygen", str(keys)), ("keyinfo", str(keys)), ("keyinfo", "--json", str(keys)),
                 ("keygen", "--sig-type", "0", str(tmp_path / "dsa.keys")), ("keyinfo", str(tmp_path / "dsa.keys"))):
        result = _pyi2p(*args)
        assert (result.returncode, result.stderr) == (0, ""), args
        assert result.stdout


def test_ordinary_offline_runs_of_the_data_dir_commands_print_nothing_on_stderr(tmp_path):
    """One ordinary run of each subcommand that works without a running node (those that need one are run
    against the demo network in tests/interop/test_demo.py)."""
    d = ["--datadir", str(tmp_path / "node")]
    keys = tmp_path / "site.keys"
    (tmp_path / "share").mkdir()
    (tmp_path / "share" / "file.txt").write_text("shared\n")
    fixture = Path(__file__).parent.parent / "data" / "fixtures" / "i2pd-router.info"
    runs = [("keygen", str(keys)), ("routerinfo", str(fixture)),
            ("naming", *d, "add", "site.i2p", "--", "DEST"), ("naming", *d, "lookup", "site.i2p"),
            ("naming", *d, "list"), ("naming", *d, "export"), ("naming", *d, "subscriptions", "list"),
            ("naming", *d, "remove", "site.i2p"),
            ("mail", *d, "adduser", "alice", "--password-stdin"), ("mail", *d, "passwd", "alice", "--password-stdin"),
            ("mail", *d, "address"),
            ("torrent", "create", str(tmp_path / "share"), "-o", str(tmp_path / "share.torrent")),
            ("testnet", "down", "--base", str(tmp_path / "no-testnet"))]
    for args in runs:
        if "DEST" in args:
            args = tuple(PrivateKeys.load(keys).destination.b64 if a == "DEST" else a for a in args)
        result = _pyi2p(*args, input="a-password-of-some-length\n" if "--password-stdin" in args else None)
        assert (result.returncode, result.stderr) == (0, ""), args
        if "lookup" in args:
            assert PrivateKeys.load(keys).destination.b32_address in result.stdout


def test_a_message_repeated_every_loop_turn_is_logged_once_per_interval():
    import logging

    from pyi2p.run import NOISY_ASYNCIO, RepeatFilter
    now = [0.0]
    noise = RepeatFilter(NOISY_ASYNCIO, interval_s=10, clock=lambda: now[0])

    def record(msg):
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, None)
    passed = [noise.filter(record("socket.accept() out of system resource")) for _ in range(100_000)]
    assert sum(passed) == 1
    now[0] = 11.0
    late = record("socket.accept() out of system resource")
    assert noise.filter(late) and "99999 more like it suppressed" in late.msg
    assert all(noise.filter(record("something else")) for _ in range(3))
