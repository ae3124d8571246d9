"""Reseed bundles from files: SU3 verification against certificate folders, bounded zip reading."""
import io
import struct
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.data.encoding import b64encode
from core.data.errors import ParseError, ProtocolError, SignatureError
from core.netdb import reseed
from core.netdb.reseed import (MAX_BUNDLE_BYTES, MAX_ENTRIES, MAX_ENTRY_BYTES, ReseedError, open_reseed_bundle,
                               read_reseed_file, read_reseed_zip)
from core.netdb.store import NetDb
from core.netdb.su3 import ContentType, FileType

from .test_reseed_support import CLOCK, NOW, SIGNER, ed_key, make_ri, rsa_key, signed_bundle, write_cert, zip_of

NAME = "routerInfo-" + "A" * 43 + "=.dat"


def names(i: int) -> str:
    return "routerInfo-" + f"{i:043d}" + "=.dat"


@pytest.fixture(scope="module")
def ris():
    return [make_ri() for _ in range(3)]


def test_su3_bundle_read_with_an_explicit_certificate_folder(tmp_path, ris):
    write_cert(tmp_path / "certs", rsa_key(4096))
    path = tmp_path / "i2pseeds.su3"
    path.write_bytes(signed_bundle(ris, rsa_key(4096)).to_bytes())
    blobs = read_reseed_file(path, cert_dirs=[tmp_path / "certs"], clock=CLOCK)
    assert sorted(blobs) == sorted(ri.to_bytes() for ri in ris)
    db = NetDb(None, 42, CLOCK)
    assert all(db.add_router_info(blob) for blob in blobs)


def test_su3_is_recognised_by_magic_not_name(tmp_path, ris):
    write_cert(tmp_path / "certs", ed_key())
    path = tmp_path / "seed.zip"
    path.write_bytes(signed_bundle(ris).to_bytes())
    assert len(read_reseed_file(path, cert_dirs=[tmp_path / "certs"], clock=CLOCK)) == 3


def test_default_folders_include_the_datadirs_certificates(tmp_path, ris):
    write_cert(tmp_path / "data" / "certificates" / "reseed", ed_key())
    path = tmp_path / "seed.su3"
    path.write_bytes(signed_bundle(ris).to_bytes())
    assert len(read_reseed_file(path, datadir=tmp_path / "data", clock=CLOCK)) == 3
    with pytest.raises(SignatureError, match="unknown signer"):
        read_reseed_file(path, clock=CLOCK)          # only the package's folder, which holds no test signer


def test_package_certificate_folder_exists_and_holds_no_certificates():
    assert reseed.PACKAGE_CERTS_DIR.is_dir()
    assert not list(reseed.PACKAGE_CERTS_DIR.glob("*.crt"))


def test_unknown_signer_and_bad_signature_are_refused(tmp_path, ris):
    write_cert(tmp_path / "certs", ed_key(1))
    path = tmp_path / "seed.su3"
    path.write_bytes(signed_bundle(ris, ed_key(1), signer="stranger@mail.i2p").to_bytes())
    with pytest.raises(SignatureError, match="unknown signer 'stranger@mail.i2p'"):
        read_reseed_file(path, cert_dirs=[tmp_path / "certs"], clock=CLOCK)
    data = bytearray(signed_bundle(ris, ed_key(1)).to_bytes())
    data[100] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(SignatureError, match="does not verify"):
        read_reseed_file(path, cert_dirs=[tmp_path / "certs"], clock=CLOCK)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"content_type": ContentType.NEWS}, SignatureError, "content type"),
    ({"file_type": FileType.XML}, ReseedError, "not a zip"),
    ({"version": str(int(NOW) - 31 * 86400)}, ReseedError, "days old"),
])
def test_su3_that_is_not_a_fresh_reseed_zip_is_refused(tmp_path, ris, kwargs, error, message):
    write_cert(tmp_path, ed_key())
    path = tmp_path / "seed.su3"
    path.write_bytes(signed_bundle(ris, **kwargs).to_bytes())
    with pytest.raises(error, match=message):
        read_reseed_file(path, cert_dirs=[tmp_path], clock=CLOCK)


def test_non_numeric_version_is_accepted_as_java_does(tmp_path, ris):
    write_cert(tmp_path, ed_key())
    path = tmp_path / "seed.su3"
    path.write_bytes(signed_bundle(ris, version="3").to_bytes())
    assert len(read_reseed_file(path, cert_dirs=[tmp_path], clock=CLOCK)) == 3


