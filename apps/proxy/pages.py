"""The pages the proxy answers with itself: errors, the address-helper questions, its status page.

Every page is a complete HTTP response (status, HTML, Content-Length), in plain words.
"""
from __future__ import annotations

from html import escape
from typing import Any, Iterable
from urllib.parse import quote

REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
           431: "Request Header Fields Too Large", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}

STYLE = ("body{font:100%/1.5em sans-serif;margin:0;padding:1.5em;background:#fafafa;color:#103456}"
         "h1{font-size:1.6em;color:#894c84}code{word-break:break-all}li{margin:.3em 0}"
         "table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}")


def response(status: int, body: bytes, *, content_type: str = "text/html; charset=utf-8", keep_alive: bool = True,
             extra: Iterable[tuple[str, str]] = ()) -> bytes:
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}", f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}", "Cache-Control: no-store", "X-Content-Type-Options: nosniff",
            f"Connection: {'keep-alive' if keep_alive else 'close'}", *(f"{k}: {v}" for k, v in extra)]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def html_page(title: str, body_html: str) -> bytes:
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            f"content=\"width=device-width, initial-scale=1\"><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body><h1>{escape(title)}</h1>\n{body_html}\n"
            f"<p><small>pyi2p HTTP proxy &middot; <a href=\"http://proxy.i2p/\">status</a></small></p>"
            f"</body></html>\n").encode()


def page(status: int, title: str, body_html: str, *, keep_alive: bool = True) -> bytes:
    return response(status, html_page(title, body_html), keep_alive=keep_alive)


def error_page(status: int, title: str, detail: str, *, keep_alive: bool = True) -> bytes:
    """An error in plain words; `detail` is text (escaped here)."""
    return page(status, title, f"<p>{escape(detail)}</p>", keep_alive=keep_alive)


def redirect(location: str, *, keep_alive: bool = True) -> bytes:
    body = html_page("Redirect", f'<p><a href="{escape(location)}">Continue</a></p>')
    return response(302, body, keep_alive=keep_alive, extra=[("Location", location)])


HELPER_HELP = ("<p>A link can carry the site's address with it: <code>http://name.i2p/?i2paddresshelper="
               "&lt;destination&gt;</code>, where the destination is the site's Base64 destination or its "
               "<code>.b32.i2p</code> name. The proxy then asks you whether to keep that address.</p>")


def unknown_host_page(host: str, jumpservers: list[str], *, keep_alive: bool = True) -> bytes:
    jumps = "".join(f'<li><a href="{escape(prefix + quote(host, safe=".-"))}">'
                    f"{escape(_label(prefix))}</a></li>" for prefix in jumpservers)
    body = (f"<p>The host <b>{escape(host)}</b> is not in your address book, so the proxy does not know "
            f"which I2P destination it names.</p>"
            + (f"<p>A jump service may know it; each link below asks one:</p><ul>{jumps}</ul>" if jumps else
               "<p>No jump services are configured (<code>jumpservers</code> in <code>[proxy]</code>).</p>")
            + HELPER_HELP)
    return page(404, "Unknown host", body, keep_alive=keep_alive)


def _label(prefix: str) -> str:
    rest = prefix.split("://", 1)[-1]
    return rest.split("/", 1)[0] or prefix


def b33_page(host: str, *, keep_alive: bool = True) -> bytes:
    body = (f"<p><b>{escape(host)}</b> is the address of an <em>encrypted LeaseSet</em> (a &ldquo;b33&rdquo; "
            "address). Reaching it needs a blinded lookup, and for a private site its secret or key; this "
            "proxy does not do blinded lookups yet.</p><p>Ask the site's owner for its plain "
            "<code>.b32.i2p</code> address.</p>")
    return page(404, "Encrypted address not supported", body, keep_alive=keep_alive)


