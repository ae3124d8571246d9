"""Hypothesis strategies producing valid I2NP structures."""
from hypothesis import strategies as st

from core.data.certificate import NULL_CERTIFICATE, Certificate

from core.i2np import (Data, DatabaseLookup, DatabaseSearchReply, DatabaseStore, DeliveryStatus, DeliveryType, Garlic,
                       GarlicClove, GarlicCloveBlock, GarlicCloveDeliveryInstructions, GarlicCloveSet, I2NPMessage,
                       LookupType, OutboundTunnelBuildReply, ReplyEncryption, ShortTunnelBuild, StoreType,
                       TunnelBuild, TunnelBuildReply, TunnelData, TunnelGateway, VariableTunnelBuild,
                       VariableTunnelBuildReply)

hashes = st.binary(min_size=32, max_size=32)
u32 = st.integers(0, 2**32 - 1)
tunnel_ids = st.integers(1, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
small_bodies = st.binary(max_size=300)


def i2np_messages(bodies=small_bodies, types=st.integers(0, 255)):
    return st.builds(I2NPMessage, types, u32, u64, bodies)


@st.composite
def database_stores(draw):
    store_type = draw(st.sampled_from(list(StoreType)))
    reply_token = draw(st.one_of(st.just(0), st.integers(1, 2**32 - 1)))
    tunnel = draw(u32) if reply_token else 0
    gateway = draw(hashes) if reply_token else None
    return DatabaseStore(draw(hashes), store_type, draw(st.binary(min_size=1, max_size=200)), reply_token, tunnel,
                         gateway, draw(st.integers(0, 15)) << 4)


@st.composite
def database_lookups(draw):
    encryption = draw(st.sampled_from(list(ReplyEncryption)))
    key, tags = None, ()
    if encryption == ReplyEncryption.ECIES:
        key, tags = draw(hashes), (draw(st.binary(min_size=8, max_size=8)),)
    elif encryption == ReplyEncryption.ELGAMAL:
        key, tags = draw(hashes), tuple(draw(st.lists(hashes, min_size=1, max_size=32)))
    return DatabaseLookup(
        draw(hashes), draw(hashes), draw(st.sampled_from(list(LookupType))), draw(st.none() | tunnel_ids),
        tuple(draw(st.lists(hashes, max_size=20))), encryption, key, tags, draw(st.integers(0, 7)) << 5)


database_search_replies = st.builds(DatabaseSearchReply, hashes, st.lists(hashes, max_size=20).map(tuple), hashes)
delivery_statuses = st.builds(DeliveryStatus, u32, u64)
garlics = st.builds(Garlic, st.binary(max_size=2000))
tunnel_datas = st.builds(TunnelData, tunnel_ids, st.binary(min_size=1024, max_size=1024))
tunnel_gateways = st.builds(TunnelGateway, tunnel_ids, i2np_messages())
datas = st.builds(Data, st.binary(max_size=2000))


def _records(size, min_count=1, max_count=8):
    return st.lists(st.binary(min_size=size, max_size=size), min_size=min_count, max_size=max_count).map(tuple)


tunnel_builds = st.builds(TunnelBuild, _records(528, 8, 8))
tunnel_build_replies = st.builds(TunnelBuildReply, _records(528, 8, 8))
variable_tunnel_builds = st.builds(VariableTunnelBuild, _records(528))
variable_tunnel_build_replies = st.builds(VariableTunnelBuildReply, _records(528))
short_tunnel_builds = st.builds(ShortTunnelBuild, _records(218))
outbound_tunnel_build_replies = st.builds(OutboundTunnelBuildReply, _records(218))

ALL_MESSAGES = {
    DatabaseStore: database_stores(),
    DatabaseLookup: database_lookups(),
    DatabaseSearchReply: database_search_replies,
    DeliveryStatus: delivery_statuses,
    Garlic: garlics,
    TunnelData: tunnel_datas,
    TunnelGateway: tunnel_gateways,
    Data: datas,
    TunnelBuild: tunnel_builds,
    TunnelBuildReply: tunnel_build_replies,
    VariableTunnelBuild: variable_tunnel_builds,
    VariableTunnelBuildReply: variable_tunnel_build_replies,
    ShortTunnelBuild: short_tunnel_builds,
    OutboundTunnelBuildReply: outbound_tunnel_build_replies,
}

typed_messages = st.one_of(*ALL_MESSAGES.values())


@st.composite
def delivery_instructions(draw):
    delivery_type = draw(st.sampled_from(list(DeliveryType)))
    to_hash = None if delivery_type == DeliveryType.LOCAL else draw(hashes)
    tunnel_id = draw(tunnel_ids) if delivery_type == DeliveryType.TUNNEL else None
    return GarlicCloveDeliveryInstructions(delivery_type, to_hash, tunnel_id, draw(st.none() | hashes),
                                           draw(st.none() | u32))


certificates = st.one_of(st.just(NULL_CERTIFICATE),
                         st.builds(Certificate, st.sampled_from([1, 4, 6, 200]), st.binary(max_size=40)))

garlic_cloves = st.builds(GarlicClove, delivery_instructions(), i2np_messages(), u32, u64, certificates)
garlic_clove_sets = st.builds(GarlicCloveSet, st.lists(garlic_cloves, min_size=1, max_size=4).map(tuple), u32, u64,
                              certificates)
# the 9-byte header carries whole seconds, so only those survive a round trip
short_form_messages = st.builds(I2NPMessage, st.integers(0, 255), u32, u32.map(lambda s: s * 1000), small_bodies)
garlic_clove_blocks = st.builds(GarlicCloveBlock, delivery_instructions(), short_form_messages)
