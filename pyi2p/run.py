"""`pyi2p run`: start a router in this process and keep it running until Ctrl-C or SIGTERM."""
from __future__ import annotations

import asyncio
import contextlib
import time
import logging
import signal
import sys

from core import eventloop
from core.config import load_config
from core.data.encoding import b64encode
from .node import Node


def add_router_options(parser) -> None:
    """The flags people and scripts start routers with; keep them stable."""
    parser.add_argument("--datadir", help="data folder (default ~/.pyi2p)")
    parser.add_argument("--host", help="address to bind and publish for NTCP2 and SSU2")
    parser.add_argument("--port", type=int,
                        help="NTCP2 (TCP) and SSU2 (UDP) port (default: chosen at first start and kept)")
    parser.add_argument("--netid", type=int, help="network id: 2 is the real network (default 2)")
    parser.add_argument("--reseed-file", help="reseed bundle read at start: .su3, zip of routerInfo-*.dat, or folder")
    parser.add_argument("--floodfill", action="store_true", default=None, help="act as a floodfill")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--control-port", type=int, help="I2PControl port on 127.0.0.1 (default 7650)")
    parser.add_argument("--sam-port", type=int, help="SAM v3 port on 127.0.0.1 (default 7656; 0: off)")
    parser.add_argument("--sam-udp-port", type=int,
                        help="SAM v3 datagram (UDP) port on 127.0.0.1 (default 7655; 0: datagrams on the socket only)")
    parser.add_argument("--no-ssu2", dest="ssu2", action="store_false", default=None,
                        help="NTCP2 only: no SSU2 (UDP) address or socket (config.toml: [ssu2] enabled = false)")


def config_from_args(args):
    overrides = {"host": args.host, "port": args.port, "netid": args.netid, "reseed_file": args.reseed_file,
                 "floodfill": args.floodfill, "log_level": args.log_level,
                 "control_port": args.control_port, "sam_port": args.sam_port,
                 "sam_udp_port": getattr(args, "sam_udp_port", None), "ssu2_enabled": getattr(args, "ssu2", None)}
    return load_config(args.datadir, overrides)


def sam_network(address: str):
    """The apps' port over a SAM v3 bridge at HOST:PORT (ours, i2pd's or Java's)."""
    from apps.network.sam import SamNetwork
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"pyi2p run: --sam wants HOST:PORT, not {address!r}")
    return SamNetwork(host, int(port))


async def run_node(config, *, sam: str | None = None, reload_config=None) -> int:
    """Run until Ctrl-C or SIGTERM; an I2PControl Restart stops the node and starts it again with
    config.toml re-read (`reload_config`)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    while True:
        node = Node(config, network=sam_network(sam) if sam else None)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(node.reload()))
        if not await start_unless_stopped(node, stop):
            print("pyi2p: stopped while starting", flush=True)
            await node.stop()
            return 0
        if node.router is not None:
            print(f"pyi2p router {b64encode(node.router.hash)} running (netid {config.netid}, "
                  f"data in {config.datadir})", flush=True)
        else:
            print(f"pyi2p apps running over the SAM bridge at {sam} (data in {config.datadir})", flush=True)
        for what, where in node.listening():
            print(f"  {what:<16} {where}", flush=True)
        try:
            waits = {asyncio.create_task(stop.wait())}
            if node.router is not None:
                waits.add(asyncio.create_task(node.router.wait_stop_requested()))
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
        finally:
            print("pyi2p: stopping", flush=True)
            await node.stop()
        restart = node.router is not None and node.router.restart_requested and not stop.is_set()
        if not restart or reload_config is None:
            return 0
        print("pyi2p: restarting", flush=True)
        config = reload_config()


async def start_unless_stopped(node: Node, stop: asyncio.Event) -> bool:
    """Start the node unless told to stop first (an app's start can take a while: SIGTERM still ends it)."""
    starting = asyncio.create_task(node.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if starting.done():
        starting.result()
        return True
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    return False


class RepeatFilter(logging.Filter):
    """Lets a message through at most once per `interval_s` (with the count suppressed meanwhile): asyncio
    logs "socket.accept() out of system resource" on every loop turn while file descriptors run out."""

    def __init__(self, prefixes: tuple[str, ...], interval_s: float = 10.0, clock=None):
        super().__init__()
        self.prefixes = prefixes
        self.interval_s = interval_s
        self.clock = clock or time.monotonic
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        prefix = next((p for p in self.prefixes if message.startswith(p)), None)
        if prefix is None:
            return True
        now = self.clock()
        if now - self._last.get(prefix, float("-inf")) < self.interval_s:
            self._suppressed[prefix] = self._suppressed.get(prefix, 0) + 1
            return False
        self._last[prefix] = now
        skipped = self._suppressed.pop(prefix, 0)
        if skipped:
            record.msg = f"{record.msg} ({skipped} more like it suppressed)"
        record.exc_info = None            # the same traceback each time says nothing new
        return True


NOISY_ASYNCIO = ("socket.accept() out of system resource",)


def cmd_run(args) -> int:
    if args.apps_only and not args.sam:
        print("pyi2p run: --apps-only needs --sam HOST:PORT (the SAM bridge of the router to use)", file=sys.stderr)
        return 2
    config = config_from_args(args)
    logging.basicConfig(level=getattr(logging, config.log_level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncio").addFilter(RepeatFilter(NOISY_ASYNCIO))
    return eventloop.run(run_node(config, sam=args.sam if args.apps_only else None,
                                  reload_config=lambda: config_from_args(args)))


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("run", help="start the node: the router and its apps (creates its identity on first start)")
    add_router_options(p)
    p.add_argument("--apps-only", action="store_true",
                   help="run the apps without a router of our own, over the SAM bridge given by --sam")
    p.add_argument("--sam", metavar="HOST:PORT", help="with --apps-only: the SAM v3 bridge to use (e.g. 127.0.0.1:7656)")
    p.set_defaults(func=cmd_run)
