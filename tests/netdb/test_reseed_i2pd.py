"""i2pd 2.45.1 reseeds from a bundle made by `pyi2p reseed make` and verifies its RSA-4096 signature.

i2pd runs in a network namespace of its own (loopback only, no route out), netid 42, no reseed URLs,
with reseed.file pointing at our .su3 and reseed.verify on; it is stopped by PID and the namespace deleted.
"""
from __future__ import annotations

import ctypes
import signal
import subprocess
import time

import pytest

from pyi2p import reseed as cli
from pyi2p.testnet import Router as I2pdRouter, private_netns_name
from pyi2p.testnet import delete_netns, i2pd_binary, unavailable_reason, write_i2pd_datadir

from .test_reseed_make import make_datadir

pytestmark = pytest.mark.interop

ADDRESS = "198.18.0.1"
PORT = 23466
WAIT_S = 25.0

def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)     # PR_SET_PDEATHSIG


def run_i2pd(datadir, seed, netns) -> str:
    """Starts i2pd, waits until its log shows the reseed's outcome, stops it; returns the log."""
    router = I2pdRouter(name="r1", kind="i2pd", datadir=str(datadir), address=ADDRESS, port=PORT,
                           console=PORT + 1, sam=PORT + 2, http_proxy=PORT + 3, i2cp=PORT + 4)
    write_i2pd_datadir(router, netid=42, seed_file=str(seed), su3=True, loglevel="debug")
    log_path = datadir / "i2pd.log"
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, i2pd_binary(), "--datadir", str(datadir), "--conf", str(datadir / "i2pd.conf"),
         "--tunconf", str(datadir / "tunnels.conf"), "--tunnelsdir", str(datadir / "tunnels.d"),
         "--certsdir", str(datadir / "certificates")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    try:
        deadline = time.monotonic() + WAIT_S
        text = ""
        while time.monotonic() < deadline:
            text = log_path.read_text(errors="replace") if log_path.exists() else ""
            if "Reseed: Processing file" in text or "verification failed" in text or "Failed to reseed" in text:
                break
            time.sleep(0.3)
        time.sleep(1.0)                      # the rest of the bundle is read in the same few milliseconds
        return log_path.read_text(errors="replace") if log_path.exists() else ""
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def netns():
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"i2pd interop unavailable: {reason}")
    name = private_netns_name("r")
    delete_netns(name)
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=20)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=20)
        subprocess.run(["ip", "-n", name, "addr", "add", f"{ADDRESS}/32", "dev", "lo"], check=True, timeout=20)
        yield name
    finally:
        delete_netns(name)


@pytest.mark.parametrize("tamper", [False, True])
def test_i2pd_verifies_and_unpacks_our_bundle(tmp_path, netns, tamper):
    seed_dir, own, others = make_datadir(tmp_path, count=3)
    seed = tmp_path / "i2pseeds.su3"
    done = cli.make_bundle(seed_dir, seed)
    assert done["sig_type"] == "RSA_SHA512_4096"
    if tamper:
        data = bytearray(seed.read_bytes())
        data[-600] ^= 1                      # in the zip, just before the 512-byte signature
        seed.write_bytes(bytes(data))
    i2pd_dir = tmp_path / "i2pd"
    (i2pd_dir / "certificates" / "reseed").mkdir(parents=True)
    (i2pd_dir / "certificates" / "reseed" / done["certificate"].name).write_bytes(done["certificate"].read_bytes())
    log = run_i2pd(i2pd_dir, seed, netns)
    processed = [line for line in log.splitlines() if "Reseed: Processing file routerInfo-" in line]
    if tamper:
        assert "SU3 signature verification failed" in log and not processed, log[-2000:]
    else:
        assert "verification failed" not in log, log[-2000:]
        assert len(processed) == 4, log[-2000:]
