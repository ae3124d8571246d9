"""Three transport managers over loopback: a firewalled router gets an introducer and is reached through it."""

from core.clock import FakeClock, SystemClock
from core.crypto.x25519 import X25519Keypair
from core.data.encoding import b64encode
from core.i2np.header import I2NPMessage
from core.transport.manager import TransportManager, TransportSettings
from core.transport.ssu2.driver import dialable_ssu2, introduced_ssu2

from .ssu2_support import make_ssu2_router, until

NETID = 42


class Node:
    def __init__(self, name, clock, infos, **kw):
        self.name, self.clock, self.infos, self.inbox = name, clock, infos, []
        self.router = make_ssu2_router(name, clock, **kw)
        self.manager = TransportManager(
            router_hash=self.router.router_hash, static_key=X25519Keypair(bytes(32)), iv=bytes(16), netid=NETID,
            router_info=lambda: self.router.router_info.to_bytes(), lookup_router_info=infos.get,
            on_message=lambda peer, m: self.inbox.append((peer, m)), on_router_info=lambda *a: None, clock=clock,
            ssu2_keys=(self.router.static_key, self.router.intro_key), sign=self.router.sign,
            settings=TransportSettings(first_introducer_s=3600, first_peer_test_s=3600),
            on_introducers=self.republish)

    def republish(self):
        # as the router does: the SSU2 address names the introducers
        options = {}
        for k, (bob, tag, expires) in enumerate(self.manager.introducers):
            options.update({f"ih{k}": b64encode(bob), f"itag{k}": str(tag), f"iexp{k}": str(expires)})
        self.router = make_ssu2_router(self.name, self.clock, host=None, caps="4", options=options)
        self.infos[self.router.router_hash] = self.router.router_info


def message(i):
    return I2NPMessage(20, i, int(SystemClock().time() * 1000) + 60_000, bytes([i]) * 50)


async def test_firewalled_router_publishes_an_introducer_and_is_reached_through_it():
    clock, infos = SystemClock(), {}
    bob = Node("bob", clock, infos)
    await bob.manager.start("127.0.0.1", 0)
    bob.router = make_ssu2_router("bob", clock, port=bob.manager.ssu2.port, caps="BC")
    charlie = Node("charlie", clock, infos, host=None, caps="4")
    await charlie.manager.start(None, 0)
    alice = Node("alice", clock, infos, host=None, caps="4")
    await alice.manager.start(None, 0)
    for node in (bob, charlie, alice):
        infos[node.router.router_hash] = node.router.router_info
    try:
        # Charlie, firewalled, talks to Bob, asks him for a relay tag and publishes him as introducer
        assert charlie.manager.send(bob.router.router_hash, message(1))
        await until(lambda: bob.inbox, step=0.02)
        # asked in the Session Request, as Bob publishes "C"; answered once Session Confirmed is in
        await until(lambda: charlie.manager.ssu2.introducers(), step=0.02)
        assert charlie.manager.refresh_introducers() is True
        assert charlie.manager.refresh_introducers() is False
        ((ih, tag, _),) = charlie.manager.introducers
        assert ih == bob.router.router_hash and bob.manager.ssu2.introducer.tags[tag] == charlie.router.router_hash
        ri = infos[charlie.router.router_hash]
        assert dialable_ssu2(ri) is None and introduced_ssu2(ri, clock.time())[1] == [(ih, tag)]
        # Alice knows only Charlie's RouterInfo: she dials Bob, is introduced, and reaches Charlie
        assert alice.manager.send(charlie.router.router_hash, message(2))
        await until(lambda: charlie.inbox, step=0.02)
        assert [(p, m.msg_id) for p, m in charlie.inbox] == [(alice.router.router_hash, 2)]
        conn = alice.manager.sessions[charlie.router.router_hash]
        assert conn.transport_style == "SSU2" and not conn.inbound
        assert bob.router.router_hash in alice.manager.sessions          # the introducer, dialled on the way
    finally:
        for node in (alice, charlie, bob):
            await node.manager.stop()


class _HeldTags:
    """The endpoint's view the manager publishes from: (Bob's hash, tag) on live sessions."""

    def __init__(self):
        self.held = []

    def introducers(self):
        return list(self.held)


def test_introducers_are_republished_when_they_change_or_near_their_expiry():
    clock, infos = FakeClock(), {}
    published = []
    node = Node("charlie", clock, infos, host=None, caps="4")
    node.manager._on_introducers = lambda: published.append(list(node.manager.introducers))
    node.manager.ssu2 = tags = _HeldTags()
    assert node.manager.refresh_introducers() is False and published == []
    tags.held = [(b"\x01" * 32, 5), (b"\x02" * 32, 6)]
    assert node.manager.refresh_introducers() is True
    assert [(h, t) for h, t, _ in published[-1]] == tags.held and published[-1][0][2] == int(clock.time()) + 3600
    clock.advance(1200)
    assert node.manager.refresh_introducers() is False               # 40 minutes of iexp left
    clock.advance(1300)
    assert node.manager.refresh_introducers() is True                # under 20 minutes: a fresh iexp
    assert published[-1][0][2] == int(clock.time()) + 3600
    tags.held = tags.held[1:]                                         # a session closed: its tag goes
    assert node.manager.refresh_introducers() is True and len(published[-1]) == 1
    tags.held = [(bytes([k]) * 32, k) for k in range(1, 6)]       # at most 3 are published (ih0-ih2)
    assert node.manager.refresh_introducers() is True
    assert [t for _, t, _ in node.manager.introducers] == [1, 2, 3]
