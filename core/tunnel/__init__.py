"""Tunnels: ECIES build records, layer encryption, fragmentation, transit hops, our own tunnel ends, pools."""
from .build import (BuildRecordDecryptor, BuildRequest, BuildRequestRecord, BuildResult, BuildStatus,
                    PendingBuild, ShortBuildReplyRecord, ShortBuildRequestRecord, BuildReplyRecord, create_build)
from .crypto import CreatorLayers, LayerCipher
from .endpoints import InboundTunnel, OutboundTunnel
from .events import DeliverLocally, SendBuildReply, SendToRouter, SendToTunnel, TunnelEvent
from .fragment import (TunnelDelivery, TunnelDeliveryType, TunnelFragmenter, TunnelMessage, TunnelReassembler,
                       max_message_size)
from .participant import TransitManager, TransitPolicy, TransitRole
from .pool import Candidate, PeerTiers, PoolConfig, TunnelPool

__all__ = [
    "BuildRecordDecryptor", "BuildRequest", "BuildRequestRecord", "BuildResult", "BuildStatus", "PendingBuild",
    "ShortBuildReplyRecord", "ShortBuildRequestRecord", "BuildReplyRecord", "create_build",
    "CreatorLayers", "LayerCipher", "InboundTunnel", "OutboundTunnel",
    "DeliverLocally", "SendBuildReply", "SendToRouter", "SendToTunnel", "TunnelEvent",
    "TunnelDelivery", "TunnelDeliveryType", "TunnelFragmenter", "TunnelMessage", "TunnelReassembler",
    "max_message_size", "TransitManager", "TransitPolicy", "TransitRole",
    "Candidate", "PeerTiers", "PoolConfig", "TunnelPool",
]
