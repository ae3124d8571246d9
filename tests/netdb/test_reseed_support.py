"""Helpers shared by the reseed tests (keys, certificates, RouterInfos, bundles), and checks of the helpers."""
from __future__ import annotations

import datetime
import functools
import io
import ipaddress
import zipfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from core.clock import FakeClock
from core.data.encoding import b64encode
from core.data.keytypes import CRYPTO_X25519, SIG_ED25519
from core.data.privatekeys import PrivateKeys
from core.data.routerinfo import RouterInfo
from core.netdb.su3 import ContentType, FileType, Su3File, certificate_file_name, make_signer_certificate

NOW = 1_790_000_000.0
CLOCK = FakeClock(NOW)
SIGNER = "tester@mail.i2p"


@functools.cache
def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(curve_name: str = "secp256r1") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key({"secp256r1": ec.SECP256R1(), "secp384r1": ec.SECP384R1(),
                                    "secp521r1": ec.SECP521R1()}[curve_name])


@functools.cache
def ed_key(seed: int = 1) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def make_ri(netid: int = 42, published_ms: int | None = None, caps: str = "XR") -> RouterInfo:
    keys = PrivateKeys.generate(SIG_ED25519, CRYPTO_X25519)
    published = int(NOW * 1000) if published_ms is None else published_ms
    return RouterInfo.create(keys.router_identity, keys.signing_private_key, published, [],
                             {"caps": caps, "netId": str(netid), "router.version": "0.9.66"})


def zip_of(router_infos, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for ri in router_infos:
            bundle.writestr(f"routerInfo-{b64encode(ri.hash)}.dat", ri.to_bytes())
        for name, data in (extra or {}).items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def write_cert(folder: Path, key, signer: str = SIGNER, *, now: float = NOW, days: int = 3650,
               name: str | None = None) -> Path:
    cert = make_signer_certificate(key, signer, now=now, days=days)
    path = folder / (name or certificate_file_name(signer))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def signed_bundle(router_infos, key=None, signer: str = SIGNER, *, version: str | None = None,
                  content_type: int = ContentType.RESEED, file_type: int = FileType.ZIP) -> Su3File:
    return Su3File.create(key or ed_key(), signer, zip_of(router_infos), version=version or str(int(NOW)),
                          file_type=file_type, content_type=content_type)


def tls_pair(folder: Path, hosts=("127.0.0.1",)) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for loopback addresses: (ca.pem, server.pem, server.key)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    end = start + datetime.timedelta(days=30)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyi2p test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reseed.test")]))
              .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(2)
              .not_valid_before(start).not_valid_after(end)
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(h)) for h in hosts]),
                             critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return ca_path, cert_path, key_path


def test_helpers_make_what_the_tests_rely_on(tmp_path):
    ri = make_ri(netid=7, caps="Lf")
    assert ri.verify() and ri.netid == 7 and ri.is_floodfill
    with zipfile.ZipFile(io.BytesIO(zip_of([ri]))) as z:
        assert z.namelist() == [f"routerInfo-{b64encode(ri.hash)}.dat"]
    path = write_cert(tmp_path, ed_key())
    assert path.name == "tester_at_mail.i2p.crt"
    assert signed_bundle([ri]).signer_id == SIGNER
