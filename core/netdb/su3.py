"""SU3 signed files (updates.rst "SU3 File Specification") and their X.509 signer certificates."""
from __future__ import annotations

import datetime
import enum
import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from core.crypto import signing
from core.data.errors import ParseError, SignatureError
from core.data.keytypes import SIG_TYPES

if TYPE_CHECKING:
    from cryptography import x509     # loaded where certificates are read: only a reseed needs them
from core.data.reader import Reader

MAGIC = b"I2Psu3"
HEADER_LEN = 40
MIN_VERSION_LEN = 16
MAX_CONTENT_BYTES = 10 * 1024 * 1024      # a reseed bundle is ~100 KB; nothing we accept is near this
MAX_CERTIFICATE_BYTES = 64 * 1024
MAX_CERTIFICATE_FILES = 500


class FileType(enum.IntEnum):
    """updates.rst "SU3 File Specification", byte 25."""
    ZIP = 0
    XML = 1
    HTML = 2
    XML_GZ = 3
    TXT_GZ = 4
    DMG = 5
    EXE = 6


class ContentType(enum.IntEnum):
    """updates.rst "SU3 File Specification", byte 27."""
    UNKNOWN = 0
    ROUTER_UPDATE = 1
    PLUGIN = 2
    RESEED = 3
    NEWS = 4
    BLOCKLIST = 5


_FILE_TYPES = frozenset(int(t) for t in FileType)
_CONTENT_TYPES = frozenset(int(t) for t in ContentType)
# updates.rst bytes 8-9: the signature types an SU3 may carry (7, plain Ed25519, is not among them)
SU3_SIG_TYPES = frozenset({0, 1, 2, 3, 4, 5, 6, 8})
_HASHES = {0: hashlib.sha1, 1: hashlib.sha256, 2: hashlib.sha384, 3: hashlib.sha512,
           4: hashlib.sha256, 5: hashlib.sha384, 6: hashlib.sha512, 8: hashlib.sha512}
_RSA_TYPES = {4: 2048, 5: 3072, 6: 4096}
_EC_TYPES = {1: ec.SECP256R1, 2: ec.SECP384R1, 3: ec.SECP521R1}
# RFC 8017 9.2 note 1: DigestInfo prefixes, accepted besides the raw form some signers (pyseeder) emit
_DIGEST_INFO = {
    4: bytes.fromhex("3031300d060960864801650304020105000420"),
    5: bytes.fromhex("3041300d060960864801650304020205000430"),
    6: bytes.fromhex("3051300d060960864801650304020305000440"),
}

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def _sig_name(sig_type: int) -> str:
    spec = SIG_TYPES.get(sig_type)
    return spec.name if spec else f"type {sig_type}"


