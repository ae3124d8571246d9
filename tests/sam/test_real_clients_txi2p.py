"""txi2p-tahoe (Twisted, SAM 3.2 with PING keepalives) driving the bridge.

Twisted's reactor is process-global, so the client runs in a child process against a bridge in this one."""
from __future__ import annotations

import asyncio
import json
import sys

import pytest

from core.data.identity import Destination

pytest.importorskip("txi2p", reason="txi2p-tahoe is not installed")

# A server endpoint echoes one line; a client endpoint on another session sends a line and reads the echo.
# KEEPALIVE_TIMEOUT is shortened so both sessions' control sockets exchange PING/PONG within the run.
CLIENT_SCRIPT = r"""
import json, sys
import txi2p.sam.base as base
base.KEEPALIVE_TIMEOUT = 0.3
pings = []
original_pong = base.SAMReceiver.pong
def pong(self, data):
    pings.append(data)
    return original_pong(self, data)
base.SAMReceiver.pong = pong
from twisted.internet import reactor, protocol, defer
from twisted.internet.endpoints import TCP4ClientEndpoint
from txi2p.sam.endpoints import SAMI2PStreamClientEndpoint, SAMI2PStreamServerEndpoint
from txi2p.sam.session import _sessions

port, keyfile = int(sys.argv[1]), sys.argv[2]
sam = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
result = {}

class Echo(protocol.Protocol):
    def dataReceived(self, data):
        result["server_got"] = data.decode()
        result["server_peer"] = str(self.transport.getPeer())
        self.transport.write(b"echo:" + data)

class Caller(protocol.Protocol):
    def connectionMade(self):
        self.transport.write(b"hello txi2p\n")
    def dataReceived(self, data):
        result["client_got"] = result.get("client_got", "") + data.decode()
        if result["client_got"].endswith("\n"):
            reactor.callLater(1.0, finish)

def finish():
    result["pongs"] = len(pings)
    result["versions"] = sorted({s.samVersion for s in _sessions.values()})
    result["server_address"] = str(_sessions["srv"].address.destination)
    reactor.stop()

def fail(failure):
    result["error"] = str(failure.value)
    reactor.stop()

@defer.inlineCallbacks
def run():
    server = SAMI2PStreamServerEndpoint.new(sam, keyfile, nickname="srv", options={"inbound.length": "0"})
    yield server.listen(protocol.Factory.forProtocol(Echo))
    host = str(_sessions["srv"].address.destination)
    client = SAMI2PStreamClientEndpoint.new(sam, host, nickname="cli")
    yield client.connect(protocol.Factory.forProtocol(Caller))

reactor.callWhenRunning(lambda: run().addErrback(fail))
reactor.callLater(20, lambda: (result.setdefault("error", "timeout"), reactor.stop()))
reactor.run()
print(json.dumps(result))
"""


async def test_txi2p_streams_and_keepalive(bridge, tmp_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT_SCRIPT, str(bridge.port), str(tmp_path / "server.keys"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), 40)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()[-2000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert "error" not in result, (result, err.decode()[-2000:])
    assert result["versions"] == ["3.2"]              # HELLO MIN=3.0 MAX=3.2
    assert result["server_got"] == "hello txi2p\n"
    assert result["client_got"] == "echo:hello txi2p\n"
    assert result["pongs"] >= 1                        # our PONG echoed txi2p's PING data
    assert Destination.from_b64(result["server_address"])
    assert (tmp_path / "server.keys").exists()         # DEST GENERATE through the bridge, kept by txi2p
