"""Prints a torrent download over I2P: pyi2p <- pyi2p against libtorrent <- libtorrent on the same routers.

Five pyi2p routers on loopback (floodfill, two relays, the seeding node, and the downloading node). The
downloading node runs in a child process of its own, so its CPU is measured apart: router + client,
from the moment the torrent is added until it is complete. pyi2p's TorrentService runs in-process on its
router; libtorrent 2.1 runs on that router's SAM bridge. Tunnels are 1 hop each way for both. The built-in
tracker (on the seeding node) introduces the peers in both runs.

Run: python benchmarks/bench_torrent.py [--mb 20] [--only pyi2p|libtorrent]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.network import InProcessNetwork  # noqa: E402
from apps.torrent import TorrentService  # noqa: E402
from apps.torrent.metainfo import Metainfo, create_torrent  # noqa: E402
from core.config import load_config  # noqa: E402
from core.data.routerinfo import RouterInfo  # noqa: E402
from core.router import Router  # noqa: E402
from tests.client.routers import SETTINGS, free_port, start_network  # noqa: E402

TUNNELS = {"inbound.length": 1, "outbound.length": 1, "inbound.quantity": 2, "outbound.quantity": 2}
TIMEOUT_S = 900


def make_router(folder: Path, name: str, *, floodfill: bool = False, sam: int = 0) -> Router:
    config = load_config(folder / name, {"netid": 42, "host": "127.0.0.1", "port": free_port(),
                                         "floodfill": floodfill, "control_port": 0, "sam_port": sam,
                                         "sam_udp_port": 0})
    return Router(config, tunnel_settings=SETTINGS)


def lt_session(sam_port: int):
    import libtorrent as lt
    return lt.session(lt.session_params({
        "i2p_hostname": "127.0.0.1", "i2p_port": sam_port, "proxy_type": lt.proxy_type_t.i2p_proxy,
        "allow_i2p_mixed": False, "i2p_inbound_length": 1, "i2p_outbound_length": 1,
        "i2p_inbound_quantity": 2, "i2p_outbound_quantity": 2,
        "listen_interfaces": f"127.0.0.1:{free_port()}", "enable_dht": False, "enable_lsd": False,
        "enable_upnp": False, "enable_natpmp": False, "alert_mask": 0}))


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# the downloading node (child process) ------------------------------------------------------------

async def child(mode: str, folder: Path) -> None:
    """Reads peers' RouterInfos and the torrent from stdin, prints its RouterInfo, downloads, prints figures."""
    loop = asyncio.get_running_loop()
    readline = lambda: loop.run_in_executor(None, sys.stdin.readline)  # noqa: E731
    sam = free_port() if mode == "libtorrent" else 0
    router = make_router(folder, "leech", sam=sam)
    await router.start()
    for _ in range(int(await readline())):
        router.netdb.add_router_info(RouterInfo.parse(base64.b64decode(await readline())))
    print(base64.b64encode(router.router_info.to_bytes()).decode(), flush=True)
    torrent = base64.b64decode(await readline())
    meta = Metainfo.parse(torrent)
    size = meta.info.total_length
    download = folder / "download"
    start_wall = time.monotonic()
    if mode == "pyi2p":
        service = TorrentService({"download_dir": str(download), **TUNNELS}, folder / "data",
                                 InProcessNetwork(router.client))
        await service.start()
        ready_wall, start_cpu = time.monotonic(), cpu_s()
        added = await service.add_torrent(meta)
        done = lambda: added.state == "seeding"  # noqa: E731
    else:
        import libtorrent as lt
        session = lt_session(sam)
        await asyncio.sleep(15)           # its SAM session and tunnels come up first, as pyi2p's do above
        params = lt.add_torrent_params()
        params.ti, params.save_path = lt.torrent_info(lt.bdecode(torrent)), str(download)
        ready_wall, start_cpu = time.monotonic(), cpu_s()
        handle = session.add_torrent(params)
        done = lambda: handle.status().is_seeding  # noqa: E731
    deadline = time.monotonic() + TIMEOUT_S
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    end_wall, end_cpu = time.monotonic(), cpu_s()
    print(json.dumps({"complete": done(), "bytes": size, "wall_s": end_wall - ready_wall,
                      "cpu_s": end_cpu - start_cpu, "startup_s": ready_wall - start_wall}), flush=True)
    if mode == "pyi2p":
        await service.stop()
    else:
        session.pause()
        del session
    await router.stop()


