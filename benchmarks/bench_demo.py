#!/usr/bin/env python3
"""How long a newcomer waits: `pyi2p testnet up --demo` from a fresh folder (needs root and i2pd) until it
prints "ready", and until curl gets http://demo.i2p/ through the printed proxy on this host's 127.0.0.1;
then `down`, and `up --demo` again on the same folder (identities kept), timed the same way.

    python benchmarks/bench_demo.py [--runs 3] [--demo-ports 4444,6668,7659,7660]
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyi2p.testnet import unavailable_reason  # noqa: E402


def up(base: Path, netns: str, ports: str) -> tuple[float, float, float]:
    """Seconds from the start of `up --demo` until the i2pd routers were ready (its "READY after" line), to
    its "ready" line, and to curl's first page of demo.i2p."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pyi2p", "testnet", "up", "--demo", "--base", str(base),
                             "--netns", netns, "--demo-ports", ports, "--wait", "300"],
                            capture_output=True, text=True, timeout=420)
    ready = time.monotonic() - started
    if result.returncode != 0 or result.stdout.splitlines()[-1:] != ["ready"]:
        raise RuntimeError(f"up --demo failed: {result.stderr.strip().splitlines()[-1:]}")
    page = subprocess.run(["curl", "-s", "-m", "60", "-x", f"http://127.0.0.1:{ports.split(',')[0]}",
                           "http://demo.i2p/"], capture_output=True, text=True, timeout=90).stdout
    first_page = time.monotonic() - started
    if "Welcome to demo.i2p" not in page:
        raise RuntimeError(f"demo.i2p did not answer curl: {page[:200]!r}")
    routers = float(re.search(r"READY after ([\d.]+) s", result.stdout).group(1))
    return routers, ready, first_page


def down(base: Path) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pyi2p", "testnet", "down", "--base", str(base)], capture_output=True,
                   timeout=120, check=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--demo-ports", default="4444,6668,7659,7660")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"cannot run: {reason}")
        return 1
    figures: dict[str, list[float]] = {"fresh routers": [], "fresh ready": [], "fresh first page": [],
                                       "again routers": [], "again ready": [], "again first page": [], "down": []}
    failures: list[str] = []
    for run in range(args.runs):
        base = Path(tempfile.mkdtemp(prefix="bench-demo-")) / "demo"
        netns = f"demo-bench{run}"
        failed = False
        try:
            for when in ("fresh", "again"):
                routers, ready, page = up(base, netns, args.demo_ports)
                figures[f"{when} routers"].append(routers)
                figures[f"{when} ready"].append(ready)
                figures[f"{when} first page"].append(page)
                if when == "fresh":
                    figures["down"].append(down(base))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            failed = True
            failures.append(f"run {run + 1} ({when}): {exc}; kept {base}")
            print(failures[-1], flush=True)
        finally:
            down(base)
        if not failed:
            shutil.rmtree(base.parent)        # kept when a run fails: its logs say why
            print(f"run {run + 1}: " + ", ".join(f"{name} {values[-1]:.1f} s" for name, values in figures.items()),
                  flush=True)
    print(f"{len(failures)} of {args.runs} runs failed")
    for name, values in figures.items():
        if not values:
            continue
        print(f"{name:18} median {statistics.median(values):6.1f} s  (min {min(values):.1f}, max {max(values):.1f},"
              f" {len(values)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
