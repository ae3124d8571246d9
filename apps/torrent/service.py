"""TorrentService: BitTorrent over I2P, with an optional built-in open tracker.

DATADIR/torrent/ holds the peer destination's keys (torrent.keys), the tracker's (tracker.keys),
the torrents (torrents/<info-hash>.torrent, or .magnet until the metadata is known) and their
resume data (resume/<info-hash>.resume). Downloads go to `download_dir`.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any, Mapping

from apps.network import NetworkError
from apps.service import ServiceError
from core.clock import SystemClock
from core.data.errors import ProtocolError
from core.data.identity import Destination
from core.data.privatekeys import PrivateKeys
from core.fsutil import atomic_write, atomic_write_text

from .bencode import bdecode, bencode
from .dht import Dht
from .engine import Engine, Torrent
from .metainfo import MAX_METAINFO_BYTES, MagnetLink, Metainfo, magnet_of
from .tracker import OpenTracker, serve_tracker_stream

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "download_dir": "",             # "" = DATADIR/torrent/downloads
    "tracker": False,               # run the built-in open tracker
    "tracker_interval": 600,        # seconds between announces the tracker asks for
    "upload_limit": 0,              # KiB/s over all torrents, 0 = unlimited
    "download_limit": 0,
    "torrent_upload_limit": 0,      # KiB/s per torrent
    "torrent_download_limit": 0,
    "seed_ratio": 0.0,              # stop seeding at this upload/size ratio (0 = never)
    "seed_time": 0,                 # minutes of seeding before stopping (0 = never)
    "max_torrents": 100,
    "dht": True,                    # the I2P DHT (magnets without a tracker)
    "dht_port": 0,                  # query port (the response port is +1); 0 = chosen once and kept
    "dht_bootstrap": [],            # "<b32, Base64 or name>:<port>" of DHT nodes to start from
}
DHT_FILE = "dht.dat"
PEER_ID_PREFIX = b"-PY0100-"
MAX_ADD_BYTES = MAX_METAINFO_BYTES


def _validated(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    values = dict(DEFAULTS)
    options: dict[str, str] = {}
    for key, value in config.items():
        if key.startswith(("inbound.", "outbound.", "i2cp.")):
            options[key] = str(value)
            continue
        if key not in DEFAULTS:
            log.warning("[torrent] unknown key %r ignored", key)
            continue
        default = DEFAULTS[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, list):
            ok = isinstance(value, list) and all(isinstance(v, str) and ":" in v for v in value)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        else:
            ok = isinstance(value, str)
        if not ok:
            wanted = 'a list of "address:port" strings' if isinstance(default, list) else \
                f"a {type(default).__name__}" + (" >= 0" if isinstance(default, (int, float))
                                                 and not isinstance(default, bool) else "")
            raise ServiceError(f"[torrent] {key} = {value!r}: expected {wanted}")
        values[key] = value
    return values, options


class TorrentService:
    name = "torrent"

    def __init__(self, config: Mapping[str, Any], datadir: Path, network, **deps: Any):
        self.settings, self.options = _validated(config)
        self.datadir = Path(datadir)
        self.folder = self.datadir / "torrent"
        self.download_dir = Path(self.settings["download_dir"]).expanduser() if self.settings["download_dir"] \
            else self.folder / "downloads"
        self.network = network
        self.clock = deps.get("clock") or SystemClock()
        self.rng: random.Random = deps.get("rng") or random.Random()
        self.session = None
        self.tracker_session = None
        self.tracker: OpenTracker | None = None
        self.engine: Engine | None = None
        self.dht: Dht | None = None
        self._bootstrap: asyncio.Task | None = None
        self.state = "stopped"
        self.error: str | None = None

    # lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            for sub in ("torrents", "resume"):
                (self.folder / sub).mkdir(parents=True, exist_ok=True)
            self.download_dir.mkdir(parents=True, exist_ok=True)
            keys = self._keys("torrent.keys")
            self.session = await self.network.open_session(keys, self.options, name="torrent")
            if self.settings["tracker"]:
                self.tracker = OpenTracker(interval=self.settings["tracker_interval"])
                self.tracker_session = await self.network.open_session(self._keys("tracker.keys"), self.options,
                                                                       name="tracker")
                await self.tracker_session.serve(self._serve_tracker, port=0)
        except (OSError, NetworkError, ProtocolError, ServiceError) as exc:
            if isinstance(exc, OSError):
                self.error = f"{exc.filename or self.folder}: {exc.strerror or exc}"
            else:
                self.error = str(exc) if isinstance(exc, ServiceError) else f"I2P session: {exc}"
            self.state = "failed"
            await self._close_sessions()
            raise ServiceError(self.error) from None
        peer_id = PEER_ID_PREFIX + bytes(self.rng.getrandbits(8) for _ in range(12))
        kib = 1024
        self.engine = Engine(self.session, now=self.clock.monotonic, rng=self.rng, peer_id=peer_id,
                             up_limit=self.settings["upload_limit"] * kib,
                             down_limit=self.settings["download_limit"] * kib)
        self.engine.on_metadata = self._metadata_received
        if self.settings["dht"]:
            self._start_dht()
        await self.session.serve(self.engine.handle_stream, port=0)
        self.state, self.error = "running", None
        for path in sorted((self.folder / "torrents").iterdir()):
            try:
                if path.suffix == ".torrent":
                    await self._add(Metainfo.parse(path.read_bytes()), None, save=False)
                elif path.suffix == ".magnet":
                    await self._add(None, MagnetLink.parse(path.read_text().strip()), save=False)
            except (ProtocolError, OSError, ServiceError) as exc:
                log.warning("%s: not loaded: %s", path, exc)

    def _start_dht(self) -> None:
        saved: dict = {}
        try:
            loaded = bdecode((self.folder / DHT_FILE).read_bytes())
            saved = loaded if isinstance(loaded, dict) else {}
        except (OSError, ProtocolError):
            pass
        port = self.settings["dht_port"] or saved.get(b"port")
        if not isinstance(port, int) or not 1 <= port < 65535:
            port = 6891 + self.rng.randrange(65535 - 20 - 6881)        # i2psnark's range
        self.dht = Dht(self.session, port, now=self.clock.monotonic, rng=self.rng)
        self.dht.start()
        self.engine.dht = self.dht
        contacts: list[tuple[Any, int]] = []
        for entry in saved.get(b"nodes", [])[:100] if isinstance(saved.get(b"nodes"), list) else []:
            try:
                contacts.append((Destination.parse(entry[b"dest"]), int(entry[b"port"])))
            except (ProtocolError, KeyError, TypeError, ValueError):
                continue
        for text in self.settings["dht_bootstrap"]:
            address, _, port_text = text.rpartition(":")
            try:
                contacts.append((address, int(port_text)))
            except ValueError:
                log.warning("[torrent] dht_bootstrap %r: not address:port", text)
        self._bootstrap = asyncio.get_running_loop().create_task(self._dht_bootstrap(contacts))

    async def _dht_bootstrap(self, contacts: list[tuple[Any, int]]) -> None:
        async def one(address, port: int) -> None:
            try:
                destination = address if isinstance(address, Destination) else await self.session.resolve(address)
                await self.dht.ping(destination, port)
            except (NetworkError, ProtocolError, OSError, asyncio.TimeoutError) as exc:
                log.info("DHT bootstrap %s: %s", str(address)[:60], exc)
        await asyncio.gather(*(one(a, p) for a, p in contacts))
        if self.dht.state.nodes:
            await self.dht.get_peers(self.dht.state.node_id)      # fill the table around us

    def _save_dht(self) -> None:
        if self.dht is not None:
            atomic_write(self.folder / DHT_FILE, bencode({b"port": self.dht.port, b"nodes": self.dht.export_nodes()}))

    def _keys(self, file: str) -> PrivateKeys:
        path = self.folder / file
        if path.exists():
            try:
                return PrivateKeys.load(path)
            except ProtocolError as exc:
                raise ServiceError(f"{path}: {exc}") from None
        keys = PrivateKeys.generate()
        keys.save(path)
        return keys

    async def stop(self) -> None:
        if self.engine is not None:
            await asyncio.gather(*(t.stop() for t in self.engine.torrents.values()), return_exceptions=True)
            for task in [*self.engine.tasks, *([self._bootstrap] if self._bootstrap else [])]:
                task.cancel()
        if self.dht is not None:
            try:
                self._save_dht()
            except OSError as exc:
                log.warning("%s: %s", self.folder / DHT_FILE, exc)
            self.dht.stop()
            self.dht = None
        self._bootstrap = None
        await self._close_sessions()
        self.state = "stopped"

    async def _close_sessions(self) -> None:
        for session in (self.tracker_session, self.session):
            if session is not None:
                await session.close()
        self.session = self.tracker_session = None

    async def _serve_tracker(self, stream) -> None:
        await serve_tracker_stream(self.tracker, stream, self.clock.time)

    # torrents -------------------------------------------------------------------------------------
    @property
    def tracker_url(self) -> str | None:
        return f"http://{self.tracker_session.b32}/announce" if self.tracker_session is not None else None

    async def add_torrent(self, meta: Metainfo | None = None, magnet: MagnetLink | None = None, *,
                          download_dir: Path | None = None, paused: bool = False,
                          upload_limit: int | None = None, download_limit: int | None = None) -> Torrent:
        """Limits in KiB/s (0 = none); None: the [torrent] torrent_*_limit defaults."""
        return await self._add(meta, magnet, save=True, download_dir=download_dir, paused=paused,
                               limits=(upload_limit, download_limit))

    async def _add(self, meta: Metainfo | None, magnet: MagnetLink | None, *, save: bool,
                   download_dir: Path | None = None, paused: bool = False,
                   limits: tuple[int | None, int | None] = (None, None)) -> Torrent:
        if self.engine is None:
            raise ServiceError("the torrent service is not running")
        info_hash = meta.info_hash if meta else magnet.info_hash
        if info_hash in self.engine.torrents:
            raise ServiceError(f"torrent {info_hash.hex()} is already added")
        if len(self.engine.torrents) >= self.settings["max_torrents"]:
            raise ServiceError(f"[torrent] max_torrents = {self.settings['max_torrents']} reached")
        kib = 1024
        torrent = Torrent(self.engine, info_hash, meta=meta, name=magnet.name if magnet else None,
                          trackers=list(magnet.trackers) if magnet else None,
                          download_dir=download_dir or self.download_dir,
                          resume_path=self.folder / "resume" / f"{info_hash.hex()}.resume",
                          up_limit=(self.settings["torrent_upload_limit"] if limits[0] is None else limits[0]) * kib,
                          down_limit=(self.settings["torrent_download_limit"] if limits[1] is None
                                      else limits[1]) * kib,
                          seed_ratio=float(self.settings["seed_ratio"]), seed_time=self.settings["seed_time"] * 60)
        torrent.limits_set = limits != (None, None)
        if save:
            if meta is not None:
                atomic_write(self.folder / "torrents" / f"{info_hash.hex()}.torrent", meta.to_bytes())
            else:
                atomic_write_text(self.folder / "torrents" / f"{info_hash.hex()}.magnet", magnet.to_str() + "\n")
        self.engine.torrents[info_hash] = torrent
        if meta is not None and not save:
            saved = torrent.resume.load(meta.info)
            paused = paused or bool(saved and saved["paused"])
        if paused:
            torrent.paused, torrent.state = True, "paused"
        else:
            await torrent.start()
        return torrent

    def _metadata_received(self, torrent: Torrent) -> None:
        folder = self.folder / "torrents"
        atomic_write(folder / f"{torrent.info_hash.hex()}.torrent", torrent.meta.to_bytes())
        try:
            os.unlink(folder / f"{torrent.info_hash.hex()}.magnet")
        except FileNotFoundError:
            pass

    def find(self, ref: str) -> Torrent:
        """A torrent by info-hash (hex, or a unique prefix of it) or exact name."""
        if self.engine is None:
            raise ServiceError("the torrent service is not running")
        ref = (ref or "").strip().lower()
        matches = [t for h, t in self.engine.torrents.items()
                   if (len(ref) >= 4 and h.hex().startswith(ref)) or t.name.lower() == ref]
        if len(matches) != 1:
            raise ValueError(f"{ref!r} names {'no' if not matches else 'more than one'} torrent")
        return matches[0]

    async def remove(self, torrent: Torrent, *, delete_files: bool = False) -> None:
        await torrent.stop()
        self.engine.torrents.pop(torrent.info_hash, None)
        for suffix in (".torrent", ".magnet"):
            try:
                os.unlink(self.folder / "torrents" / f"{torrent.info_hash.hex()}{suffix}")
            except FileNotFoundError:
                pass
        torrent.resume.remove()
        if delete_files and torrent.storage is not None:
            info = torrent.info
            top = torrent.download_dir / info.name
            if info.multi_file:
                await asyncio.to_thread(shutil.rmtree, top, True)
            else:
                try:
                    os.unlink(top)
                except FileNotFoundError:
                    pass

    # control methods ------------------------------------------------------------------------------
    def control_methods(self) -> dict[str, Any]:
        return {"Add": self._rpc_add, "List": self._rpc_list, "Pause": self._rpc_pause,
                "Resume": self._rpc_resume, "Remove": self._rpc_remove, "Peers": self._rpc_peers}

    async def _rpc_add(self, params: Mapping[str, Any]) -> dict[str, Any]:
        meta = magnet = None
        if isinstance(params.get("magnet"), str):
            try:
                magnet = MagnetLink.parse(params["magnet"])
            except ProtocolError as exc:
                raise ValueError(str(exc)) from None
        elif isinstance(params.get("torrent"), str):
            text = params["torrent"]
            if len(text) > MAX_ADD_BYTES * 4 // 3 + 4:
                raise ValueError(f"torrent over {MAX_ADD_BYTES} bytes refused")
            try:
                meta = Metainfo.parse(base64.b64decode(text, validate=True))
            except (ProtocolError, ValueError) as exc:
                raise ValueError(f"not a torrent: {exc}") from None
        else:
            raise ValueError("give 'torrent' (Base64 of a .torrent file) or 'magnet'")
        download_dir = params.get("download_dir")
        limits = [params.get(key) for key in ("upload_limit", "download_limit")]
        if any(v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0) for v in limits):
            raise ValueError("upload_limit and download_limit are KiB/s, integers >= 0")
        try:
            torrent = await self.add_torrent(meta, magnet, paused=bool(params.get("paused")),
                                             download_dir=Path(download_dir).expanduser() if download_dir else None,
                                             upload_limit=limits[0], download_limit=limits[1])
        except ServiceError as exc:
            raise ValueError(str(exc)) from None
        return torrent.status()

    def _rpc_list(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"torrents": [t.status() for t in self.engine.torrents.values()] if self.engine else []}

    async def _rpc_pause(self, params: Mapping[str, Any]) -> dict[str, Any]:
        torrent = self.find(str(params.get("torrent", "")))
        await torrent.pause()
        return torrent.status()

    async def _rpc_resume(self, params: Mapping[str, Any]) -> dict[str, Any]:
        torrent = self.find(str(params.get("torrent", "")))
        if torrent.paused or torrent.state in ("stopped", "finished", "error"):
            torrent.paused = False
            torrent.save_resume(force=True)
            await torrent.start()
        return torrent.status()

    async def _rpc_remove(self, params: Mapping[str, Any]) -> dict[str, Any]:
        torrent = self.find(str(params.get("torrent", "")))
        await self.remove(torrent, delete_files=bool(params.get("delete_files")))
        return {"removed": torrent.info_hash.hex()}

    def _rpc_peers(self, params: Mapping[str, Any]) -> dict[str, Any]:
        torrent = self.find(str(params.get("torrent", "")))
        return {"info_hash": torrent.info_hash.hex(), "peers": [p.info_dict() for p in torrent.peers.values()]}

    # status ---------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state}
        if self.error:
            out["error"] = self.error
        if self.session is not None:
            out["b32"] = self.session.b32
        if self.engine is not None:
            torrents = list(self.engine.torrents.values())
            out["torrents"] = len(torrents)
            out["downloading"] = sum(1 for t in torrents if t.state == "downloading")
            out["seeding"] = sum(1 for t in torrents if t.state == "seeding")
            out["down_rate"] = round(sum(t.meter_down.rate() for t in torrents))
            out["up_rate"] = round(sum(t.meter_up.rate() for t in torrents))
            out["peers"] = sum(len(t.peers) for t in torrents)
        if self.tracker is not None and self.tracker_session is not None:
            out["tracker"] = {"b32": self.tracker_session.b32, "url": self.tracker_url,
                              "torrents": len(self.tracker.swarms), "announces": self.tracker.announces,
                              "scrapes": self.tracker.scrapes}
        if self.dht is not None:
            out["dht"] = self.dht.status()
        if self.session is not None:
            # what the node prints as listening: the peers' destination and the tracker's announce URL
            out["listen"] = {"peers": self.session.b32, **({"tracker": self.tracker_url} if self.tracker_url else {})}
        out["download_dir"] = str(self.download_dir)
        return out


def magnet_link(meta: Metainfo) -> str:
    return magnet_of(meta).to_str()