# the rest of the network and the seeder (this process) --------------------------------------------

async def run(mode: str, size: int, folder: Path) -> dict:
    ff = make_router(folder, "ff", floodfill=True)
    relays = [make_router(folder, f"relay{i}") for i in range(2)]
    seed_sam = free_port()
    seed_router = make_router(folder, "seed", sam=seed_sam)
    routers = [ff, *relays, seed_router]

    class Node:
        def __init__(self, router):
            self.router = router
    await start_network([Node(r) for r in routers])
    service = TorrentService({"tracker": True, "download_dir": str(folder / "seed"), **TUNNELS},
                             folder / "seeddata", InProcessNetwork(seed_router.client))
    await service.start()
    (folder / "seed").mkdir(exist_ok=True)
    payload = folder / "seed" / "payload.bin"
    payload.write_bytes(random.Random(7).randbytes(size))
    meta = create_torrent(payload, tracker=service.tracker_url)
    lt_seed = None
    if mode == "pyi2p":
        await service.add_torrent(meta)
    else:
        import libtorrent as lt
        lt_seed = lt_session(seed_sam)
        params = lt.add_torrent_params()
        params.ti, params.save_path = lt.torrent_info(lt.bdecode(meta.to_bytes())), str(folder / "seed")
        lt_seed.add_torrent(params)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", mode, "--folder", str(folder / "child"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        lines = [str(len(routers))] + [base64.b64encode(r.router_info.to_bytes()).decode() for r in routers]
        proc.stdin.write(("\n".join(lines) + "\n").encode())
        await proc.stdin.drain()
        theirs = RouterInfo.parse(base64.b64decode(await asyncio.wait_for(proc.stdout.readline(), 120)))
        for r in routers:
            r.netdb.add_router_info(theirs)
        proc.stdin.write(base64.b64encode(meta.to_bytes()) + b"\n")
        await proc.stdin.drain()
        result = json.loads(await asyncio.wait_for(proc.stdout.readline(), TIMEOUT_S + 300))
        await asyncio.wait_for(proc.wait(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if lt_seed is not None:
            lt_seed.pause()
            del lt_seed
        await service.stop()
        for r in reversed(routers):
            await r.stop()
    got = folder / "child" / "download" / "payload.bin"
    result["identical"] = got.exists() and got.read_bytes() == payload.read_bytes()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--only", choices=("pyi2p", "libtorrent"))
    parser.add_argument("--child", choices=("pyi2p", "libtorrent"))
    parser.add_argument("--folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.child:
        asyncio.run(child(args.child, Path(args.folder)))
        return
    size = int(args.mb * 1024 * 1024)
    print(f"torrent download over I2P, {args.mb:g} MB, 1-hop tunnels, 5 pyi2p routers on loopback; "
          f"downloading node in its own process (router + client CPU)")
    print(f"{'downloader <- seeder':<28} {'MB/s':>7} {'CPU s/MB':>9} {'wall s':>7}  complete identical")
    results = {}
    for mode in ([args.only] if args.only else ["pyi2p", "libtorrent"]):
        with tempfile.TemporaryDirectory(prefix=f"bench-torrent-{mode}-") as tmp:
            r = asyncio.run(run(mode, size, Path(tmp)))
        results[mode] = r
        mb = r["bytes"] / 1e6
        print(f"{mode + ' <- ' + mode:<28} {mb / r['wall_s']:7.2f} {r['cpu_s'] / mb:9.3f} {r['wall_s']:7.1f}  "
              f"{r['complete']!s:<8} {r['identical']}", flush=True)
    if len(results) == 2:
        p, lt_ = results["pyi2p"], results["libtorrent"]
        print(f"pyi2p/libtorrent speed {lt_['wall_s'] / p['wall_s']:.2f}x, "
              f"CPU per MB {p['cpu_s'] / lt_['cpu_s']:.2f}x of libtorrent's (downloading node)")


if __name__ == "__main__":
    main()
