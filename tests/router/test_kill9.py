"""kill -9 at random moments of a router's life (start, reseed import, netDb and profile writes, steady
running): every restart loads, with the same identity, and leaves no temp files behind.

PYI2P_KILL9_ROUNDS sets the number of kills (default 12; 100 for the full run)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import zipfile

from core.clock import FakeClock
from core.data.encoding import b64encode
from core.data.privatekeys import PrivateKeys
from core.data.routerinfo import RouterInfo
from core.netdb.store import NetDb

ROUNDS = int(os.environ.get("PYI2P_KILL9_ROUNDS", "12"))


def _seed_zip(path, count: int = 150) -> None:
    now_ms = int(time.time() * 1000)
    with zipfile.ZipFile(path, "w") as z:
        for _ in range(count):
            keys = PrivateKeys.generate()
            ri = RouterInfo.create(keys.router_identity, keys.signing_private_key, now_ms, [],
                                   {"caps": "XR", "netId": "42", "router.version": "0.9.66"})
            z.writestr(f"routerInfo-{b64encode(ri.hash)}.dat", ri.to_bytes())


def test_kill9_at_random_moments_never_breaks_the_data_folder(tmp_path):
    datadir = tmp_path / "node"
    seed = tmp_path / "seed.zip"
    _seed_zip(seed)
    (datadir).mkdir()
    (datadir / "config.toml").write_text("port = 23111\nnetid = 42\ncontrol_port = 0\nsam_port = 0\n"
                                         + "".join(f"\n[{a}]\nenabled = false\n"
                                                   for a in ("naming", "tunnels", "proxy", "mail", "torrent")))
    command = [sys.executable, "-m", "pyi2p", "run", "--datadir", str(datadir), "--reseed-file", str(seed)]
    rng = random.Random(ROUNDS)
    identity = None
    loaded = 0
    for round_ in range(ROUNDS):
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.0, 2.5))        # from before the first file is written to steady running
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=20)
        assert "Traceback" not in err, err[-3000:]
        if "running" in out:
            loaded += 1
        keys_file = datadir / "router.keys"
        if keys_file.exists():
            keys = PrivateKeys.load(keys_file)          # never half-written
            identity = identity or keys.destination.hash
            assert keys.destination.hash == identity, f"identity changed in round {round_}"
        db = NetDb(datadir / "netDb", 42, FakeClock(time.time()))
        db.load()                                        # every file there parses (bad ones would be dropped)
    # and a clean start afterwards runs with the same identity
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "running" in line, proc.stderr.read()[-2000:] if proc.poll() is not None else line
        assert PrivateKeys.load(datadir / "router.keys").destination.hash == identity
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert not [p for p in datadir.rglob("*.tmp")], "temp files left behind"
    assert loaded >= 1


def test_temp_files_of_a_killed_write_are_removed_at_start(tmp_path):
    from core.fsutil import remove_stale_temp_files
    (tmp_path / "netDb" / "rA").mkdir(parents=True)
    stale = [tmp_path / ".router.info.4242.tmp", tmp_path / "netDb" / "rA" / ".routerInfo-A.dat.17.tmp"]
    keep = [tmp_path / "router.info", tmp_path / ".hidden.tmp", tmp_path / "x.tmp"]
    for path in stale + keep:
        path.write_bytes(b"x")
    assert remove_stale_temp_files(tmp_path) == 2
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
