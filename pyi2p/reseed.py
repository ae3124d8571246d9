"""`pyi2p reseed make|check`: build a signed reseed bundle (.su3) from a data dir's netDb, or verify one.

A private network is seeded the way the real one is: one router's operator runs `reseed make`, hands out
the .su3 and the signer certificate, and every other router trusts that certificate
(DATADIR/certificates/reseed/ for pyi2p, CERTSDIR/reseed/ for i2pd).
"""
from __future__ import annotations

import io
import os
import random
import sys
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from core.clock import SystemClock
from core.data.encoding import b64encode
from core.data.errors import ParseError, ProtocolError
from core.data.keytypes import SIG_TYPES
from core.data.routerinfo import RouterInfo
from core.fsutil import atomic_write
from core.netdb.reseed import DATADIR_CERTS, MAX_ENTRY_BYTES, default_cert_dirs, open_reseed_bundle
from core.netdb.store import NetDb
from core.netdb.su3 import (ContentType, FileType, Su3File, certificate_common_name,
                            certificate_file_name, load_certificate, make_signer_certificate, sig_type_of_key,
                            verify_with_certificates)

DEFAULT_DATADIR = "~/.pyi2p"
SIGNER_DIR = "reseed-signer"
SIGNER_KEY_FILE = "signing_key.pem"
MAX_BUNDLE_ROUTERS = 100            # reseed.md "Network Diversity Requirements": 75-100 per bundle
MAX_SCANNED_FILES = 10_000
RSA_BITS = 4096                     # type 6, the one signature type every router verifies (i2pd only this one)


def _load_private_key(path: Path):
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ParseError(f"{path}: not an unencrypted PEM private key ({exc})", structure="signing key") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise ParseError(f"{path}: {type(key).__name__} cannot sign SU3 files", structure="signing key")
    sig_type_of_key(key)
    return key


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def signer_key(datadir: Path, key_file: str | None):
    """The signing key: --key if given, else DATADIR/reseed-signer/signing_key.pem, made (RSA-4096) on first use."""
    if key_file:
        return _load_private_key(Path(key_file)), False
    path = datadir / SIGNER_DIR / SIGNER_KEY_FILE
    if path.exists():
        return _load_private_key(path), False
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    atomic_write(path, _pem(key), mode=0o600)
    return key, True


def _own_router_info(datadir: Path) -> RouterInfo | None:
    path = datadir / "router.info"
    try:
        return RouterInfo.parse(path.read_bytes())
    except (OSError, ProtocolError):
        return None


def default_signer_id(own: RouterInfo | None) -> str:
    tag = b64encode(own.hash)[:8].lower().replace("~", "x").replace("-", "x") if own else "local"
    return f"reseed-{tag}@pyi2p.i2p"


def signer_certificate(datadir: Path, key, signer_id: str | None, now: float):
    """(signer id, certificate path, created?) reusing a certificate in the signer folder that holds `key`."""
    folder = datadir / SIGNER_DIR
    public = _public_der(key.public_key())
    if folder.is_dir():
        for path in sorted(folder.glob("*.crt")):
            try:
                cert = load_certificate(path)
            except ProtocolError:
                continue
            name = certificate_common_name(cert)
            if (name and (signer_id is None or name == signer_id) and _public_der(cert.public_key()) == public
                    and path.name == certificate_file_name(name)
                    and cert.not_valid_before_utc.timestamp() <= now <= cert.not_valid_after_utc.timestamp()):
                return name, path, False
    name = signer_id or default_signer_id(_own_router_info(datadir))
    cert = make_signer_certificate(key, name, now=now)
    path = folder / certificate_file_name(name)
    atomic_write(path, cert.public_bytes(serialization.Encoding.PEM))
    return name, path, True


def collect_router_infos(datadir: Path, netid: int, now: float) -> tuple[list[RouterInfo], int]:
    """Valid RouterInfos (netid, signature, age) from DATADIR/router.info and DATADIR/netDb, newest per router."""
    checker = NetDb(None, netid, _FixedClock(now))
    paths = [datadir / "router.info"]
    paths += sorted((datadir / "netDb").glob("r?/routerInfo-*.dat"))[:MAX_SCANNED_FILES]
    found: dict[bytes, RouterInfo] = {}
    rejected = 0
    for path in paths:
        try:
            if not path.is_file() or path.stat().st_size > MAX_ENTRY_BYTES:
                continue
            ri = RouterInfo.parse(path.read_bytes())
            checker.check_router_info(ri)
        except (OSError, ProtocolError):
            rejected += 1
            continue
        old = found.get(ri.hash)
        if old is None or ri.published > old.published:
            found[ri.hash] = ri
    return list(found.values()), rejected


class _FixedClock:
    __slots__ = ("now",)

    def __init__(self, now: float):
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


def build_zip(router_infos: list[RouterInfo], now: float) -> bytes:
    """updates.rst "SU3 Reseed File Specification": flat zip of routerInfo-<b64 hash>.dat, deflated."""
    stamp = datetime.fromtimestamp(max(now, 315_532_800), timezone.utc).timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for ri in router_infos:
            info = zipfile.ZipInfo(f"routerInfo-{b64encode(ri.hash)}.dat", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, ri.to_bytes())
    return buffer.getvalue()


