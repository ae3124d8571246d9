"""The outgoing queue on a simulated clock: backoff, partial outcomes, giving up after 7 days with a
bounce, and surviving a restart (what a kill -9 leaves on disk)."""
from __future__ import annotations

from apps.mail.queue import MAX_AGE, RETRY_DELAYS, OutboundQueue
from apps.mail.smtpclient import Reply, SmtpError
from apps.network import PeerNotFound
from core.clock import FakeClock

DATA = b"Subject: hi\r\n\r\nbody\r\n"


class Remote:
    """The other node: answers what the test says, and records each attempt's time."""

    def __init__(self, clock):
        self.clock = clock
        self.answers: dict[str, Reply] | Exception = PeerNotFound("offline")
        self.attempts: list[float] = []
        self.received: list[bytes] = []

    async def deliver(self, entry, data):
        self.attempts.append(self.clock.time())
        if isinstance(self.answers, Exception):
            raise self.answers
        self.received.append(data)
        return {r: self.answers.get(r, Reply(250, "OK")) for r in entry.recipients}


def make(tmp_path, clock, remote, bounces):
    return OutboundQueue(tmp_path, remote.deliver, lambda entry, failures, data: bounces.append((entry, failures)),
                         clock)


async def test_retries_back_off_and_deliver_when_the_peer_returns(tmp_path):
    clock = FakeClock()
    remote, bounces = Remote(clock), []
    queue = make(tmp_path, clock, remote, bounces)
    entry = queue.add("a@x.b32.i2p", "y.b32.i2p", ["b@y.b32.i2p"], DATA)
    start = clock.time()
    assert await queue.run_due() == 1
    for delay in RETRY_DELAYS[:4]:
        clock.advance(delay - 1)
        assert await queue.run_due() == 0          # not yet
        clock.advance(1)
        assert await queue.run_due() == 1
    assert [t - start for t in remote.attempts] == [0, 60, 360, 1260, 3060]
    assert queue.entries[entry.id].attempts == 5 and "offline" in queue.entries[entry.id].last_error
    remote.answers = {}
    clock.advance(RETRY_DELAYS[4])
    assert await queue.run_due() == 1
    assert remote.received == [DATA] and queue.entries == {} and bounces == []
    assert list((tmp_path / "queue").iterdir()) == []


async def test_gives_up_after_seven_days_and_bounces_once(tmp_path):
    clock = FakeClock()
    remote, bounces = Remote(clock), []
    queue = make(tmp_path, clock, remote, bounces)
    queue.add("a@x.b32.i2p", "y.b32.i2p", ["b@y.b32.i2p", "c@y.b32.i2p"], DATA)
    for _ in range(200):
        due = queue.next_due()
        if due is None:
            break
        clock.advance(max(0.0, due - clock.time()))
        await queue.run_due()
    assert queue.entries == {}
    assert len(bounces) == 1
    entry, failures = bounces[0]
    assert [r for r, _ in failures] == ["b@y.b32.i2p", "c@y.b32.i2p"]
    assert "gave up" in failures[0][1] and "offline" in failures[0][1]
    assert MAX_AGE <= remote.attempts[-1] - remote.attempts[0] < MAX_AGE + RETRY_DELAYS[-1]
    gaps = [b - a for a, b in zip(remote.attempts, remote.attempts[1:])]
    assert max(gaps) == RETRY_DELAYS[-1] and gaps == sorted(gaps)


async def test_permanent_refusal_bounces_now_and_transient_recipients_wait(tmp_path):
    clock = FakeClock()
    remote, bounces = Remote(clock), []
    remote.answers = {"nobody@y.b32.i2p": Reply(550, "no such user"), "full@y.b32.i2p": Reply(452, "full")}
    queue = make(tmp_path, clock, remote, bounces)
    entry = queue.add("a@x.b32.i2p", "y.b32.i2p", ["b@y.b32.i2p", "nobody@y.b32.i2p", "full@y.b32.i2p"], DATA)
    await queue.run_due()
    assert queue.entries[entry.id].recipients == ["full@y.b32.i2p"]
    assert bounces == []                       # one report when the entry is done
    remote.answers = {}
    clock.advance(RETRY_DELAYS[0])
    await queue.run_due()
    assert queue.entries == {}
    assert [(r, why) for r, why in bounces[0][1]] == [("nobody@y.b32.i2p", "550 no such user")]


async def test_a_whole_conversation_refused_for_good_bounces(tmp_path):
    clock = FakeClock()
    remote, bounces = Remote(clock), []
    remote.answers = SmtpError(554, "go away")
    queue = make(tmp_path, clock, remote, bounces)
    queue.add("a@x.b32.i2p", "y.b32.i2p", ["b@y.b32.i2p"], DATA)
    await queue.run_due()
    assert queue.entries == {} and bounces[0][1] == [("b@y.b32.i2p", "554 go away")]


async def test_entries_survive_a_restart_and_half_written_ones_are_dropped(tmp_path):
    clock = FakeClock()
    remote, bounces = Remote(clock), []
    queue = make(tmp_path, clock, remote, bounces)
    kept = queue.add("a@x.b32.i2p", "y.b32.i2p", ["b@y.b32.i2p"], DATA)
    await queue.run_due()                           # one failed attempt, state on disk
    folder = tmp_path / "queue"
    (folder / "123-orphan.msg").write_bytes(b"never acknowledged")      # killed between the two writes
    (folder / "124-lost.json").write_text((folder / f"{kept.id}.json").read_text().replace(kept.id, "124-lost"))
    (folder / "125-bad.json").write_text("{not json")
    again = make(tmp_path, clock, remote, bounces)
    assert list(again.entries) == [kept.id]
    assert again.entries[kept.id].attempts == 1 and again.entries[kept.id].next_try == kept.next_try
    assert not (folder / "123-orphan.msg").exists() and not (folder / "124-lost.json").exists()
    assert (folder / "125-bad.bad").exists()
    remote.answers = {}
    clock.advance(RETRY_DELAYS[0])
    await again.run_due()
    assert remote.received == [DATA] and again.entries == {}
