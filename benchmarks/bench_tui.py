#!/usr/bin/env python3
"""The console in a real terminal (tmux) against a `pyi2p run` node with every app, both in processes of their own.

Figures:
- start to first full overview: from launching `pyi2p tui` to the router hash on screen (tmux capture-pane);
- CPU of the console process while it refreshes once a second, per tab (% of one core, from /proc utime+stime);
- the console's resident memory after each tab.

    python benchmarks/bench_tui.py [--seconds 30] [--refresh 1]

Needs tmux. Loopback only; a lone router (no peers), its apps on zero-hop tunnels.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.control.client import ControlClient  # noqa: E402
from core.control.config import read_control_config  # noqa: E402
from core.stats import cpu_times, rss_mb  # noqa: E402

ZERO = "inbound.length = 0\noutbound.length = 0\n"
CONFIG = ("port = 24681\nnetid = 42\ncontrol_port = 0\nsam_port = 0\nsam_udp_port = 0\n"
          "[naming]\nsubscribe = false\n[proxy]\nport = 0\nsocks_port = 0\n[proxy.inbound]\nlength = 0\n"
          "[proxy.outbound]\nlength = 0\n[mail]\nsmtp_port = 0\npop3_port = 0\n[torrent]\ndht = false\n"
          '"inbound.length" = 0\n"outbound.length" = 0\n')


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


def capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def wait(predicate, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise SystemExit(f"timed out waiting for {what}")


def summary(datadir: Path):
    try:
        return ControlClient.from_config(read_control_config(datadir)).call("pyi2p.Summary")
    except Exception:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="CPU sampling window per tab")
    parser.add_argument("--refresh", type=float, default=1.0)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        datadir = Path(tmp) / "node"
        datadir.mkdir()
        (datadir / "config.toml").write_text(CONFIG)
        (datadir / "tunnels.conf").write_text(f"[site]\ntype = http\nhost = 127.0.0.1\nport = 9\n{ZERO}")
        node = subprocess.Popen([sys.executable, "-m", "pyi2p", "run", "--datadir", str(datadir)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        session = f"bench-tui-{uuid.uuid4().hex[:8]}"
        try:
            node.stdout.readline()
            router_hash = wait(lambda: summary(datadir), 60, "the node's control API", 0.3)["RouterHash"]
            command = f"{sys.executable} -m pyi2p tui --datadir {datadir} --refresh {args.refresh}"
            started = time.monotonic()
            subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "45", command], check=True,
                           env={**os.environ, "TERM": "xterm-256color"})
            wait(lambda: router_hash[:40] in capture(session), 30, "the router hash on screen", 0.02)
            first = time.monotonic() - started
            wait(lambda: "torrent" in capture(session), 30, "the services on the overview")
            full = time.monotonic() - started
            pid = int(subprocess.run(["tmux", "display", "-p", "-t", session, "#{pane_pid}"], capture_output=True,
                                     text=True).stdout.strip())
            if b"tui" not in Path(f"/proc/{pid}/cmdline").read_bytes():       # a shell between tmux and python
                pid = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
            print(f"start to router hash on screen: {first:.2f} s; to the full overview (services listed): {full:.2f} s")
            for key, tab in (("o", "overview"), ("s", "services"), ("m", "mail"), ("b", "torrents"), ("l", "logs")):
                subprocess.run(["tmux", "send-keys", "-t", session, key], check=True)
                time.sleep(2.0)
                before, t0 = cpu_seconds(pid), time.monotonic()
                time.sleep(args.seconds)
                used = cpu_seconds(pid) - before
                print(f"{tab:<10} refresh {args.refresh:g} s: CPU {100 * used / (time.monotonic() - t0):5.1f}% of one "
                      f"core, RSS {rss_mb(pid):.0f} MB")
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
            node.terminate()
            node.wait(timeout=30)


if __name__ == "__main__":
    main()
