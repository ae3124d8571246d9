"""`pyi2p run` serves SAM v3 on the configured port, backed by the router's client API."""
import asyncio

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
