"""The command-line tools: real files in, JSON or addresses out, clear errors without tracebacks."""
import json
import stat
import subprocess
import sys

import pytest

from core.data.privatekeys import PrivateKeys
from pyi2p.cli import main


def test_keygen_then_keyinfo(tmp_path, capsys):
    path = tmp_path / "dest.dat"
    assert main(["keygen", str(path)]) == 0
    b32 = capsys.readouterr().out.strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = PrivateKeys.load(path)
    assert keys.destination.b32_address == b32 and b32.endswith(".b32.i2p")
    assert main(["keyinfo", "--json", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["b32"] == b32 and info["destination"] == keys.destination.b64
    assert info["signature_type"] == "EdDSA_SHA512_Ed25519" and info["crypto_type"] == "X25519"
    assert main(["keygen", str(path)]) == 1   # refuses to overwrite keys


def test_routerinfo_prints_fields_of_our_own_router_info(tmp_path, capsys, free_port):
    from core.config import load_config
    from core.router import Router
    import asyncio

    async def boot():
        router = Router(load_config(tmp_path, {"netid": 42, "host": "127.0.0.1", "port": free_port,
                                                  "control_port": 0}))
        await router.start()
        await router.stop()
        return router
    router = asyncio.run(boot())
    assert main(["routerinfo", str(tmp_path / "router.info")]) == 0
    fields = json.loads(capsys.readouterr().out)
    from core.data.encoding import b64encode
    assert fields["hash"] == b64encode(router.hash)
    assert fields["signature_valid"] is True and fields["netid"] == 42
    assert fields["addresses"][0]["options"]["host"] == "127.0.0.1"


@pytest.mark.parametrize("command", ["routerinfo", "keyinfo"])
def test_garbage_file_gives_message_and_nonzero_exit_without_traceback(tmp_path, command):
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x01\x02\x03" * 50)
    result = subprocess.run([sys.executable, "-m", "pyi2p", command, str(junk)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "truncated" in result.stderr or "offset" in result.stderr


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["routerinfo", str(tmp_path / "nope")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_run_on_fresh_datadir_without_network_says_no_peers_and_keeps_running(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "pyi2p", "run", "--datadir", str(tmp_path), "--netid", "42",
                             "--control-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "running" in line
        assert proc.poll() is None
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "no peers yet" in err
    assert (tmp_path / "router.info").exists()


def make_leaseset2(now: int):
    from core.data.leaseset import Lease2, LeaseSet2
    keys = PrivateKeys.generate()
    leases = [Lease2(bytes(range(32)), 1234, now + 600)]
    return LeaseSet2.create(keys, published=now, expires_offset=600, encryption_keys=[(4, bytes(32))],
                            leases=leases)


@pytest.mark.parametrize("prefixed", [False, True])
def test_leaseset_decodes_a_leaseset2_file(tmp_path, capsys, prefixed):
    import time
    ls = make_leaseset2(int(time.time()))
    path = tmp_path / "ls.dat"
    path.write_bytes((b"\x03" if prefixed else b"") + ls.to_bytes())
    assert main(["leaseset", str(path)]) == 0
    fields = json.loads(capsys.readouterr().out)
    assert fields["type"] == "LeaseSet2" and fields["signature_valid"] is True
    assert fields["b32"] == ls.header.destination.b32_address
    assert fields["leases"][0]["tunnel_id"] == 1234
    assert fields["encryption_keys"][0]["type"] == "X25519"


def test_leaseset_with_forged_signature_reports_invalid(tmp_path, capsys):
    import time
    data = bytearray(make_leaseset2(int(time.time())).to_bytes())
    data[-1] ^= 1
    path = tmp_path / "ls.dat"
    path.write_bytes(bytes(data))
    assert main(["leaseset", "--type", "3", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["signature_valid"] is False


def test_leaseset_garbage_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "junk"
    path.write_bytes(b"\x07" * 40)
    assert main(["leaseset", str(path)]) == 2
    assert "not a LeaseSet" in capsys.readouterr().err


def test_routerinfo_on_a_router_info_written_by_i2pd(capsys):
    from pathlib import Path
    fixture = Path(__file__).parents[1] / "data" / "fixtures" / "i2pd-router.info"
    assert main(["routerinfo", str(fixture)]) == 0
    fields = json.loads(capsys.readouterr().out)
    # the name i2pd gives this router's netDb file: routerInfo-<b64 of SHA-256(RouterIdentity)>.dat
    assert fields["hash"] == "riB9o9rZXkYhZfC0HrojNLBOBFx7W~wqNjnrgXiA~Fg="
    assert fields["signature_valid"] is True and fields["netid"] == 42
    assert fields["version"] == "0.9.57"
    assert {a["transport"] for a in fields["addresses"]} >= {"NTCP2"}