@dataclass(frozen=True, slots=True)
class Su3File:
    """One SU3 file; `version_length` 0 means the spec's default (the version's UTF-8 length, at least 16)."""

    sig_type: int
    version: str
    signer_id: str
    file_type: int
    content_type: int
    content: bytes
    signature: bytes
    version_length: int = 0
    _version_bytes: bytes = field(default=b"", init=False, repr=False, compare=False)
    _signer_bytes: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise ParseError(message, structure="Su3File")

        if self.sig_type not in SU3_SIG_TYPES:
            fail(f"signature type {_sig_name(self.sig_type)} is not allowed in SU3")
        if len(self.signature) != SIG_TYPES[self.sig_type].signature_len:
            fail(f"{_sig_name(self.sig_type)} signature must be {SIG_TYPES[self.sig_type].signature_len} bytes")
        if self.file_type not in _FILE_TYPES:
            fail(f"unknown file type {self.file_type}")
        if self.content_type not in _CONTENT_TYPES:
            fail(f"unknown content type {self.content_type}")
        try:
            version = self.version.encode("utf-8")
            signer = self.signer_id.encode("utf-8")
        except UnicodeEncodeError:
            fail("version or signer id is not encodable as UTF-8")
        if b"\x00" in version:
            fail("version holds a NUL byte")
        length = self.version_length or max(MIN_VERSION_LEN, len(version))
        if not len(version) <= length <= 255 or length < MIN_VERSION_LEN:
            fail(f"version field of {length} bytes cannot hold {len(version)} bytes (16..255)")
        if not 0 < len(signer) <= 255:
            fail(f"signer id of {len(signer)} bytes (1..255)")
        if len(self.content) > MAX_CONTENT_BYTES:
            fail(f"content of {len(self.content)} bytes exceeds {MAX_CONTENT_BYTES}")
        object.__setattr__(self, "version_length", length)
        object.__setattr__(self, "_version_bytes", version)
        object.__setattr__(self, "_signer_bytes", signer)

    @classmethod
    def read(cls, r: Reader, max_content: int = MAX_CONTENT_BYTES) -> Self:
        # updates.rst "SU3 File Specification": fixed 40-byte header, version, signer, content, signature
        start = r.pos
        if r.take(6) != MAGIC:
            raise r.error("not an SU3 file (bad magic)", start)
        _zero(r, 1)
        if (format_version := r.u8()) != 0:
            raise r.error(f"SU3 format version {format_version}, only 0 is known", r.pos - 1)
        sig_type = r.u16()
        if sig_type not in SU3_SIG_TYPES:
            raise r.error(f"signature type {_sig_name(sig_type)} is not allowed in SU3", r.pos - 2)
        sig_len = r.u16()
        if sig_len != SIG_TYPES[sig_type].signature_len:
            raise r.error(f"signature length {sig_len} does not match {_sig_name(sig_type)}", r.pos - 2)
        _zero(r, 1)
        version_len = r.u8()
        if version_len < MIN_VERSION_LEN:
            raise r.error(f"version length {version_len} is below 16", r.pos - 1)
        _zero(r, 1)
        signer_len = r.u8()
        if signer_len == 0:
            raise r.error("empty signer id", r.pos - 1)
        content_len = r.u64()
        if content_len > max_content:
            raise r.error(f"content length {content_len} exceeds {max_content}", r.pos - 8)
        _zero(r, 1)
        file_type = r.u8()
        if file_type not in _FILE_TYPES:
            raise r.error(f"unknown file type {file_type}", r.pos - 1)
        _zero(r, 1)
        content_type = r.u8()
        if content_type not in _CONTENT_TYPES:
            raise r.error(f"unknown content type {content_type}", r.pos - 1)
        _zero(r, 12)
        version_at = r.pos
        version_field = r.take(version_len)
        version_bytes = version_field.rstrip(b"\x00")
        if b"\x00" in version_bytes:
            raise r.error("version holds a NUL byte before its padding", version_at)
        signer_at = r.pos
        signer_bytes = r.take(signer_len)
        content = r.take(content_len)
        signature = r.take(sig_len)
        return cls(sig_type, _utf8(r, version_bytes, version_at), _utf8(r, signer_bytes, signer_at),
                   file_type, content_type, content, signature, version_len)

    @classmethod
    def parse(cls, data: bytes, max_content: int = MAX_CONTENT_BYTES) -> Self:
        r = Reader(data, "Su3File")
        su3 = cls.read(r, max_content)
        r.expect_end()
        return su3

    def signed_bytes(self) -> bytes:
        """updates.rst "Signature Details": everything from byte 0 through the end of the content."""
        header = (MAGIC + bytes([0, 0]) + self.sig_type.to_bytes(2, "big")
                  + len(self.signature).to_bytes(2, "big") + bytes([0, self.version_length, 0, len(self._signer_bytes)])
                  + len(self.content).to_bytes(8, "big") + bytes([0, self.file_type, 0, self.content_type])
                  + bytes(12))
        version = self._version_bytes.ljust(self.version_length, b"\x00")
        return header + version + self._signer_bytes + self.content

    def to_bytes(self) -> bytes:
        return self.signed_bytes() + self.signature

    @classmethod
    def create(cls, signing_key: SigningKey, signer_id: str, content: bytes, *, version: str,
               file_type: int = FileType.ZIP, content_type: int = ContentType.RESEED) -> Self:
        """A signed SU3 file; the signature type follows from the key (RSA-4096 gives 6, as reseeds use)."""
        sig_type = sig_type_of_key(signing_key)
        unsigned = cls(sig_type, version, signer_id, file_type, content_type, content,
                       bytes(SIG_TYPES[sig_type].signature_len))
        signature = sign_raw(sig_type, signing_key, unsigned.signed_bytes())
        return cls(sig_type, version, signer_id, file_type, content_type, content, signature,
                   unsigned.version_length)

    def verify(self, public_key: PublicKey) -> None:
        """Raises SignatureError unless the signature verifies under `public_key`."""
        if not verify_raw(self.sig_type, public_key, self.signed_bytes(), self.signature):
            raise SignatureError(f"signature by {self.signer_id!r} does not verify", structure="Su3File")


