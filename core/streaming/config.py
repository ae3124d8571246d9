"""Streaming options (streaming-api.md "Options and Defaults", "Other Parameters"); times in seconds."""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MTU = 1730
RATCHET_MTU = 1812
MIN_MESSAGE_SIZE = 512
PROFILE_BULK = 1
PROFILE_INTERACTIVE = 2


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Per-connection behaviour; names follow the i2p.streaming.* options."""

    max_message_size: int = DEFAULT_MTU
    initial_window_size: int = 6
    min_window_size: int = 1
    max_window_size: int = 256
    """Java and older i2pd stop at 128; more (up to the 255 NACKs a packet can carry) keeps a busy path full, and a
    far end whose buffer is smaller chokes, which halves our window (streaming-api.md "Transmit/Receive Windows")."""
    slow_start_growth_rate_factor: int = 1
    congestion_avoidance_growth_rate_factor: int = 1
    initial_rto: float = 9.0
    min_rto: float = 0.1
    max_rto: float = 45.0
    max_timeout_backoff: float = 9.0
    """A timed-out packet's backoff doubles the RTO up to this (or the RTO estimate, if longer), not max_rto: the
    link sends it another way (path_failed), and a path that broke (a hop restarted) is usually mended by the
    next try, which must not wait tens of seconds (i2pd drops to its initial RTO on a path change). 0: max_rto."""
    max_rtt: float = 60.0
    max_resends: int = 8
    fast_retransmit_nacks: int = 2
    initial_ack_delay: float = 0.75
    max_requested_delay: float = 2.0
    """Peer-requested ack delays are capped ("a few seconds at most")."""
    ack_frequency: int = 2
    """Acknowledge at once after this many unacknowledged in-order packets."""
    send_buffer_size: int = 128 * 1024
    """Bytes a writer may queue before drain() waits: enough to refill the window an ack of ~50 packets opens."""
    receive_buffer_size: int = 0
    """0 means max_message_size * (max_window_size + 2) ("INBOUND_BUFFER_SIZE")."""
    max_receive_ahead: int = 512
    """Packets beyond the next expected one by more than this are dropped (i2pd windows reach 512)."""
    inactivity_timeout: float = 90.0
    inactivity_action: int = 2
    """0 nothing, 1 disconnect, 2 send a duplicate ack."""
    connect_timeout: float = 300.0
    connect_delay: float = -1.0
    """> 0: hold the SYN up to this long for data to send with it (0-RTT)."""
    syn_reply_delay: float = 0.05
    """How long an incoming connection waits for application data to bundle with the SYN reply."""
    close_timeout: float = 300.0
    """After our CLOSE is acknowledged, how long to wait for the peer's."""
    linger: float = 5.0
    """How long a finished connection stays to re-acknowledge a retransmitted CLOSE."""
    profile: int = PROFILE_BULK
    answer_pings: bool = True
    require_signatures: bool = True
    """Unsigned SYN/CLOSE/RESET pass only when the lower layer vouches for the sender."""

    @property
    def inbound_buffer_size(self) -> int:
        return self.receive_buffer_size or self.max_message_size * (self.max_window_size + 2)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-destination limits on incoming connections (i2p.streaming.maxConns*, maxConcurrentStreams)."""

    max_concurrent_streams: int = 1024
    """Incoming and outgoing together; always bounded so memory is."""
    max_conns_per_minute: int = 0
    max_conns_per_hour: int = 0
    max_conns_per_day: int = 0
    max_total_conns_per_minute: int = 0
    max_total_conns_per_hour: int = 0
    max_total_conns_per_day: int = 0
    limit_action: str = "reset"
    """reset, drop, http (a 429 reply) or any other text as a custom reply."""
    syn_rate: float = 50.0
    """SYNs per second whose signatures we check; more are dropped unread."""
    syn_burst: int = 100
    accept_backlog: int = 64
    max_pending_packets: int = 256
    """Packets held for connections whose SYN has not arrived yet."""
    pending_timeout: float = 10.0
    max_tracked_peers: int = 4096
    access_list: frozenset[bytes] = field(default_factory=frozenset)
    access_mode: str = ""
    """"" none, "allow" whitelist, "deny" blacklist."""