def make_bundle(datadir: Path, out: Path, *, signer_id: str | None = None, key_file: str | None = None,
                netid: int | None = None, max_routers: int = MAX_BUNDLE_ROUTERS, now: float | None = None,
                rng=os.urandom) -> dict:
    """Builds, signs and writes the bundle; returns what was done (for printing and tests)."""
    now = time.time() if now is None else now
    own = _own_router_info(datadir)
    if netid is None:
        if own is None:
            raise ParseError(f"no readable {datadir / 'router.info'}: give --netid", structure="reseed make")
        netid = own.netid
    router_infos, rejected = collect_router_infos(datadir, netid, now)
    if not router_infos:
        raise ParseError(f"no usable RouterInfos for netId {netid} in {datadir}", structure="reseed make")
    if len(router_infos) > max_routers:
        first = [ri for ri in router_infos if own is not None and ri.hash == own.hash]
        rest = [ri for ri in router_infos if own is None or ri.hash != own.hash]
        random.Random(int.from_bytes(rng(8), "big")).shuffle(rest)
        router_infos = (first + rest)[:max_routers]
    key, key_created = signer_key(datadir, key_file)
    name, cert_path, cert_created = signer_certificate(datadir, key, signer_id, now)
    su3 = Su3File.create(key, name, build_zip(router_infos, now), version=str(int(now)),
                         file_type=FileType.ZIP, content_type=ContentType.RESEED)
    verify_with_certificates(su3, [cert_path.parent], content_type=ContentType.RESEED, now=now)
    atomic_write(out, su3.to_bytes())
    return {"out": out, "routers": len(router_infos), "rejected": rejected, "netid": netid, "signer": name,
            "sig_type": SIG_TYPES[su3.sig_type].name, "certificate": cert_path, "key_created": key_created,
            "certificate_created": cert_created, "bytes": len(su3.to_bytes())}


def cmd_make(args) -> int:
    datadir = Path(args.datadir).expanduser()
    done = make_bundle(datadir, Path(args.out), signer_id=args.signer, key_file=args.key, netid=args.netid,
                       max_routers=args.max_routers)
    if done["key_created"]:
        print(f"new signing key (RSA-{RSA_BITS}): {datadir / SIGNER_DIR / SIGNER_KEY_FILE}")
    print(f"{done['out']}: {done['routers']} RouterInfos for netId {done['netid']}, {done['bytes']} bytes, "
          f"signed by {done['signer']} ({done['sig_type']})")
    if done["rejected"]:
        print(f"skipped {done['rejected']} unusable RouterInfo files")
    print(f"signer certificate: {done['certificate']}")
    print(f"to trust it, copy it into each router's DATADIR/{DATADIR_CERTS}/ (i2pd: CERTSDIR/reseed/)")
    return 0


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_check(args) -> int:
    dirs = [Path(d).expanduser() for d in args.certs] if args.certs else []
    if not args.certs or args.datadir:
        dirs += default_cert_dirs(Path(args.datadir or DEFAULT_DATADIR).expanduser())
    bundle = open_reseed_bundle(args.file, cert_dirs=dirs, now=SystemClock().time())
    if bundle.su3 is not None:
        su3 = bundle.su3
        print(f"{args.file}: SU3 reseed bundle signed by {su3.signer_id} ({SIG_TYPES[su3.sig_type].name}), "
              f"signature verified; version {su3.version}")
    else:
        print(f"{args.file}: unsigned bundle (zip or folder)")
    bad = 0
    for blob in bundle.router_infos:
        try:
            ri = RouterInfo.parse(blob)
            valid = ri.verify()
            line = (f"{b64encode(ri.hash)}  caps={ri.caps or '-':<6} netId={ri.options.get('netId') or '2':<4} "
                    f"published={_iso(ri.published)}")
        except ProtocolError as exc:
            valid, line = False, f"unreadable RouterInfo: {exc}"
        if not valid:
            bad += 1
            line += "  BAD SIGNATURE" if "unreadable" not in line else ""
        print(line)
    print(f"{len(bundle.router_infos)} RouterInfos, {bad} bad, {bundle.skipped} other entries skipped")
    return 0 if bundle.router_infos and not bad else 1


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("reseed", help="make or check signed reseed bundles (.su3)")
    actions = parser.add_subparsers(dest="reseed_command", required=True)

    p = actions.add_parser("make", help="build a signed .su3 from DATADIR/netDb and DATADIR/router.info")
    p.add_argument("--datadir", default=DEFAULT_DATADIR, help="router data folder (default ~/.pyi2p)")
    p.add_argument("--out", required=True, help="the .su3 file to write")
    p.add_argument("--signer", help="signer id, e.g. you@mail.i2p (default: reuse, or reseed-<router>@pyi2p.i2p)")
    p.add_argument("--key", help="PEM private key to sign with (RSA, ECDSA or Ed25519; default: "
                                 f"DATADIR/{SIGNER_DIR}/{SIGNER_KEY_FILE}, RSA-{RSA_BITS}, made on first use)")
    p.add_argument("--netid", type=int, help="only RouterInfos of this network (default: router.info's)")
    p.add_argument("--max-routers", type=int, default=MAX_BUNDLE_ROUTERS,
                   help=f"at most this many RouterInfos, a random choice (default {MAX_BUNDLE_ROUTERS})")
    p.set_defaults(func=cmd_make)

    p = actions.add_parser("check", help="verify a reseed bundle and list its RouterInfos")
    p.add_argument("file", help=".su3, zip or folder")
    p.add_argument("--certs", action="append", help="folder of signer certificates (repeatable; default: "
                                                    f"the built-in ones and DATADIR/{DATADIR_CERTS})")
    p.add_argument("--datadir", help="also trust DATADIR/certificates/reseed/")
    p.set_defaults(func=cmd_check)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="pyi2p")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ProtocolError as exc:
        print(f"pyi2p: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