def test_open_bundle_reports_signer_and_skipped_entries(tmp_path, ris):
    write_cert(tmp_path, ed_key())
    su3 = signed_bundle(ris)
    path = tmp_path / "seed.su3"
    path.write_bytes(su3.to_bytes())
    bundle = open_reseed_bundle(path, cert_dirs=[tmp_path], now=NOW)
    assert bundle.su3 == su3 and bundle.certificate is not None and bundle.skipped == 0


# --- zips

def zip_with(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def test_plain_zip_entries_are_filtered_by_name_and_method(ris):
    good = {f"routerInfo-{b64encode(ri.hash)}.dat": ri.to_bytes() for ri in ris}
    data = zip_with({**good, "README": b"x", "routerInfo-short.dat": b"x", "routerInfo-../../x.dat": b"x",
                     "routerInfo-" + "B" * 43 + "=.dat": b""})
    blobs, skipped = read_reseed_zip(data)
    assert sorted(blobs) == sorted(good.values()) and skipped == 4
    bz = zip_with({NAME: b"ri"}, compression=zipfile.ZIP_BZIP2)
    assert read_reseed_zip(bz) == ([], 1)


def test_oversize_entry_is_skipped_without_inflating_it():
    bomb = zip_with({NAME: bytes(50 * 1024 * 1024)})           # 50 MiB of zeros, ~50 KB compressed
    assert len(bomb) < 100_000
    assert read_reseed_zip(bomb) == ([], 1)


def test_entry_that_inflates_beyond_its_declared_size_is_refused():
    # a lying size field: the central directory says 100 bytes, the data inflates to 1 MiB
    data = bytearray(zip_with({NAME: bytes(1024 * 1024)}))
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(signature)
        struct.pack_into("<I", data, at + size_offset, 100)
    with pytest.raises(ParseError, match="reseed zip"):
        read_reseed_zip(bytes(data))


def test_too_much_in_total_is_refused():
    count = MAX_BUNDLE_BYTES // MAX_ENTRY_BYTES + 1
    data = zip_with({names(i): bytes(MAX_ENTRY_BYTES) for i in range(count)})
    with pytest.raises(ParseError, match="uncompressed"):
        read_reseed_zip(data)


def test_too_many_entries_is_refused():
    data = zip_with({names(i): b"x" for i in range(MAX_ENTRIES + 1)}, compression=zipfile.ZIP_STORED)
    with pytest.raises(ParseError, match="entries"):
        read_reseed_zip(data)


def test_corrupt_entry_data_is_a_parse_error(ris):
    data = bytearray(zip_of(ris[:1]))
    data[60] ^= 0xFF                                            # inside the deflated data: CRC or inflate fails
    with pytest.raises(ParseError):
        read_reseed_zip(bytes(data))


def test_file_that_is_neither_su3_nor_zip_names_the_path(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"hello")
    with pytest.raises(ParseError, match="junk.bin"):
        read_reseed_file(path)
    with pytest.raises(ParseError, match="missing"):
        read_reseed_file(tmp_path / "missing.su3")


def test_oversize_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(reseed, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "big.zip"
    path.write_bytes(bytes(1001))
    with pytest.raises(ParseError, match="larger than 1000"):
        read_reseed_file(path)


@given(st.binary(max_size=600))
def test_random_bytes_into_the_zip_reader_raise_only_parse_errors(data):
    try:
        read_reseed_zip(b"PK\x03\x04" + data)
    except ParseError:
        pass


VALID_ZIP = zip_with({NAME: b"routerinfo bytes " * 20, "other.txt": b"hello"})


@given(st.data())
def test_mutated_zips_raise_only_parse_errors(data):
    raw = bytearray(VALID_ZIP)
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        blobs, _ = read_reseed_zip(bytes(raw))
        assert all(len(blob) <= MAX_ENTRY_BYTES for blob in blobs)
    except ParseError:
        pass


@given(st.data())
def test_mutated_su3_bundles_raise_only_protocol_errors(tmp_path_factory, data):
    folder = tmp_path_factory.getbasetemp() / "certs-fuzz"
    if not folder.exists():
        write_cert(folder, ed_key())
    raw = bytearray(FUZZ_SU3)
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        reseed.open_su3_bundle(bytes(raw), [folder], NOW)
    except ProtocolError:
        pass


FUZZ_SU3 = signed_bundle([make_ri()], ed_key(), signer=SIGNER).to_bytes()