def _zero(r: Reader, n: int) -> None:
    at = r.pos
    if any(r.take(n)):
        raise r.error("unused field is not zero", at)


def _utf8(r: Reader, data: bytes, at: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise r.error("not UTF-8", at) from None


# --- raw signatures: hash with the type's hash, then sign the hash (updates.rst "Signature Details")

def sig_type_of_key(key: SigningKey | PublicKey) -> int:
    """The SU3 signature type a key signs with; SignatureError for a key SU3 cannot use."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        for code, bits in _RSA_TYPES.items():
            if key.key_size == bits:
                return code
        raise SignatureError(f"RSA key of {key.key_size} bits; SU3 takes 2048, 3072 or 4096")
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        for code, curve in _EC_TYPES.items():
            if isinstance(key.curve, curve):
                return code
        raise SignatureError(f"EC curve {key.curve.name}; SU3 takes P-256, P-384 or P-521")
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return 8
    raise SignatureError(f"{type(key).__name__} cannot sign SU3 files")


def _i2p_public_key(sig_type: int, key: PublicKey) -> bytes:
    """The key in I2P's raw encoding (common-structures.rst "SigningPublicKey")."""
    if sig_type in _EC_TYPES:
        numbers = key.public_numbers()
        size = SIG_TYPES[sig_type].public_key_len // 2
        return numbers.x.to_bytes(size, "big") + numbers.y.to_bytes(size, "big")
    return key.public_bytes_raw()


def sign_raw(sig_type: int, key: SigningKey, data: bytes) -> bytes:
    if sig_type_of_key(key) != sig_type:
        raise SignatureError(f"key does not sign {_sig_name(sig_type)}")
    if sig_type in _RSA_TYPES:
        return _rsa_sign_hash(key, _HASHES[sig_type](data).digest())
    if sig_type in _EC_TYPES:
        size = SIG_TYPES[sig_type].private_key_len
        return signing.sign(sig_type, key.private_numbers().private_value.to_bytes(size, "big"), data)
    return signing.sign(8, key.private_bytes_raw(), data)      # Ed25519 over SHA-512(data), as I2P's type 8


def verify_raw(sig_type: int, key: PublicKey, data: bytes, signature: bytes) -> bool:
    """True when `signature` verifies; SignatureError when the key cannot carry this type at all."""
    if sig_type not in SU3_SIG_TYPES:
        raise SignatureError(f"signature type {_sig_name(sig_type)} is not allowed in SU3")
    if sig_type == 0:
        raise SignatureError("DSA_SHA1 SU3 signatures are not accepted")
    if sig_type_of_key(key) != sig_type:
        raise SignatureError(f"certificate key does not match signature type {_sig_name(sig_type)}")
    if sig_type in _RSA_TYPES:
        return _rsa_verify_hash(sig_type, key, _HASHES[sig_type](data).digest(), signature)
    return signing.verify(sig_type, _i2p_public_key(sig_type, key), data, signature)


def _rsa_sign_hash(key: rsa.RSAPrivateKey, digest: bytes) -> bytes:
    # Java "NONEwithRSA": PKCS#1 v1.5 block type 1 around the bare hash, no DigestInfo (RFC 8017 9.2 without T)
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    k = (n.bit_length() + 7) // 8
    block = b"\x00\x01" + b"\xff" * (k - len(digest) - 3) + b"\x00" + digest
    m = int.from_bytes(block, "big")
    s1 = pow(m, numbers.dmp1, numbers.p)        # CRT (RFC 8017 5.1.2, second form)
    s2 = pow(m, numbers.dmq1, numbers.q)
    s = s2 + numbers.q * ((numbers.iqmp * (s1 - s2)) % numbers.p)
    if pow(s, numbers.public_numbers.e, n) != m:
        raise SignatureError("RSA signing fault")
    return s.to_bytes(k, "big")


def _rsa_verify_hash(sig_type: int, key: rsa.RSAPublicKey, digest: bytes, signature: bytes) -> bool:
    try:
        recovered = key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
    except (InvalidSignature, ValueError):
        return False
    return hmac.compare_digest(recovered, digest) or hmac.compare_digest(recovered, _DIGEST_INFO[sig_type] + digest)


# --- signer certificates: self-signed X.509, looked up by signer id (reseed.md "Certificate Trust Model")

def certificate_file_name(signer_id: str) -> str:
    """The name routers give a signer's certificate: user@mail.i2p -> user_at_mail.i2p.crt."""
    return signer_id.replace("@", "_at_") + ".crt"


def certificate_common_name(cert: x509.Certificate) -> str | None:
    from cryptography.x509.oid import NameOID
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) else None