def no_outproxy_page(host: str, *, keep_alive: bool = True) -> bytes:
    body = (f"<p><b>{escape(host)}</b> is not an I2P site, and no outproxy is configured, so this proxy does not "
            "reach the clearnet.</p><p>To browse clearnet sites through I2P, name an outproxy (an I2P "
            "destination that runs an HTTP proxy) in <code>outproxy = [\"exit.example.i2p\"]</code> under "
            "<code>[proxy]</code> in config.toml.</p>")
    return page(503, "No outproxy", body, keep_alive=keep_alive)


def local_refused_page(host: str, *, keep_alive: bool = True) -> bytes:
    body = (f"<p>The proxy does not forward requests to <b>{escape(host)}</b>: localhost and private address "
            "ranges are refused, so pages cannot reach services on this machine or its network through the "
            "proxy.</p>")
    return page(403, "Local address refused", body, keep_alive=keep_alive)


def helper_confirm_page(host: str, b32: str, links: dict[str, str], *, keep_alive: bool = True) -> bytes:
    """Shown when a link brings an address for a host the address book does not know."""
    items = [f'<li><a href="{escape(links["once"])}">Continue without saving</a> (this time only)</li>']
    if "private" in links:
        items.append(f'<li><a href="{escape(links["private"])}">Save to the private address book</a> '
                     "(kept here, never published)</li>")
    if "local" in links:
        items.append(f'<li><a href="{escape(links["local"])}">Save to the local address book</a></li>')
    body = (f"<p>The link you followed says that <b>{escape(host)}</b> is the I2P destination "
            f"<code>{escape(b32)}</code>. Your address book does not know {escape(host)} yet.</p>"
            f"<p>Only go on if you trust the page that gave you this link.</p><ul>{''.join(items)}</ul>")
    return page(200, "Address helper: new host", body, keep_alive=keep_alive)


def helper_conflict_page(host: str, book_b32: str, helper_b32: str, path: str, replace_link: str | None, *,
                         keep_alive: bool = True) -> bytes:
    """Shown when a link's address for a host differs from the address book's."""
    replace = (f'<li><a href="{escape(replace_link)}">Replace the address book entry with the link\'s '
               f"destination</a></li>" if replace_link else "")
    body = (f"<p>The link you followed says that <b>{escape(host)}</b> is <code>{escape(helper_b32)}</code>, "
            f"but your address book has <b>{escape(host)}</b> as <code>{escape(book_b32)}</code>.</p>"
            "<p>This may be a phishing attempt: a page pretending to be another site.</p><ul>"
            f'<li><a href="http://{escape(book_b32)}{escape(path)}">Go to the address book\'s destination</a></li>'
            f'<li><a href="http://{escape(helper_b32)}{escape(path)}">Go to the link\'s destination</a></li>'
            f"{replace}</ul>")
    return page(409, "Address helper: conflicting address", body, keep_alive=keep_alive)


def status_page(status: dict[str, Any], errors: list[dict[str, Any]], saves: list[dict[str, Any]], *,
                keep_alive: bool = True) -> bytes:
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in status.items()
                   if not isinstance(v, (list, dict)))
    outproxies = status.get("outproxy") or []
    outproxy = ("<ul>" + "".join(f"<li><code>{escape(o)}</code></li>" for o in outproxies) + "</ul>") \
        if outproxies else "<p>None: clearnet hosts are refused.</p>"
    err = "".join(f"<tr><td>{escape(e['time'])}</td><td>{e['status']}</td><td>{escape(e['host'])}</td>"
                  f"<td>{escape(e['detail'])}</td></tr>" for e in reversed(errors)) or "<tr><td>none</td></tr>"
    sav = "".join(f"<tr><td>{escape(s['time'])}</td><td>{escape(s['host'])}</td><td><code>{escape(s['b32'])}"
                  f"</code></td><td>{escape(s['book'])}</td></tr>" for s in reversed(saves)) or "<tr><td>none</td></tr>"
    body = (f"<table>{rows}</table><h2>Outproxy</h2>{outproxy}<h2>Recent errors</h2><table>{err}</table>"
            f"<h2>Address helper saves</h2><table>{sav}</table>")
    return page(200, "pyi2p HTTP proxy", body, keep_alive=keep_alive)
