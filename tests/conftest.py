"""Shared test settings."""
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
# the long fuzzing run: PYI2P_FUZZ_EXAMPLES=100000 python -m pytest -m "not interop" -k "fuzz or hypothesis or random"
settings.register_profile("long", max_examples=int(os.environ.get("PYI2P_FUZZ_EXAMPLES") or 200),
                          deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile("long" if os.environ.get("PYI2P_FUZZ_EXAMPLES") else "default")


@pytest.fixture(autouse=True)
def no_real_reseed_servers(monkeypatch):
    """Tests never reach the real network's reseed servers, whatever netid a router is given."""
    import core.netdb.reseed
    import core.router
    monkeypatch.setattr(core.netdb.reseed, "default_reseed_urls", lambda netid: [])
    monkeypatch.setattr(core.router, "default_reseed_urls", lambda netid: [])


def pytest_collection_modifyitems(config, items):
    """An interop test that fails is run once more: real i2pd 2.45.1 routers on two shared cores have timing
    of their own (LeaseSets it sometimes never publishes, tunnels it builds when it chooses), which a second
    run separates from a real fault. Unit tests are never re-run."""
    if not config.pluginmanager.hasplugin("rerunfailures"):
        return
    for item in items:
        if item.get_closest_marker("interop") and not item.get_closest_marker("flaky"):
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=5))
