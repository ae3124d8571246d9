"""`pyi2p reseed make` and `pyi2p reseed check`: seed a private network the way the real one is seeded."""
import argparse
import stat
import time

import pytest
from cryptography.hazmat.primitives import serialization

from core.clock import FakeClock
from core.data.encoding import b64encode
from core.data.errors import ParseError, SignatureError
from core.netdb.reseed import read_reseed_file
from core.netdb.store import NetDb
from core.netdb.su3 import Su3File
from pyi2p import reseed as cli

from .test_reseed_support import ec_key, ed_key, make_ri


def run(argv, capsys):
    parser = argparse.ArgumentParser(prog="pyi2p")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr().out


def make_datadir(tmp_path, count=4, netid=42):
    now_ms = int(time.time() * 1000)
    datadir = tmp_path / "data"
    own = make_ri(netid=netid, published_ms=now_ms, caps="XfR")
    (datadir / "netDb").mkdir(parents=True)
    (datadir / "router.info").write_bytes(own.to_bytes())
    db = NetDb(datadir / "netDb", netid, FakeClock(time.time()))
    others = [make_ri(netid=netid, published_ms=now_ms) for _ in range(count)]
    for ri in others:
        assert db.add_router_info(ri) is not None
    db.flush()
    return datadir, own, others


def write_key(path, key):
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def test_make_then_read_back_with_the_printed_certificate(tmp_path, capsys):
    datadir, own, others = make_datadir(tmp_path)
    out = tmp_path / "seed.su3"
    code, printed = run(["reseed", "make", "--datadir", str(datadir), "--out", str(out)], capsys)
    assert code == 0
    signer_dir = datadir / "reseed-signer"
    key_file = signer_dir / "signing_key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    (cert,) = signer_dir.glob("*.crt")
    assert str(cert) in printed and "5 RouterInfos for netId 42" in printed
    su3 = Su3File.parse(out.read_bytes())
    assert su3.sig_type == 6 and su3.content_type == 3 and su3.file_type == 0     # RSA-4096, reseed, zip
    assert cert.name == su3.signer_id.replace("@", "_at_") + ".crt"
    assert abs(int(su3.version) - time.time()) < 60
    # another router trusts the certificate by copying it into its certificates folder
    other = tmp_path / "other"
    (other / "certificates" / "reseed").mkdir(parents=True)
    (other / "certificates" / "reseed" / cert.name).write_bytes(cert.read_bytes())
    blobs = read_reseed_file(out, datadir=other)
    assert sorted(blobs) == sorted(ri.to_bytes() for ri in [own, *others])

    # a second run reuses the key and the certificate
    key_before, cert_before = key_file.read_bytes(), cert.read_bytes()
    code, printed = run(["reseed", "make", "--datadir", str(datadir), "--out", str(out)], capsys)
    assert code == 0 and "new signing key" not in printed
    assert key_file.read_bytes() == key_before and cert.read_bytes() == cert_before
    assert len(read_reseed_file(out, datadir=other)) == 5


def test_make_with_a_given_key_and_signer(tmp_path, capsys):
    datadir, _, _ = make_datadir(tmp_path, count=2)
    key = write_key(tmp_path / "ed.pem", ed_key(3))
    out = tmp_path / "seed.su3"
    code, _ = run(["reseed", "make", "--datadir", str(datadir), "--out", str(out), "--key", str(key),
                   "--signer", "op@testnet.i2p"], capsys)
    assert code == 0
    su3 = Su3File.parse(out.read_bytes())
    assert su3.signer_id == "op@testnet.i2p" and su3.sig_type == 8
    cert = datadir / "reseed-signer" / "op_at_testnet.i2p.crt"
    assert len(read_reseed_file(out, cert_dirs=[cert.parent])) == 3
    assert not (datadir / "reseed-signer" / "signing_key.pem").exists()


def test_make_keeps_only_the_networks_valid_router_infos(tmp_path, capsys):
    datadir, own, others = make_datadir(tmp_path, count=2)
    foreign = make_ri(netid=2, published_ms=int(time.time() * 1000))
    stale = make_ri(published_ms=int((time.time() - 60 * 86400) * 1000))
    for ri in (foreign, stale):
        folder = datadir / "netDb" / f"r{b64encode(ri.hash)[0]}"
        folder.mkdir(exist_ok=True)
        (folder / f"routerInfo-{b64encode(ri.hash)}.dat").write_bytes(ri.to_bytes())
    (datadir / "netDb" / "rA").mkdir(exist_ok=True)
    (datadir / "netDb" / "rA" / ("routerInfo-" + "A" * 43 + "=.dat")).write_bytes(b"junk")
    key = write_key(tmp_path / "ec.pem", ec_key())
    out = tmp_path / "seed.su3"
    code, printed = run(["reseed", "make", "--datadir", str(datadir), "--out", str(out), "--key", str(key)], capsys)
    assert code == 0 and "skipped 3 unusable" in printed
    cert_dir = datadir / "reseed-signer"
    assert sorted(read_reseed_file(out, cert_dirs=[cert_dir])) == sorted(ri.to_bytes() for ri in [own, *others])


def test_make_caps_the_bundle_and_always_includes_our_own(tmp_path, capsys):
    datadir, own, _ = make_datadir(tmp_path, count=6)
    key = write_key(tmp_path / "ed.pem", ed_key())
    out = tmp_path / "seed.su3"
    code, _ = run(["reseed", "make", "--datadir", str(datadir), "--out", str(out), "--key", str(key),
                   "--max-routers", "3"], capsys)
    blobs = read_reseed_file(out, cert_dirs=[datadir / "reseed-signer"])
    assert code == 0 and len(blobs) == 3 and own.to_bytes() in blobs


def test_make_with_nothing_usable_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParseError, match="give --netid"):
        cli.make_bundle(tmp_path / "empty", tmp_path / "x.su3")
    with pytest.raises(ParseError, match="no usable RouterInfos for netId 42"):
        cli.make_bundle(tmp_path / "empty", tmp_path / "x.su3", netid=42)
    assert not (tmp_path / "x.su3").exists()


def test_check_lists_router_infos_and_refuses_unknown_signers(tmp_path, capsys):
    datadir, own, others = make_datadir(tmp_path, count=2)
    key = write_key(tmp_path / "ed.pem", ed_key())
    out = tmp_path / "seed.su3"
    run(["reseed", "make", "--datadir", str(datadir), "--out", str(out), "--key", str(key)], capsys)
    code, printed = run(["reseed", "check", str(out), "--certs", str(datadir / "reseed-signer")], capsys)
    assert code == 0 and "signature verified" in printed
    for ri in (own, *others):
        assert b64encode(ri.hash) in printed
    assert "caps=XfR" in printed and "netId=42" in printed and "3 RouterInfos, 0 bad" in printed
    with pytest.raises(SignatureError, match="unknown signer"):
        run(["reseed", "check", str(out), "--certs", str(tmp_path / "nowhere")], capsys)


def test_check_of_an_unsigned_zip_says_so(tmp_path, capsys):
    datadir, _, _ = make_datadir(tmp_path, count=1)
    code, printed = run(["reseed", "check", str(datadir / "netDb")], capsys)
    assert code == 0 and "unsigned bundle" in printed and "1 RouterInfos, 0 bad" in printed


def test_main_reports_errors_without_a_traceback(tmp_path, capsys):
    assert cli.main(["reseed", "check", str(tmp_path / "missing.su3")]) == 2
    assert "missing.su3" in capsys.readouterr().err
