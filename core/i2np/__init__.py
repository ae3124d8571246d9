"""I2NP message codecs (i2np.rst): header forms, typed messages, build containers, garlic cloves."""
from .build import (MAX_RECORDS, RECORD_SIZE, SHORT_RECORD_SIZE, OutboundTunnelBuildReply, ShortTunnelBuild,
                    TunnelBuild, TunnelBuildReply, VariableTunnelBuild, VariableTunnelBuildReply)
from .garlic import (DeliveryType, GarlicClove, GarlicCloveBlock, GarlicCloveDeliveryInstructions, GarlicCloveSet)
from .header import (SHORT_HEADER_SIZE, STANDARD_HEADER_SIZE, I2NPMessage, MessageType, RawI2NP, checksum,
                     decode_short, decode_standard, encode_short, encode_standard, read_short, read_standard)
from .messages import (MAX_ROUTER_INFO_SIZE, Data, DatabaseLookup, DatabaseSearchReply, DatabaseStore, DeliveryStatus,
                       Garlic, LookupType, ReplyEncryption, StoreType, TunnelData, TunnelGateway,
                       compress_router_info, decompress_router_info)
from .registry import MESSAGE_CLASSES, TypedMessage, parse_message, parse_payload

__all__ = [
    "MAX_RECORDS", "RECORD_SIZE", "SHORT_RECORD_SIZE", "OutboundTunnelBuildReply", "ShortTunnelBuild", "TunnelBuild",
    "TunnelBuildReply", "VariableTunnelBuild", "VariableTunnelBuildReply",
    "DeliveryType", "GarlicClove", "GarlicCloveBlock", "GarlicCloveDeliveryInstructions", "GarlicCloveSet",
    "SHORT_HEADER_SIZE", "STANDARD_HEADER_SIZE", "I2NPMessage", "MessageType", "RawI2NP", "checksum",
    "decode_short", "decode_standard", "encode_short", "encode_standard", "read_short", "read_standard",
    "MAX_ROUTER_INFO_SIZE", "Data", "DatabaseLookup", "DatabaseSearchReply", "DatabaseStore", "DeliveryStatus",
    "Garlic", "LookupType", "ReplyEncryption", "StoreType", "TunnelData", "TunnelGateway", "compress_router_info",
    "decompress_router_info",
    "MESSAGE_CLASSES", "TypedMessage", "parse_message", "parse_payload",
]
