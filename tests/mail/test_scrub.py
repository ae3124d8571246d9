"""What leaves the node: no local names or addresses in the header, Date in UTC, body untouched."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from apps.mail.scrub import scrub, split_message

DOMAIN = "a" * 52 + ".b32.i2p"
NOW = 1_750_000_000.0

LEAKY = (b"Received: from laptop.home (192.168.1.20)\r\n\tby laptop.home with SMTP; Mon, 1 Jan 2024\r\n"
         b"X-Originating-IP: [192.168.1.20]\r\n"
         b"From: alice@" + DOMAIN.encode() + b"\r\n"
         b"To: bob@" + b"b" * 52 + b".b32.i2p\r\n"
         b"Subject: =?utf-8?q?caf=C3=A9?=\r\n"
         b"Date: Tue, 10 Jun 2025 19:30:00 +0200\r\n"
         b"Message-ID: <1234.5678@laptop.home>\r\n"
         b"User-Agent: Mozilla Thunderbird on laptop\r\n"
         b"X-Mailer: Evolution 3.4\r\n"
         b"MIME-Version: 1.0\r\n"
         b"\r\n"
         b"Received: in the body stays\r\nfrom 192.168.1.20\r\n")


def test_local_names_and_addresses_are_gone():
    out = scrub(LEAKY, DOMAIN, NOW, rng=lambda n: b"\x01" * n)
    header, body = out.split(b"\r\n\r\n", 1)
    assert b"laptop" not in header and b"192.168" not in header
    assert b"X-Mailer" not in header and b"User-Agent" not in header and b"Received:" not in header
    assert b"Date: Tue, 10 Jun 2025 17:30:00 +0000\r\n" in header
    assert b"Message-ID: <" + b"01" * 12 + b"@" + DOMAIN.encode() + b">" in header
    assert b"Subject: =?utf-8?q?caf=C3=A9?=\r\n" in header and b"MIME-Version: 1.0\r\n" in header
    assert body == b"Received: in the body stays\r\nfrom 192.168.1.20\r\n"


def test_our_own_message_id_is_kept_and_a_missing_date_is_added():
    message = b"Message-ID: <x@" + DOMAIN.encode() + b">\r\nSubject: s\r\n\r\nbody\r\n"
    out = scrub(message, DOMAIN, NOW)
    assert b"Message-ID: <x@" + DOMAIN.encode() + b">\r\n" in out
    assert b"Date: Sun, 15 Jun 2025 15:06:40 +0000\r\n" in out


def test_unparseable_date_becomes_now_in_utc():
    out = scrub(b"Date: yesterday-ish\r\n\r\nx\r\n", DOMAIN, NOW)
    assert out.startswith(b"Date: Sun, 15 Jun 2025 15:06:40 +0000\r\n")


def test_malformed_mime_passes_through_untouched():
    body = b"--no-such-boundary\r\nContent-Type: text/plain\r\n\r\n\xff\xfe garbage\r\n--"
    message = b"Content-Type: multipart/mixed; boundary=\"zz\r\nSubject: broken\r\n\r\n" + body
    out = scrub(message, DOMAIN, NOW)
    assert out.endswith(b"\r\n\r\n" + body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_scrub_without_error_and_keep_the_body(data):
    fields, body = split_message(data)
    out = scrub(data, DOMAIN, NOW)
    assert out.endswith(body) and b"Message-ID: <" in out
    assert split_message(out)[1].endswith(body)


def test_text_without_a_header_becomes_the_body():
    out = scrub(b"just text\r\nmore\r\n", DOMAIN, NOW)
    fields, body = split_message(out)
    assert body == b"\r\njust text\r\nmore\r\n" and len(fields) == 2
