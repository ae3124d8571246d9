"""I2PTunnel: client, server, HTTP server, IRC and UDP tunnels from i2pd's tunnels.conf format."""
from .config import TunnelConfig, TunnelsConfig, load_tunnels, parse_tunnels
from .service import TunnelsService

__all__ = ["TunnelConfig", "TunnelsConfig", "TunnelsService", "load_tunnels", "parse_tunnels"]
