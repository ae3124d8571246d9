"""The address-helper flow as a sans-I/O unit: confirm page, nonce, save, conflict, the same-host rule."""
from __future__ import annotations

import re
from html import unescape
from itertools import count
from urllib.parse import quote

from apps.proxy.addresshelper import NONCE_TTL_S, AddressHelper, extract
from apps.proxy.http import Target
from core.data.privatekeys import PrivateKeys

GOOD = PrivateKeys.generate().destination
EVIL = PrivateKeys.generate().destination
TARGET = Target("http", "site.i2p", 80, f"/page?a=1&i2paddresshelper={GOOD.b64}", absolute=True)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make(books=("private", "local")):
    counter = count(1)
    clock = Clock()
    return AddressHelper(rng=lambda n: next(counter).to_bytes(n, "big"), clock=clock, books=books), clock


def links(page: bytes) -> list[str]:
    return [unescape(h.decode()) for h in re.findall(rb'href="([^"]+)"', page.split(b"\r\n\r\n", 1)[1])]


def status(page: bytes) -> int:
    return int(page.split(b" ", 2)[1])


def follow(helper, link: str, book, referer):
    path = link.split("site.i2p", 1)[1]
    req = extract(path)
    return helper.handle(Target("http", "site.i2p", 80, path, absolute=True), req, GOOD if req.value == GOOD.b64
                         else EVIL, book, referer)


def test_extract_strips_only_the_helper_parameters():
    req = extract(f"/p?a=1&i2paddresshelper={GOOD.b64}&b=2")
    assert req.value == GOOD.b64 and req.save is None and req.clean_path == "/p?a=1&b=2"
    assert extract("/p?a=1") is None
    assert extract(f"/p?i2paddresshelper={GOOD.b64}").clean_path == "/p"
    req = extract("/p?i2paddresshelper=x.b32.i2p&i2paddresshelper_save=bogus")
    assert req.save is None


def test_unknown_host_confirm_then_save_with_nonce_from_the_same_host():
    helper, _ = make()
    outcome = helper.handle(TARGET, extract(TARGET.path), GOOD, None, referer="http://elsewhere.i2p/")
    assert status(outcome.response) == 200 and outcome.save_book is None
    assert GOOD.b32_address.encode() in outcome.response
    found = {re.search(r"i2paddresshelper_save=(\w+)", l).group(1): l for l in links(outcome.response)
             if "i2paddresshelper_save" in l}
    assert set(found) == {"once", "private", "local"}
    confirm_page_url = "http://site.i2p" + TARGET.path
    saved = follow(helper, found["private"], None, referer=confirm_page_url)
    assert saved.save_book == "private" and status(saved.response) == 302
    assert b"Location: http://site.i2p/page?a=1\r\n" in saved.response
    # the nonce is spent
    again = follow(helper, found["local"], None, referer=confirm_page_url)
    assert status(again.response) == 403 and again.save_book is None


def test_save_refused_from_another_host_or_without_referer():
    helper, _ = make()
    page = helper.handle(TARGET, extract(TARGET.path), GOOD, None, referer=None).response
    link = next(l for l in links(page) if "save=local" in l)
    for referer in ("http://evil.i2p/page", None, "http://site.i2p.evil.i2p/"):
        outcome = follow(helper, link, None, referer)
        assert status(outcome.response) == 403 and outcome.save_book is None
        assert b"save refused" in outcome.response
    assert follow(helper, link, None, "http://site.i2p/x").save_book == "local"


def test_forged_or_expired_nonce_refused():
    helper, clock = make()
    page = helper.handle(TARGET, extract(TARGET.path), GOOD, None, referer=None).response
    link = next(l for l in links(page) if "save=local" in l)
    forged = re.sub(r"nonce=\w+", "nonce=" + "0" * 32, link)
    assert status(follow(helper, forged, None, "http://site.i2p/").response) == 403
    # a nonce for GOOD cannot save EVIL
    evil_link = link.replace(quote(GOOD.b64, safe=""), quote(EVIL.b64, safe=""))
    assert evil_link != link
    assert status(follow(helper, evil_link, None, "http://site.i2p/").response) == 403
    clock.now += NONCE_TTL_S + 1
    outcome = follow(helper, link, None, "http://site.i2p/")
    assert status(outcome.response) == 403 and b"expired" in outcome.response


def test_continue_once_is_remembered_without_saving():
    helper, _ = make()
    page = helper.handle(TARGET, extract(TARGET.path), GOOD, None, referer=None).response
    link = next(l for l in links(page) if "save=once" in l)
    outcome = follow(helper, link, None, "http://site.i2p/")
    assert outcome.save_book is None and status(outcome.response) == 302
    assert helper.lookup_once("site.i2p") == GOOD


def test_conflict_page_links_both_destinations():
    helper, _ = make()
    target = Target("http", "site.i2p", 80, f"/x?i2paddresshelper={EVIL.b64}", absolute=True)
    outcome = helper.handle(target, extract(target.path), EVIL, GOOD, referer=None)
    assert status(outcome.response) == 409
    hrefs = links(outcome.response)
    assert f"http://{GOOD.b32_address}/x" in hrefs and f"http://{EVIL.b32_address}/x" in hrefs
    replace = next(l for l in hrefs if "save=private" in l)
    assert follow(helper, replace, GOOD, "http://evil.i2p/").save_book is None
    assert follow(helper, replace, GOOD, "http://site.i2p/x").save_book == "private"


def test_helper_that_agrees_with_the_book_redirects():
    helper, _ = make()
    outcome = helper.handle(TARGET, extract(TARGET.path), GOOD, GOOD, referer=None)
    assert status(outcome.response) == 302 and outcome.save_book is None


def test_without_an_address_book_only_continue():
    helper, _ = make(books=())
    page = helper.handle(TARGET, extract(TARGET.path), GOOD, None, referer=None).response
    assert [l for l in links(page) if "save=" in l and "save=once" not in l] == []
