"""Datagram formats for I2CP protocols 17-20 (datagrams.rst)."""
from .datagrams import (DATAGRAM_CLASSES, PROTO_DATAGRAM, PROTO_DATAGRAM2, PROTO_DATAGRAM3, PROTO_RAW,
                        PROTO_STREAMING, Datagram1, Datagram2, Datagram3, RawDatagram, parse_datagram)

__all__ = ["DATAGRAM_CLASSES", "PROTO_DATAGRAM", "PROTO_DATAGRAM2", "PROTO_DATAGRAM3", "PROTO_RAW", "PROTO_STREAMING",
           "Datagram1", "Datagram2", "Datagram3", "RawDatagram", "parse_datagram"]