def load_certificate(path: Path) -> x509.Certificate:
    from cryptography import x509
    """A PEM (or DER) certificate; SignatureError if it cannot be read."""
    try:
        data = Path(path).read_bytes()[:MAX_CERTIFICATE_BYTES + 1]
    except OSError as exc:
        raise SignatureError(f"{path}: {exc.strerror or exc}", structure="certificate") from None
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise SignatureError(f"{path}: larger than {MAX_CERTIFICATE_BYTES} bytes", structure="certificate")
    try:
        return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise SignatureError(f"{path}: not an X.509 certificate ({exc})", structure="certificate") from None


def find_signer_certificate(signer_id: str, cert_dirs: Iterable[Path]) -> x509.Certificate:
    """The certificate for `signer_id`: first by file name, then by subject CN among the folders' .crt files."""
    dirs = [Path(d) for d in cert_dirs]
    if not signer_id or "/" in signer_id or "\x00" in signer_id or signer_id in (".", ".."):
        raise SignatureError(f"unusable signer id {signer_id!r}", structure="Su3File")
    for folder in dirs:
        candidate = folder / certificate_file_name(signer_id)
        if candidate.is_file():
            cert = load_certificate(candidate)
            if certificate_common_name(cert) == signer_id:
                return cert
    for folder in dirs:
        if not folder.is_dir():
            continue
        for candidate in sorted(folder.glob("*.crt"))[:MAX_CERTIFICATE_FILES]:
            try:
                cert = load_certificate(candidate)
            except SignatureError:
                continue
            if certificate_common_name(cert) == signer_id:
                return cert
    searched = ", ".join(str(d) for d in dirs) or "no folders"
    raise SignatureError(f"unknown signer {signer_id!r}: no certificate {certificate_file_name(signer_id)} "
                         f"in {searched}", structure="Su3File")


def verify_with_certificates(su3: Su3File, cert_dirs: Iterable[Path], *, content_type: int,
                             now: float) -> x509.Certificate:
    """Checks content type, signer certificate (found, in its validity period) and signature; returns the cert.

    updates.rst "Notes": the content type is the trust domain; routers enforce the certificates' dates.
    """
    if su3.content_type != content_type:
        raise SignatureError(f"content type {su3.content_type}, expected {content_type}", structure="Su3File")
    cert = find_signer_certificate(su3.signer_id, cert_dirs)
    moment = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        raise SignatureError(f"certificate of {su3.signer_id!r} is valid only from {cert.not_valid_before_utc:%Y-%m-%d}"
                             f" to {cert.not_valid_after_utc:%Y-%m-%d}", structure="Su3File")
    try:
        public_key = cert.public_key()
    except ValueError as exc:
        raise SignatureError(f"certificate of {su3.signer_id!r}: {exc}", structure="Su3File") from None
    if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        raise SignatureError(f"certificate of {su3.signer_id!r} holds a {type(public_key).__name__}",
                             structure="Su3File")
    su3.verify(public_key)
    return cert


def make_signer_certificate(signing_key: SigningKey, signer_id: str, *, now: float,
                            days: int = 3650) -> x509.Certificate:
    """A self-signed certificate whose subject and issuer CN is the signer id, as reseed signers publish."""
    # CN only: i2pd reads the signer id out of a 100-byte one-line rendering of the issuer name
    if not 0 < len(signer_id) <= 64 or "/" in signer_id or "\x00" in signer_id:
        raise ParseError(f"signer id {signer_id!r} must be 1-64 characters without '/'", structure="certificate")
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, signer_id)])
    start = datetime.datetime.fromtimestamp(now, datetime.timezone.utc) - datetime.timedelta(days=1)
    algorithm = None if isinstance(signing_key, ed25519.Ed25519PrivateKey) else hashes.SHA512()
    serial = int.from_bytes(hashlib.sha256(signer_id.encode() + str(now).encode()).digest()[:16], "big") >> 1
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(signing_key.public_key()).serial_number(serial or 1)
               .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True))
    return builder.sign(signing_key, algorithm)
