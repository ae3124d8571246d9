"""`pyi2p status`: a running router's state, read over I2PControl with the password in DATADIR/control.json."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from core.control.client import ControlClient, ControlClientError, ControlRpcError
from core.control.config import ControlConfigError, control_path, read_control_config
from core.control.methods import ROUTER_INFO_KEYS

DEFAULT_DATADIR = "~/.pyi2p"
EXIT_NO_ROUTER = 1
EXIT_REFUSED = 2


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("status", help="show a running router's state (over I2PControl)",
                                   description="Show a running router's state, read over I2PControl.")
    parser.add_argument("--datadir", default=DEFAULT_DATADIR, help="router data folder (default ~/.pyi2p)")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    parser.set_defaults(func=run_status)
    return parser


def collect_status(client: ControlClient) -> dict[str, Any]:
    router_info = client.call("RouterInfo", {key: None for key in ROUTER_INFO_KEYS})
    summary = client.call("pyi2p.Summary")
    peers = client.call("pyi2p.Peers").get("Peers", [])
    tunnels = client.call("pyi2p.Tunnels")
    destinations = client.call("pyi2p.Destinations").get("Destinations", [])
    try:
        services = client.call("pyi2p.Services.List").get("Services", [])
    except ControlRpcError:
        services = []     # a router run without the node's apps
    return {"RouterInfo": router_info, "Summary": summary, "Peers": peers,
            "Tunnels": tunnels.get("Tunnels", []), "Destinations": destinations, "Services": services}


def run_status(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    datadir = Path(args.datadir).expanduser()
    try:
        config = read_control_config(datadir)
    except ControlConfigError as exc:
        if not control_path(datadir).exists():
            print(f"pyi2p status: no router found: {control_path(datadir)} does not exist "
                  f"(start one with `pyi2p run`)", file=err)
        else:
            print(f"pyi2p status: {exc}", file=err)
        return EXIT_NO_ROUTER
    client = ControlClient.from_config(config)
    try:
        status = collect_status(client)
    except ControlRpcError as exc:
        print(f"pyi2p status: the router at {client.url} refused: {exc}", file=err)
        return EXIT_REFUSED
    except ControlClientError as exc:
        print(f"pyi2p status: {exc}", file=err)
        return EXIT_NO_ROUTER
    except (AttributeError, TypeError, KeyError):
        print(f"pyi2p status: {client.url} answered in an unexpected shape", file=err)
        return EXIT_REFUSED
    if args.json:
        json.dump(status, out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        try:
            out.write(format_status(status))
        except (AttributeError, TypeError, KeyError, ValueError):
            print(f"pyi2p status: {client.url} answered in an unexpected shape", file=err)
            return EXIT_REFUSED
    return 0


def format_duration(ms: float) -> str:
    seconds = max(0, int(ms // 1000))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {seconds:02d}s"
    return f"{minutes}m {seconds:02d}s"


def format_rate(bytes_per_s: float) -> str:
    if bytes_per_s >= 1024 * 1024:
        return f"{bytes_per_s / (1024 * 1024):.1f} MiB/s"
    if bytes_per_s >= 1024:
        return f"{bytes_per_s / 1024:.1f} KiB/s"
    return f"{bytes_per_s:.0f} B/s"


def format_status(status: dict[str, Any]) -> str:
    s = status["Summary"]
    peers = s.get("Peers", {})
    bw = s.get("Bandwidth", {})
    ours = s.get("OurTunnels", {})
    lines = [
        f"Router      {s['RouterHash']}",
        f"Version     {s['Version']}    up {format_duration(s['Uptime'])}",
        f"Status      {s['Status']}; network {s['NetStatusName']}" + ("; reseeding" if s.get("IsReseeding") else ""),
        f"NetDb       {s['KnownRouters']} routers ({s['Floodfills']} floodfills), {s['LeaseSets']} leasesets",
        f"Peers       {peers.get('NTCP2', 0)} NTCP2, {peers.get('SSU2', 0)} SSU2, {s['ActivePeers']} active",
        f"Bandwidth   in {format_rate(bw.get('Inbound15s', 0))}, out {format_rate(bw.get('Outbound15s', 0))} (15 s)",
        f"Tunnels     {sum(ours.values())} ours ({', '.join(f'{n} {state}' for state, n in ours.items()) or 'none'}), "
        f"{s['ParticipatingTunnels']} transit, build success {s['BuildSuccessRatio'] * 100:.0f}%",
    ]
    for tunnel in status.get("Tunnels", []):
        hops = " > ".join(h[:6] for h in tunnel["Hops"]) or "(zero hop)"
        lines.append(f"  {tunnel['Direction']:<8} {tunnel['State']:<11} {tunnel['Pool']:<16} {hops}")
    destinations = status.get("Destinations", [])
    lines.append(f"Clients     {len(destinations)} destination(s)")
    for destination in destinations:
        lines.append(f"  {destination['Name'] or '-':<16} {destination['B32']}")
    ntcp2 = s.get("NTCP2", {})
    if ntcp2.get("Port"):
        lines.append(f"NTCP2       {ntcp2.get('Host') or '*'}:{ntcp2['Port']}")
    services = status.get("Services", [])
    if services:
        lines.append("Services")
    for service in services:
        lines.append(f"  {service.get('name', '?'):<10} {service.get('state', '?'):<9} {_service_detail(service)}")
    return "\n".join(lines) + "\n"


def _service_detail(service: dict[str, Any]) -> str:
    """Where a service listens and its b32, or why it is not running."""
    if service.get("error"):
        return str(service["error"])
    listen = service.get("listen")
    if isinstance(listen, dict):
        where = ", ".join(f"{what} {address}" for what, address in listen.items())
    elif isinstance(listen, (list, tuple)):
        where = ", ".join(str(address) for address in listen)
    else:
        where = str(listen or "")
    b32 = service.get("b32")
    return "  ".join(part for part in (where, str(b32) if b32 else "") if part)
