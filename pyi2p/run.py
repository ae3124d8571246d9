"""`pyi2p run`: start a router in this process and keep it running until Ctrl-C or SIGTERM."""
from __future__ import annotations

import asyncio
import logging
import signal
import sys

from core.config import load_config
from core.data.encoding import b64encode
from core.router import Router


def add_router_options(parser) -> None:
    """The flags people and scripts start routers with; keep them stable."""
    parser.add_argument("--datadir", help="data folder (default ~/.pyi2p)")
    parser.add_argument("--host", help="address to bind and publish for NTCP2")
    parser.add_argument("--port", type=int, help="NTCP2 port (default: chosen at first start and kept)")
    parser.add_argument("--netid", type=int, help="network id: 2 is the real network (default 2)")
    parser.add_argument("--reseed-file", help="reseed bundle read at start: .su3, zip of routerInfo-*.dat, or folder")
    parser.add_argument("--floodfill", action="store_true", default=None, help="act as a floodfill")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--control-port", type=int, help="I2PControl port on 127.0.0.1 (default 7650)")
    parser.add_argument("--sam-port", type=int, help="SAM v3 port on 127.0.0.1 (default 7656; 0: off)")


def config_from_args(args):
    overrides = {"host": args.host, "port": args.port, "netid": args.netid, "reseed_file": args.reseed_file,
                 "floodfill": args.floodfill, "log_level": args.log_level,
                 "control_port": args.control_port, "sam_port": args.sam_port}
    return load_config(args.datadir, overrides)


async def run_router(config) -> int:
    router = Router(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await router.start()
    print(f"pyi2p router {b64encode(router.hash)} running (netid {config.netid}, data in {config.datadir})",
          flush=True)
    try:
        stopper = asyncio.create_task(router.wait_stop_requested())
        signalled = asyncio.create_task(stop.wait())
        await asyncio.wait({stopper, signalled}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        signalled.cancel()
    finally:
        print("pyi2p: stopping", flush=True)
        await router.stop()
    return 0


def cmd_run(args) -> int:
    config = config_from_args(args)
    logging.basicConfig(level=getattr(logging, config.log_level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run_router(config))


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("run", help="start the router (creates its identity on first start)")
    add_router_options(p)
    p.set_defaults(func=cmd_run)
