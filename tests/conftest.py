"""Shared test settings."""
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("default")


@pytest.fixture(autouse=True)
def no_real_reseed_servers(monkeypatch):
    """Tests never reach the real network's reseed servers, whatever netid a router is given."""
    import core.netdb.reseed
    import core.router
    monkeypatch.setattr(core.netdb.reseed, "default_reseed_urls", lambda netid: [])
    monkeypatch.setattr(core.router, "default_reseed_urls", lambda netid: [])
