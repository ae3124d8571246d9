"""Reseeding (reseed.md; updates.rst "SU3 Reseed File Specification").

Bundles come from a file (an .su3, a zip of routerInfo-*.dat, or a folder of them) or from HTTPS reseed
servers (`<url>i2pseeds.su3?netid=N`). SU3 bundles are accepted only from signers whose certificate is
in a certificates folder. ReseedService retries with exponential backoff while the netDb is too small.
"""
from __future__ import annotations

import asyncio
import io
import logging
import os
import random
import re
import ssl
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable, Iterable, Sequence
from urllib.parse import urlsplit


from core.clock import Clock, Rng, SystemClock
from core.data.errors import ParseError, ProtocolError
from core.data.routerinfo import RouterInfo
from core.netdb.su3 import MAGIC, ContentType, FileType, Su3File, verify_with_certificates

if TYPE_CHECKING:
    import aiohttp      # loaded only when a reseed server is asked: a router that has peers never needs it
    from cryptography import x509

log = logging.getLogger(__name__)

MAX_ENTRIES = 2000                          # routerInfo files in one bundle
MAX_ENTRY_BYTES = 64 * 1024                 # one RouterInfo, uncompressed
MAX_BUNDLE_BYTES = 16 * 1024 * 1024         # all entries together, uncompressed (zip bombs stop here)
MAX_FILE_BYTES = 16 * 1024 * 1024           # a bundle file on disk
MAX_DOWNLOAD_BYTES = 2 * 1024 * 1024        # a bundle from a server (real ones are ~100 KB)
MAX_SU3_AGE_S = 30 * 24 * 3600              # older reseed bundles are refused, as Java does
PACKAGE_CERTS_DIR = Path(__file__).with_name("reseed_certs")
DATADIR_CERTS = Path("certificates") / "reseed"
SU3_FILE_NAME = "i2pseeds.su3"
USER_AGENT = "Wget/1.11.4"                  # reseed.md "Client Behavior": look like a common client
REAL_NETID = 2

# reseed.md "Reseed Request Specification": the real network's servers; used only when netid == 2
RESEED_URLS_NETID_2 = (
    "https://reseed2.i2p.net/",
    "https://reseed.diva.exchange/",
    "https://reseed-fr.i2pd.xyz/",
    "https://reseed-pl.i2pd.xyz/",
    "https://reseed.i2pgit.org/",
    "https://reseed.onion.im/",
    "https://i2p.novg.net/",
    "https://i2pseed.creativecowpat.net:8443/",
    "https://coconut.incognet.io/",
    "https://reseed.stormycloud.org/",
    "https://www2.mk16.de/",
)

_ROUTER_INFO_NAME = re.compile(r"routerInfo-[A-Za-z0-9~-]{43}=\.dat")


class ReseedError(ProtocolError):
    """A reseed server or bundle gave nothing usable."""


def default_reseed_urls(netid: int) -> list[str]:
    """The built-in server list: the real network's for netid 2, none for any other network."""
    return list(RESEED_URLS_NETID_2) if netid == REAL_NETID else []


def default_cert_dirs(datadir: str | Path | None = None) -> list[Path]:
    """Where signer certificates are looked up: the package's folder, then DATADIR/certificates/reseed/."""
    dirs = [PACKAGE_CERTS_DIR]
    if datadir is not None:
        dirs.append(Path(datadir) / DATADIR_CERTS)
    return dirs


# --- bundles

@dataclass(frozen=True, slots=True)
class ReseedBundle:
    """RouterInfo blobs from one bundle, and for an SU3 the file and the certificate that verified it."""

    router_infos: tuple[bytes, ...]
    su3: Su3File | None = None
    certificate: x509.Certificate | None = None
    skipped: int = 0


