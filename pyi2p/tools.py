"""Key and netDb file tools a user of I2P expects (i2pd-tools has the same): keygen, keyinfo, routerinfo, leaseset."""
from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from core.data.encoding import b64encode
from core.data.keytypes import CRYPTO_TYPES, SIG_ED25519, SIG_TYPES
from core.data.privatekeys import PrivateKeys
from core.data.errors import ParseError, ProtocolError
from core.data.leaseset import LEASESET_TYPES, parse_leaseset
from core.data.routerinfo import RouterInfo


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


def _sig_type_arg(text: str) -> int:
    if text.isdigit():
        code = int(text)
    else:
        names = {t.name.upper(): t.code for t in SIG_TYPES.values()}
        if text.upper() not in names:
            raise ValueError(text)
        code = names[text.upper()]
    if code not in SIG_TYPES:
        raise ValueError(text)
    return code


def cmd_keygen(args) -> int:
    path = Path(args.file)
    if path.exists() and not args.force:
        print(f"pyi2p: {path} exists; use --force to replace it", file=sys.stderr)
        return 1
    keys = PrivateKeys.generate(sig_type=args.sig_type, crypto_type=4, rng=os.urandom)
    keys.save(path)
    print(keys.destination.b32_address)
    return 0


def cmd_keyinfo(args) -> int:
    keys = PrivateKeys.load(args.file)
    dest = keys.destination
    info = {
        "b32": dest.b32_address,
        "destination": dest.b64,
        "hash": b64encode(dest.hash),
        "signature_type": SIG_TYPES[dest.sig_type].name,
        "crypto_type": CRYPTO_TYPES[dest.crypto_type].name if dest.crypto_type in CRYPTO_TYPES else dest.crypto_type,
        "offline_signed": keys.is_offline,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(info["b32"])
        print(info["destination"])
    return 0


def router_info_fields(ri: RouterInfo) -> dict:
    ident = ri.identity
    return {
        "hash": b64encode(ri.hash),
        "signature_type": SIG_TYPES[ident.sig_type].name,
        "crypto_type": CRYPTO_TYPES[ident.crypto_type].name if ident.crypto_type in CRYPTO_TYPES else ident.crypto_type,
        "signature_valid": ri.verify(),
        "published": _iso(ri.published),
        "published_ms": ri.published,
        "caps": ri.caps,
        "netid": ri.netid,
        "version": ri.router_version,
        "addresses": [{"transport": a.transport_style, "cost": a.cost, "options": a.options.as_dict()}
                      for a in ri.addresses],
        "options": ri.options.as_dict(),
    }


def cmd_routerinfo(args) -> int:
    ri = RouterInfo.parse(Path(args.file).read_bytes())
    print(json.dumps(router_info_fields(ri), indent=2))
    return 0


def read_leaseset_file(data: bytes, store_type: int | None):
    """A LeaseSet file: bare (type given or guessed, newest types first) or led by its store-type byte."""
    if store_type is not None:
        return parse_leaseset(store_type, data)
    attempts: list[tuple[int, bytes]] = [(t, data) for t in (3, 7, 5, 1)]
    if data and data[0] in LEASESET_TYPES:
        attempts.insert(0, (data[0], data[1:]))
    errors = []
    for kind, body in attempts:
        try:
            return parse_leaseset(kind, body)
        except ProtocolError as exc:
            errors.append(f"type {kind}: {exc}")
    raise ParseError("not a LeaseSet of any type (" + "; ".join(errors) + ")", structure="LeaseSet")


def leaseset_fields(ls, now: float) -> dict:
    fields = {"type": type(ls).__name__, "store_type": ls.STORE_TYPE, "hash": b64encode(ls.hash),
              "signature_valid": ls.verify(now),
              "published": _iso(ls.published_ms) if ls.published_ms else None, "expires": _iso(ls.expires)}
    dest = getattr(ls, "destination", None) or getattr(getattr(ls, "header", None), "destination", None)
    if dest is not None:
        fields["destination"] = dest.b64
        fields["b32"] = dest.b32_address
        fields["signature_type"] = SIG_TYPES[dest.sig_type].name
    if hasattr(ls, "encryption_keys"):
        fields["encryption_keys"] = [{"type": CRYPTO_TYPES[t].name if t in CRYPTO_TYPES else t, "key": b64encode(k)}
                                     for t, k in ls.encryption_keys]
    if hasattr(ls, "options"):
        fields["options"] = ls.options.as_dict()
    fields["leases"] = [{"gateway": b64encode(lease.gateway), "tunnel_id": lease.tunnel_id,
                         "end": _iso(lease.end_date_ms)} for lease in getattr(ls, "leases", ())]
    return fields


def cmd_leaseset(args) -> int:
    import time
    ls = read_leaseset_file(Path(args.file).read_bytes(), args.type)
    print(json.dumps(leaseset_fields(ls, time.time()), indent=2))
    return 0


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser("keygen", help="write a new destination's private keys (Ed25519 + X25519)")
    p.add_argument("file")
    p.add_argument("--sig-type", type=_sig_type_arg, default=SIG_ED25519,
                   help="signing type, by code or name (default 7, EdDSA_SHA512_Ed25519)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_keygen)

    p = subparsers.add_parser("keyinfo", help="print a private key file's b32 address and base64 destination")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keyinfo)

    p = subparsers.add_parser("routerinfo", help="decode a RouterInfo file and print its fields as JSON")
    p.add_argument("file")
    p.set_defaults(func=cmd_routerinfo)

    p = subparsers.add_parser("leaseset", help="decode a LeaseSet file (any type) and print its fields as JSON")
    p.add_argument("file")
    p.add_argument("--type", type=int, choices=sorted(LEASESET_TYPES), help="store type (default: detect)")
    p.set_defaults(func=cmd_leaseset)
