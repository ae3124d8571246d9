"""The address helper (`?i2paddresshelper=<b64|b32|name>`), sans-I/O.

A link may carry a host's destination. The proxy never trusts it silently: for a host the book does
not know it asks (continue once, or save to the private or local book), for a host the book knows
differently it warns (409). A save is done only when
- the save link carries the nonce of a page the proxy showed for that host and destination, and
- the Referer is a page of the same host: the proxy's own question, served under that host's URL.
So a page elsewhere cannot make the browser save or replace an entry behind the user's back (the fix
i2pd made after its issue 1849).
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from core.data.identity import Destination

from . import pages
from .http import Target

HELPER = "i2paddresshelper"
SAVE = "i2paddresshelper_save"
NONCE = "i2paddresshelper_nonce"
ACTIONS = ("once", "private", "local")
NONCE_TTL_S = 900.0
MAX_NONCES = 256
MAX_ONCE = 256


@dataclass(frozen=True, slots=True)
class HelperRequest:
    value: str
    save: str | None
    nonce: str | None
    clean_path: str          # the path without the helper's parameters


def extract(path: str) -> HelperRequest | None:
    """The helper's parameters in a request path, or None when it has none."""
    base, sep, query = path.partition("?")
    if not sep or HELPER not in query:
        return None
    params = parse_qsl(query, keep_blank_values=True)
    found = {k: v for k, v in params if k in (HELPER, SAVE, NONCE)}
    if not found.get(HELPER):
        return None
    rest = [(k, v) for k, v in params if k not in (HELPER, SAVE, NONCE)]
    clean = base + (f"?{urlencode(rest, quote_via=quote)}" if rest else "")
    save = found.get(SAVE)
    return HelperRequest(found[HELPER].strip(), save if save in ACTIONS else None, found.get(NONCE), clean)


def referer_host(referer: str | None) -> str | None:
    if not referer:
        return None
    try:
        return (urlsplit(referer).hostname or "").lower() or None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to answer: `response` (a page or redirect), and a save to do first when `save_book` is set
    ("private"/"local"; "once" is kept here)."""

    response: bytes
    save_book: str | None = None


class AddressHelper:
    def __init__(self, *, rng: Callable[[int], bytes], clock: Callable[[], float] = time.monotonic,
                 books: tuple[str, ...] = ("private", "local")):
        self._rng, self._clock, self.books = rng, clock, books
        self._nonces: OrderedDict[str, tuple[str, bytes, float]] = OrderedDict()
        self._once: OrderedDict[str, Destination] = OrderedDict()

    def lookup_once(self, host: str) -> Destination | None:
        """A destination the user accepted for this run only ("continue without saving")."""
        return self._once.get(host)

    def _issue(self, host: str, dest: Destination) -> str:
        now = self._clock()
        while self._nonces and (len(self._nonces) >= MAX_NONCES or next(iter(self._nonces.values()))[2] < now):
            self._nonces.popitem(last=False)
        nonce = self._rng(16).hex()
        self._nonces[nonce] = (host, dest.hash, now + NONCE_TTL_S)
        return nonce

    def _take(self, nonce: str | None, host: str, dest: Destination) -> bool:
        entry = self._nonces.get(nonce or "")
        if entry is None or entry[2] < self._clock() or entry[:2] != (host, dest.hash):
            return False
        del self._nonces[nonce]
        return True

    def _links(self, target: Target, helper: HelperRequest, nonce: str, actions: tuple[str, ...]) -> dict[str, str]:
        sep = "&" if "?" in helper.clean_path else "?"
        base = f"http://{target.authority}{helper.clean_path}{sep}{HELPER}={quote(helper.value, safe='')}"
        return {a: f"{base}&{SAVE}={a}&{NONCE}={nonce}" for a in actions}

    def handle(self, target: Target, helper: HelperRequest, dest: Destination, book: Destination | None,
               referer: str | None, *, keep_alive: bool = True) -> Outcome:
        """`dest`: what the helper names; `book`: what the address book has for the host (or None)."""
        host = target.host
        clean_url = f"http://{target.authority}{helper.clean_path}"
        if book is not None and book.hash == dest.hash:
            return Outcome(pages.redirect(clean_url, keep_alive=keep_alive))
        if helper.save is not None:
            if referer_host(referer) != host:
                return Outcome(pages.error_page(
                    403, "Address helper: save refused",
                    f"The request to save {host} did not come from the proxy's own question page for {host} "
                    "(its Referer is another site or missing), so nothing was saved. Open the link again and "
                    "choose on the page the proxy shows.", keep_alive=keep_alive))
            if not self._take(helper.nonce, host, dest):
                return Outcome(pages.error_page(
                    403, "Address helper: link expired",
                    f"This save link for {host} is not one the proxy issued, or it was used or expired; nothing "
                    "was saved. Open the original link again.", keep_alive=keep_alive))
            if helper.save == "once":
                self._once[host] = dest
                self._once.move_to_end(host)
                while len(self._once) > MAX_ONCE:
                    self._once.popitem(last=False)
                return Outcome(pages.redirect(clean_url, keep_alive=keep_alive))
            if helper.save not in self.books:
                return Outcome(pages.error_page(403, "Address helper: no address book",
                                                "There is no address book to save to.", keep_alive=keep_alive))
            return Outcome(pages.redirect(clean_url, keep_alive=keep_alive), save_book=helper.save)
        nonce = self._issue(host, dest)
        if book is None:
            links = self._links(target, helper, nonce, ("once", *self.books))
            return Outcome(pages.helper_confirm_page(host, dest.b32_address, links, keep_alive=keep_alive))
        replace = self._links(target, helper, nonce, self.books[:1]).get("private") if self.books else None
        return Outcome(pages.helper_conflict_page(host, book.b32_address, dest.b32_address, helper.clean_path,
                                                  replace, keep_alive=keep_alive))
