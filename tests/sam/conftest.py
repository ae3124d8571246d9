import pytest

from core.sam.bridge import SamBridge, SamConfig
from core.sam.memory_backend import MemoryBackend

from .helpers import close_clients


@pytest.fixture
def backend():
    return MemoryBackend()


@pytest.fixture
async def bridge(backend):
    bridge = SamBridge(backend, SamConfig(port=0, udp_port=0))
    async with bridge:
        try:
            yield bridge
        finally:
            await close_clients()