def read_reseed_zip(data: bytes) -> tuple[list[bytes], int]:
    """RouterInfo blobs in a reseed zip and how many entries were skipped; ParseError if it is unusable.

    Bounded: at most MAX_ENTRIES entries, MAX_ENTRY_BYTES each and MAX_BUNDLE_BYTES in all, only stored or
    deflated entries named routerInfo-<44 base64>.dat (updates.rst "SU3 Reseed File Specification").
    """
    blobs: list[bytes] = []
    skipped = 0
    total = 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as bundle:
            entries = bundle.infolist()
            if len(entries) > MAX_ENTRIES:
                raise ParseError(f"{len(entries)} entries, more than {MAX_ENTRIES}", structure="reseed zip")
            for info in entries:
                name = info.filename.rsplit("/", 1)[-1]
                usable = (_ROUTER_INFO_NAME.fullmatch(name) and not info.is_dir()
                          and info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
                          and 0 < info.file_size <= MAX_ENTRY_BYTES)
                if not usable:
                    skipped += 1
                    continue
                total += info.file_size
                if total > MAX_BUNDLE_BYTES:
                    raise ParseError(f"more than {MAX_BUNDLE_BYTES} bytes uncompressed", structure="reseed zip")
                with bundle.open(info) as member:
                    blob = member.read(MAX_ENTRY_BYTES + 1)
                if len(blob) > MAX_ENTRY_BYTES:
                    skipped += 1
                    continue
                blobs.append(blob)
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile raises many types (BadZipFile, zlib.error, struct.error...)
        raise ParseError(f"not a usable zip ({type(exc).__name__}: {exc})", structure="reseed zip") from None
    return blobs, skipped


def check_reseed_version(su3: Su3File, now: float) -> None:
    """updates.rst: a reseed SU3's version is `date +%s`; a numeric one older than MAX_SU3_AGE_S is refused."""
    text = su3.version.strip()
    if text.isascii() and text.isdigit() and int(text) >= 1_400_000_000 and int(text) < now - MAX_SU3_AGE_S:
        raise ReseedError(f"bundle signed at {text} is more than {MAX_SU3_AGE_S // 86400} days old",
                          structure="Su3File")


def open_su3_bundle(data: bytes, cert_dirs: Iterable[Path], now: float) -> ReseedBundle:
    """Verifies a reseed SU3 (signer, certificate dates, signature, content and file type, age), then unzips it."""
    su3 = Su3File.parse(data)
    cert = verify_with_certificates(su3, cert_dirs, content_type=ContentType.RESEED, now=now)
    if su3.file_type != FileType.ZIP:
        raise ReseedError(f"reseed SU3 holds file type {su3.file_type}, not a zip", structure="Su3File")
    check_reseed_version(su3, now)
    blobs, skipped = read_reseed_zip(su3.content)
    return ReseedBundle(tuple(blobs), su3, cert, skipped)


def open_reseed_bundle(path: str | Path, *, cert_dirs: Sequence[Path], now: float) -> ReseedBundle:
    """A bundle file or folder; SU3 is recognised by its magic, not its name."""
    path = Path(path)
    if path.is_dir():
        blobs = []
        for entry in sorted(path.rglob("routerInfo-*.dat"))[:MAX_ENTRIES]:
            if entry.is_file() and entry.stat().st_size <= MAX_ENTRY_BYTES:
                blobs.append(entry.read_bytes())
        return ReseedBundle(tuple(blobs))
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ParseError(f"{path}: {exc.strerror or exc}", structure="reseed") from None
    if len(data) > MAX_FILE_BYTES:
        raise ParseError(f"{path}: larger than {MAX_FILE_BYTES} bytes", structure="reseed")
    if data.startswith(MAGIC):
        return open_su3_bundle(data, cert_dirs, now)
    try:
        blobs, skipped = read_reseed_zip(data)
    except ParseError as exc:
        raise ParseError(f"{path}: not a reseed .su3, zip or folder ({exc.reason})", structure="reseed") from None
    return ReseedBundle(tuple(blobs), skipped=skipped)


