"""BitTorrent over I2P: bencode, metainfo, peer wire, trackers, and the TorrentService that runs them."""
from .service import TorrentService

__all__ = ["TorrentService"]
