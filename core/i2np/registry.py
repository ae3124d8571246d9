"""Type code -> typed message class, and parse_message for bodies arriving off the wire."""
from __future__ import annotations

from typing import Any

from ..data.errors import ParseError
from .build import (OutboundTunnelBuildReply, ShortTunnelBuild, TunnelBuild, TunnelBuildReply, VariableTunnelBuild,
                    VariableTunnelBuildReply)
from .header import I2NPMessage
from .messages import (Data, DatabaseLookup, DatabaseSearchReply, DatabaseStore, DeliveryStatus, Garlic, TunnelData,
                       TunnelGateway)

MESSAGE_CLASSES: dict[int, Any] = {cls.TYPE: cls for cls in (
    DatabaseStore, DatabaseLookup, DatabaseSearchReply, DeliveryStatus, Garlic, TunnelData, TunnelGateway, Data,
    TunnelBuild, TunnelBuildReply, VariableTunnelBuild, VariableTunnelBuildReply, ShortTunnelBuild,
    OutboundTunnelBuildReply,
)}

TypedMessage = (DatabaseStore | DatabaseLookup | DatabaseSearchReply | DeliveryStatus | Garlic | TunnelData
                | TunnelGateway | Data | TunnelBuild | TunnelBuildReply | VariableTunnelBuild
                | VariableTunnelBuildReply | ShortTunnelBuild | OutboundTunnelBuildReply)


def parse_message(msg_type: int, body: bytes) -> TypedMessage:
    """The typed message for a body; ParseError for unknown types (callers drop those) and malformed bodies."""
    cls = MESSAGE_CLASSES.get(msg_type)
    if cls is None:
        raise ParseError(f"unknown I2NP message type {msg_type}", structure="I2NPMessage", offset=0)
    return cls.parse(body)


def parse_payload(msg: I2NPMessage) -> TypedMessage:
    """The typed body of an enveloped message."""
    return parse_message(msg.type, msg.body)