def read_reseed_file(path: str | Path, *, datadir: str | Path | None = None,
                     cert_dirs: Sequence[str | Path] | None = None, clock: Clock | None = None) -> list[bytes]:
    """The RouterInfo blobs in a reseed .su3, zip or folder; ParseError/SignatureError for an unusable bundle.

    SU3 signers are looked up in `cert_dirs` (default: the package's reseed_certs and DATADIR/certificates/reseed).
    """
    dirs = [Path(d) for d in cert_dirs] if cert_dirs is not None else default_cert_dirs(datadir)
    now = (clock or SystemClock()).time()
    return list(open_reseed_bundle(path, cert_dirs=dirs, now=now).router_infos)


# --- reseed servers

def su3_url(base: str, netid: int) -> str:
    """reseed.md "Network ID Query Parameter": <base>/i2pseeds.su3?netid=N (a base ending in .su3 is used as is)."""
    if urlsplit(base).path.endswith(".su3"):
        return f"{base}{'&' if '?' in base else '?'}netid={netid}"
    return f"{base if base.endswith('/') else base + '/'}{SU3_FILE_NAME}?netid={netid}"


def tls_context(trust_ca: str | Path | None = None) -> ssl.SSLContext:
    """The system's trust store, or only `trust_ca` (a PEM file of CA certificates) when given."""
    if trust_ca is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=str(trust_ca))


@dataclass(frozen=True, slots=True)
class ServerOutcome:
    url: str
    router_infos: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class FetchResult:
    router_infos: tuple[bytes, ...]
    outcomes: tuple[ServerOutcome, ...]

    @property
    def servers_ok(self) -> int:
        return sum(1 for o in self.outcomes if not o.error)


