"""The data folder and config.toml: one router per folder, what it runs with is what is written, and
every mistake named in one line (no traceback)."""
from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from core.config import ConfigError, load_config
from core.fsutil import DataDirInUse, DataDirLock, atomic_write
from core.router import Router


def _run(*args: str, timeout: float = 8) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyi2p", "run", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_first_start_writes_the_netid_it_runs_with(tmp_path):
    config = load_config(tmp_path, {"netid": 99})
    assert config.netid == 99
    assert tomllib.loads((tmp_path / "config.toml").read_text())["netid"] == 99
    assert load_config(tmp_path).netid == 99


@pytest.mark.parametrize("line, message", [
    ('log_level = "LOUD"', "log_level 'LOUD' is not one of"),
    ('control_host = "not-an-ip"', "control_host 'not-an-ip' is not an IP address"),
    ('host = "example.com"', "host 'example.com' is not an IP address"),
    ('sam_users = ["nopassword"]', "sam_users entries"),
])
def test_bad_settings_are_named(tmp_path, line, message):
    (tmp_path / "config.toml").write_text(f"port = 23456\n{line}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)


def test_a_second_router_on_one_folder_is_refused(tmp_path):
    first = DataDirLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(DataDirInUse, match="in use by another pyi2p"):
            DataDirLock(tmp_path).acquire()
    finally:
        first.release()
    second = DataDirLock(tmp_path)
    second.acquire()        # free again once released (and when the process dies: the kernel drops flocks)
    second.release()


async def test_router_holds_the_lock_while_it_runs(tmp_path):
    config = load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": 0})
    router = Router(config)
    await router.start()
    try:
        with pytest.raises(DataDirInUse):
            await Router(config).start()
    finally:
        await router.stop()
    again = Router(config)
    await again.start()
    await again.stop()


def test_corrupt_files_are_named_in_one_line(tmp_path):
    (tmp_path / "router.keys").write_bytes(b"\x00" * 100)
    result = _run("--datadir", str(tmp_path), "--netid", "42", "--sam-port", "0", "--control-port", "0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'router.keys'}: " in result.stderr and "truncated" in result.stderr


def test_corrupt_control_json_is_named_and_the_router_runs_on(tmp_path):
    (tmp_path / "control.json").write_text("{not json")
    with pytest.raises(subprocess.TimeoutExpired) as ran_on:
        _run("--datadir", str(tmp_path), "--netid", "42", "--sam-port", "0", timeout=6)
    stderr = (ran_on.value.stderr or b"").decode() if isinstance(ran_on.value.stderr, bytes) else ran_on.value.stderr or ""
    assert f"{tmp_path / 'control.json'} is not valid JSON" in stderr and "Traceback" not in stderr


def test_write_errors_name_the_target_not_the_temp_file(tmp_path):
    target = tmp_path / "router.info"
    target.mkdir()              # the rename over it fails (as root, permissions would not)
    with pytest.raises(OSError) as failed:
        atomic_write(target, b"x")
    assert failed.value.filename == str(target)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


async def test_sam_off_loopback_needs_a_password(tmp_path, caplog):
    config = load_config(tmp_path, {"netid": 42, "control_port": 0, "control_host": "0.0.0.0", "sam_port": 47656})
    router = Router(config)
    await router.start()
    try:
        assert router.sam is None
        assert "without a password" in caplog.text and "reachable from other machines" in caplog.text
    finally:
        await router.stop()


def test_newcomers_per_network_prefix_are_bounded():
    from core.router import NewcomerBudget
    budget = NewcomerBudget(per_hour=3, max_prefixes=2)
    assert [budget.admit("203.0.113.7", t) for t in range(5)] == [True, True, True, False, False]
    assert budget.admit("203.0.113.200", 10) is False          # same /24
    assert budget.admit("203.0.114.1", 10) is True             # another /24
    assert budget.admit("203.0.113.7", 3700) is True           # an hour later
    budget.admit("2001:db8::1", 20)
    assert len(budget._seen) == 2                               # bounded


async def test_throwaway_identities_dialling_in_fill_only_their_budget(tmp_path, monkeypatch):
    """Strangers from one /24 dial a real router; only the budget's worth of their RouterInfos is stored."""
    import asyncio
    import time as _time

    import core.router
    from core.clock import SystemClock
    from core.data.encoding import b64decode
    from core.transport.ntcp2.driver import connect
    from tests.transport.test_ntcp2_support import make_router

    monkeypatch.setattr(core.router, "PRIVATE_NET_NEWCOMERS_PER_PREFIX_HOUR", 3)
    config = load_config(tmp_path, {"netid": 42, "host": "127.0.0.1", "control_port": 0, "sam_port": 0})
    router = Router(config)
    await router.start()
    try:
        clock = SystemClock()
        us = router.router_info.addresses[0]
        static, iv = b64decode(us.options.get("s")), b64decode(us.options.get("i"))
        conns = []
        for n in range(6):
            stranger = make_router(f"stranger-{n}-{_time.time()}", clock, netid=42)
            conns.append(await connect("127.0.0.1", config.port, static_key=stranger.static_key,
                                       router_info=stranger.router_info_bytes, peer_router_hash=router.hash,
                                       peer_static_key=static, peer_iv=iv, netid=42, clock=clock))
        for _ in range(50):
            await asyncio.sleep(0.05)
            if len(router.transports.sessions) == 6:
                break
        assert len(router.transports.sessions) == 6          # every session is served...
        assert len(router.netdb) == 3                         # ...but only the budget is stored
        assert router.netdb.rejected["newcomer_budget"] == 3
        for conn in conns:
            await conn.close()
    finally:
        await router.stop()


async def test_a_part_that_hangs_does_not_stop_the_router_stopping(tmp_path, monkeypatch, caplog):
    import asyncio

    import core.router
    monkeypatch.setattr(core.router, "STOP_PART_TIMEOUT_S", 0.2)
    router = Router(load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": 0}))
    await router.start()

    async def hang():
        await asyncio.Event().wait()
    monkeypatch.setattr(router.tunnel_service, "stop", hang)
    await asyncio.wait_for(router.stop(), 5)
    assert "tunnels did not stop" in caplog.text
    again = Router(load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": 0}))
    await again.start()          # the data folder was let go
    await again.stop()
