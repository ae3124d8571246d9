"""`pyi2p tui` in a real terminal (tmux) against a `pyi2p run` node in another process."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from core.control.client import ControlClient
from core.control.config import read_control_config

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


def _wait(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_tui_in_tmux_shows_the_running_node(tmp_path):
    datadir = tmp_path / "node"
    datadir.mkdir()
    (datadir / "config.toml").write_text('port = 24680\nnetid = 42\ncontrol_port = 0\nsam_port = 0\n'
                                         + "".join(f"\n[{app}]\nenabled = false\n"
                                                   for app in ("naming", "tunnels", "proxy", "mail", "torrent")))
    node = subprocess.Popen([sys.executable, "-m", "pyi2p", "run", "--datadir", str(datadir)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    session = f"pyi2p-tui-{uuid.uuid4().hex[:8]}"
    try:
        first = node.stdout.readline()
        assert "running" in first, first
        summary = _wait(lambda: _summary(datadir), "the node's control API")
        command = f"{sys.executable} -m pyi2p tui --datadir {datadir} --refresh 0.5"
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "45", command], check=True,
                       env={**os.environ, "TERM": "xterm-256color"})
        def screen_with_hash():
            text = _capture(session)
            return text if summary["RouterHash"][:40] in text else None
        screen = _wait(screen_with_hash, "the router hash on screen")
        assert f"{summary['ActivePeers']} active" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "p"], check=True)
        _wait(lambda: "Transport" in _capture(session), "the peers tab")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        _wait(lambda: subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode != 0,
              "the console to quit on q", timeout=10)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        node.terminate()
        node.wait(timeout=20)


def _summary(datadir):
    try:
        return ControlClient.from_config(read_control_config(datadir)).call("pyi2p.Summary")
    except Exception:
        return None


def _capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