class ReseedFetcher:
    """Fetches signed bundles from reseed servers in random order until `min_servers` of them answered."""

    def __init__(self, urls: Sequence[str], netid: int, cert_dirs: Sequence[str | Path], *, clock: Clock,
                 rng: Rng = os.urandom, ssl_context: ssl.SSLContext | None = None, trust_ca: str | Path | None = None,
                 min_servers: int = 2, min_router_infos: int = 50, timeout_s: float = 60.0,
                 connect_timeout_s: float = 15.0, max_bytes: int = MAX_DOWNLOAD_BYTES, own_hash: bytes = b""):
        self.urls = list(urls)
        self.netid = netid
        self.cert_dirs = [Path(d) for d in cert_dirs]
        self.clock = clock
        self.rng = rng
        self._ssl_context = ssl_context
        self._trust_ca = trust_ca
        self.min_servers = min_servers
        self.min_router_infos = min_router_infos
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_bytes = max_bytes
        self.own_hash = own_hash

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = tls_context(self._trust_ca)
        return self._ssl_context

    def server_order(self) -> list[str]:
        """The URLs shuffled, one per host (the same host under two URLs counts once, as in Java)."""
        order = list(self.urls)
        random.Random(int.from_bytes(self.rng(8), "big")).shuffle(order)
        seen: set[str] = set()
        unique = []
        for url in order:
            host = urlsplit(url).netloc.lower()
            if host not in seen:
                seen.add(host)
                unique.append(url)
        return unique

    async def download(self, session: aiohttp.ClientSession, url: str) -> bytes:
        """GET with no redirects, a size bound and the session's timeout; ReseedError for anything but a 200."""
        import aiohttp
        try:
            async with session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise ReseedError(f"HTTP {response.status}")
                if response.content_length is not None and response.content_length > self.max_bytes:
                    raise ReseedError(f"answer of {response.content_length} bytes is larger than {self.max_bytes}")
                chunks = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ReseedError(f"answer is larger than {self.max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except asyncio.TimeoutError:
            raise ReseedError(f"timed out after {self.timeout_s:g} s") from None
        except (aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            raise ReseedError(f"{type(exc).__name__}: {exc}") from None

    def usable_router_infos(self, bundle: ReseedBundle) -> dict[bytes, bytes]:
        """Blobs by router hash, for our network and not us; ReseedError when none are left (e.g. wrong netid)."""
        usable: dict[bytes, bytes] = {}
        other_net = 0
        for blob in bundle.router_infos:
            try:
                ri = RouterInfo.parse(blob)
                if ri.netid != self.netid:
                    other_net += 1
                    continue
            except ProtocolError:
                continue
            if ri.hash != self.own_hash:
                usable[ri.hash] = blob
        if not usable:
            detail = f", {other_net} for other networks" if other_net else ""
            raise ReseedError(f"no RouterInfos for netId {self.netid} in a bundle of {len(bundle.router_infos)}"
                              f"{detail}")
        return usable

    async def fetch_from(self, session: aiohttp.ClientSession, base_url: str) -> dict[bytes, bytes]:
        url = su3_url(base_url, self.netid)
        data = await self.download(session, url)
        bundle = open_su3_bundle(data, self.cert_dirs, self.clock.time())
        return self.usable_router_infos(bundle)

    def session(self) -> aiohttp.ClientSession:
        import aiohttp
        timeout = aiohttp.ClientTimeout(total=self.timeout_s, sock_connect=self.connect_timeout_s)
        connector = aiohttp.TCPConnector(ssl=self._context(), limit=4)
        return aiohttp.ClientSession(timeout=timeout, connector=connector, trust_env=False,
                                     headers={"User-Agent": USER_AGENT})

    async def fetch(self) -> FetchResult:
        """One reseed round; never raises for a server's failure (each is in the outcomes)."""
        by_hash: dict[bytes, bytes] = {}
        outcomes: list[ServerOutcome] = []
        order = self.server_order()
        wanted_servers = min(self.min_servers, len(order))
        if not order:
            log.warning("reseed: no reseed servers for netId %d", self.netid)
            return FetchResult((), ())
        async with self.session() as session:
            for base_url in order:
                log.info("reseed: fetching %s", su3_url(base_url, self.netid))
                try:
                    blobs = await self.fetch_from(session, base_url)
                except ProtocolError as exc:
                    log.warning("reseed: %s failed: %s", base_url, exc)
                    outcomes.append(ServerOutcome(base_url, 0, str(exc)))
                    continue
                for router_hash, blob in blobs.items():
                    by_hash.setdefault(router_hash, blob)
                log.info("reseed: %s gave %d RouterInfos", base_url, len(blobs))
                outcomes.append(ServerOutcome(base_url, len(blobs)))
                if (sum(1 for o in outcomes if not o.error) >= wanted_servers
                        and len(by_hash) >= self.min_router_infos):
                    break
        return FetchResult(tuple(by_hash.values()), tuple(outcomes))


# --- the retry loop

@dataclass(slots=True)
class BackoffSchedule:
    """Delays after failed attempts: initial, doubling, capped; reset once the netDb is large enough."""

    initial_s: float = 30.0
    max_s: float = 3600.0
    current_s: float = field(default=0.0, init=False)

    def next_delay(self) -> float:
        self.current_s = self.initial_s if self.current_s == 0 else min(self.current_s * 2, self.max_s)
        return self.current_s

    def reset(self) -> None:
        self.current_s = 0.0


@dataclass(frozen=True, slots=True)
class ReseedStatus:
    """What a status page shows: state is "idle", "reseeding" or "waiting" (for the next retry)."""

    state: str
    attempts: int
    consecutive_failures: int
    last_attempt_at: float | None
    last_success_at: float | None
    last_added: int
    last_error: str
    next_attempt_at: float | None
    servers: int


class ReseedService:
    """Keeps the netDb above `threshold` routers: reseeds, and on failure retries with backoff, never giving up.

    The router calls `await run()` as an owned task, `request()` to ask for a reseed now (e.g. I2PControl
    "Reseed"), and `status()` for its status page.
    """

    def __init__(self, fetcher: ReseedFetcher, *, router_count: Callable[[], int],
                 add_router_info: Callable[[bytes], object], clock: Clock, threshold: int = 25,
                 backoff: BackoffSchedule | None = None, idle_check_s: float = 600.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.fetcher = fetcher
        self.router_count = router_count
        self.add_router_info = add_router_info
        self.clock = clock
        self.threshold = threshold
        self.backoff = backoff or BackoffSchedule()
        self.idle_check_s = idle_check_s
        self._sleep = sleep
        self._wakeup = asyncio.Event()
        self._requested = False
        self._state = "idle"
        self.attempts = 0
        self.consecutive_failures = 0
        self.last_attempt_at: float | None = None
        self.last_success_at: float | None = None
        self.last_added = 0
        self.last_error = ""
        self.next_attempt_at: float | None = None

    def status(self) -> ReseedStatus:
        return ReseedStatus(self._state, self.attempts, self.consecutive_failures, self.last_attempt_at,
                            self.last_success_at, self.last_added, self.last_error, self.next_attempt_at,
                            len(self.fetcher.urls))

    @property
    def is_reseeding(self) -> bool:
        return self._state == "reseeding"

    def request(self) -> None:
        """Reseed as soon as possible, even if the netDb is large enough."""
        self._requested = True
        self._wakeup.set()

    def needs_reseed(self) -> bool:
        return self._requested or self.router_count() < self.threshold

    async def reseed_once(self) -> int:
        """One attempt: fetch, add to the netDb, record and log the outcome; returns RouterInfos accepted."""
        self._state = "reseeding"
        self._requested = False
        self.attempts += 1
        self.last_attempt_at = self.clock.time()
        try:
            result = await self.fetcher.fetch()
        finally:
            self._state = "idle"
        added = sum(1 for blob in result.router_infos if self.add_router_info(blob) is not None)
        self.last_added = added
        errors = [f"{o.url}: {o.error}" for o in result.outcomes if o.error]
        if added:
            self.last_success_at = self.clock.time()
            self.consecutive_failures = 0
            self.last_error = "; ".join(errors)
            log.info("reseed: %d RouterInfos accepted from %d of %d servers tried", added, result.servers_ok,
                     len(result.outcomes))
        else:
            self.consecutive_failures += 1
            self.last_error = "; ".join(errors) or ("no reseed servers" if not result.outcomes
                                                    else "no new RouterInfos accepted")
            if result.outcomes and not result.servers_ok:
                log.warning("reseed: none of the %d reseed servers could be reached; retrying in the background. "
                            "To join now, start with a reseed bundle: --reseed-file FILE (.su3 or .zip, e.g. made "
                            "by `pyi2p reseed make` on a router that runs)", len(result.outcomes))
                log.info("reseed: attempt %d: %s", self.attempts, self.last_error)
            else:
                log.warning("reseed: attempt %d got nothing: %s", self.attempts, self.last_error)
        return added

    async def _wait(self, seconds: float) -> None:
        """Sleep `seconds` or until request(); the sleep function is injected so tests run on a fake clock."""
        self._wakeup.clear()
        if self._requested:
            return
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waker = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    async def run(self) -> None:
        while True:
            if not self.needs_reseed():
                self.backoff.reset()
                self.next_attempt_at = None
                await self._wait(self.idle_check_s)
                continue
            try:
                await self.reseed_once()
            except ProtocolError as exc:             # a bug-free fetch never raises; keep the loop alive anyway
                self.consecutive_failures += 1
                self.last_error = str(exc)
                log.warning("reseed: attempt failed: %s", exc)
            if self.router_count() >= self.threshold:
                self.backoff.reset()
                continue
            delay = self.backoff.next_delay()
            self.next_attempt_at = self.clock.time() + delay
            self._state = "waiting"
            log.info("reseed: %d routers known, fewer than %d; next attempt in %.0f s", self.router_count(),
                     self.threshold, delay)
            await self._wait(delay)
            self._state = "idle"

