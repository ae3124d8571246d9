"""I2PControl against a real `pyi2p run`: NetworkSetting saves the NTCP2 port for the next start, refuses
what this router does not have, and RouterManager Restart starts the node again in the same process."""
from __future__ import annotations

import subprocess
import sys
import time
import tomllib

import pytest

from core.control.client import ControlClient, ControlRpcError
from core.control.config import read_control_config


def _client(datadir):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            client = ControlClient.from_config(read_control_config(datadir))
            client.call("pyi2p.Summary")
            return client
        except Exception:
            time.sleep(0.3)
    raise AssertionError("the router's control API never answered")


def test_network_setting_and_restart(tmp_path):
    (tmp_path / "config.toml").write_text("port = 23001\nnetid = 42\nsam_port = 0\ncontrol_port = 0\n"
                                          "host = \"127.0.0.1\"\n"
                                          + "".join(f"\n[{a}]\nenabled = false\n"
                                                    for a in ("naming", "tunnels", "proxy", "mail", "torrent")))
    node = subprocess.Popen([sys.executable, "-m", "pyi2p", "run", "--datadir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        client = _client(tmp_path)
        pid_before = node.pid
        answer = client.call("NetworkSetting", {"i2p.router.net.ntcp.port": "23002"})
        assert answer == {"i2p.router.net.ntcp.port": "23001", "SettingsSaved": True, "RestartNeeded": True}
        assert tomllib.loads((tmp_path / "config.toml").read_text())["port"] == 23002
        assert tomllib.loads((tmp_path / "config.toml").read_text())["mail"] == {"enabled": False}
        with pytest.raises(ControlRpcError, match="cannot be changed on this router"):
            client.call("NetworkSetting", {"i2p.router.net.upnp": "true"})
        assert client.call("RouterManager", {"Restart": None}) == {"Restart": None}
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum("running" in line for line in lines) < 2:
            lines.append(node.stdout.readline())
        assert "pyi2p: restarting\n" in lines and sum("running" in line for line in lines) == 2
        client = _client(tmp_path)
        assert client.call("pyi2p.Summary")["NTCP2"]["Port"] == "23002"
        assert node.poll() is None and node.pid == pid_before
    finally:
        node.terminate()
        node.wait(timeout=20)
