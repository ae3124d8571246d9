"""`pyi2p run` serves SAM v3 on the configured port, backed by the router's client API."""
import asyncio

import pytest

from core.clock import FakeClock
from core.config import load_config
from core.router import Router


async def test_router_serves_sam(tmp_path, free_port):
    router = Router(load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": free_port,
                                           "sam_udp_port": 0}), clock=FakeClock())
    await router.start()
    try:
        assert router.sam is not None and router.sam.udp_address is None
        reader, writer = await asyncio.open_connection("127.0.0.1", free_port)
        writer.write(b"HELLO VERSION MIN=3.0 MAX=3.3\n")
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HELLO REPLY RESULT=OK VERSION=3.3")
        writer.write(b"DEST GENERATE SIGNATURE_TYPE=7\n")
        reply = (await asyncio.wait_for(reader.readline(), 10)).decode()
        assert reply.startswith("DEST REPLY PUB=") and " PRIV=" in reply
        writer.close()
    finally:
        await router.stop()
    assert router.sam is not None
    try:
        await asyncio.open_connection("127.0.0.1", free_port)
    except OSError:
        pass
    else:
        raise AssertionError("SAM still listening after stop")


async def test_sam_port_zero_turns_it_off(tmp_path):
    router = Router(load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": 0}), clock=FakeClock())
    await router.start()
    try:
        assert router.sam is None
    finally:
        await router.stop()


async def test_a_taken_udp_port_is_named(tmp_path, free_port, caplog):
    import socket
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    udp_port = taken.getsockname()[1]
    router = Router(load_config(tmp_path, {"netid": 42, "control_port": 0, "sam_port": free_port,
                                           "sam_udp_port": udp_port}), clock=FakeClock())
    await router.start()
    try:
        assert router.sam is None
        assert f"SAM UDP datagram port 127.0.0.1:{udp_port}" in caplog.text
        assert "--sam-udp-port" in caplog.text
        with pytest.raises(OSError):    # the TCP port was let go again
            await asyncio.open_connection("127.0.0.1", free_port)
    finally:
        taken.close()
        await router.stop()
