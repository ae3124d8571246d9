"""Prints the resident memory of an idle `pyi2p run` router (apps off) and of the default node (every app
on), each started in a subprocess on a private netid with loopback ports, measured after it has been up
for --seconds. i2pd is not started here (it runs only inside a testnet namespace); an idle i2pd 2.45.1
measured 13-14 MB on this machine, so the figure to compare is RSS <= 28 MB.

Run: python benchmarks/bench_memory.py [--seconds 30] [--router-only] [--imports]
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.stats import rss_mb  # noqa: E402

APPS = ("naming", "tunnels", "proxy", "mail", "torrent")
# the apps' listening ports at 0 (any free port), so the benchmark never collides with a running node
APP_PORTS = {"proxy": {"port": 0, "socks_port": 0}, "mail": {"smtp_port": 0, "pop3_port": 0}}
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(datadir: Path, apps: bool) -> None:
    lines = []
    for name in APPS:
        lines.append(f"[{name}]")
        if not apps:
            lines.append("enabled = false")
        for key, value in APP_PORTS.get(name, {}).items():
            lines.append(f"{key} = {value}")
        lines.append("")
    (datadir / "config.toml").write_text("\n".join(lines))


def measure(apps: bool, seconds: float) -> tuple[float, float]:
    """(RSS MiB once up, RSS MiB after `seconds` idle) of one node."""
    with tempfile.TemporaryDirectory(prefix="pyi2p-mem-") as tmp:
        datadir = Path(tmp)
        write_config(datadir, apps)
        command = [sys.executable, "-m", "pyi2p", "run", "--datadir", str(datadir), "--netid", "99",
                   "--host", "127.0.0.1", "--port", str(free_port()), "--control-port", str(free_port()),
                   "--sam-port", str(free_port()), "--sam-udp-port", str(free_port()), "--log-level", "WARNING"]
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    raise SystemExit(f"the node exited before it was up (code {proc.wait()})")
                if " running (" in line:
                    break
            else:
                raise SystemExit("the node did not come up")
            time.sleep(1.0)   # let the listing and first timers run
            up = rss_mb(proc.pid)
            time.sleep(seconds)
            return up, rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def import_figures() -> None:
    """RSS a fresh interpreter reaches by importing what `pyi2p run` imports."""
    for what in ("pass", "import asyncio", "import core.router",
                 "import pyi2p.cli; pyi2p.cli.build_parser(['run'])"):
        code = f"from core.stats import rss_mb; {what}; print(round(rss_mb(), 1))"
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        print(f"  {what:<50} {out.stdout.strip():>6} MB")


def netdb_entry_bytes(count: int = 200) -> tuple[float, float]:
    """(wire bytes, bytes in memory) of one parsed RouterInfo with two addresses, as a netDb holds thousands."""
    import tracemalloc
    from core.data.encoding import b64encode
    from core.data.privatekeys import PrivateKeys
    from core.data.routerinfo import RouterAddress, RouterInfo
    blobs = []
    for i in range(count):
        keys = PrivateKeys.generate()
        host = f"10.{i // 250}.{i % 250}.1"
        addresses = [RouterAddress.create(style, {"host": host, "port": "12345", "s": b64encode(os.urandom(32)),
                                                  "i": b64encode(os.urandom(size)), "v": "2"})
                     for style, size in (("NTCP2", 16), ("SSU2", 32))]
        options = {"caps": "LR", "netId": "2", "router.version": "0.9.66", "coreVersion": "0.9.66",
                   "netdb.knownLeaseSets": "12", "netdb.knownRouters": "3000"}
        blobs.append(RouterInfo.create(keys.router_identity, keys.signing_private_key, int(time.time() * 1000),
                                       addresses, options).to_bytes())
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    parsed = [RouterInfo.parse(blob) for blob in blobs]
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del parsed
    return sum(map(len, blobs)) / count, used / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="idle time before the second reading")
    parser.add_argument("--router-only", action="store_true", help="skip the node with apps")
    parser.add_argument("--imports", action="store_true", help="also print RSS after the imports alone")
    args = parser.parse_args()
    if args.imports:
        print("RSS of a fresh interpreter after:")
        import_figures()
    cases = [("router (apps off)", False)] + ([] if args.router_only else [("node (all apps)", True)])
    for name, apps in cases:
        up, idle = measure(apps, args.seconds)
        print(f"{name:<20} RSS {up:6.1f} MB when up, {idle:6.1f} MB after {args.seconds:.0f} s idle")
    wire, held = netdb_entry_bytes()
    print(f"netDb: a RouterInfo of {wire:.0f} wire bytes holds {held:.0f} bytes in memory "
          f"({held * 5000 / 2**20:.1f} MB for a full netDb of 5,000)")
    print("i2pd 2.45.1 idle (measured earlier on this machine): 13-14 MB; goal <= 2x")


if __name__ == "__main__":
    main()
