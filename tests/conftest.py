"""Shared test settings."""
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
# the long fuzzing run (every property test; hypothesis marks them):
#   PYI2P_FUZZ_EXAMPLES=5000 python -m pytest -q -m "hypothesis and not interop" --hypothesis-seed=N
LONG_FUZZ_EXAMPLES = int(os.environ.get("PYI2P_FUZZ_EXAMPLES") or 0)
settings.register_profile("long", max_examples=LONG_FUZZ_EXAMPLES or 200,
                          deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile("long" if LONG_FUZZ_EXAMPLES else "default")



@pytest.fixture(autouse=True)
def no_real_reseed_servers(monkeypatch):
    """Tests never reach the real network's reseed servers, whatever netid a router is given."""
    import core.netdb.reseed
    import core.router
    monkeypatch.setattr(core.netdb.reseed, "default_reseed_urls", lambda netid: [])
    monkeypatch.setattr(core.router, "default_reseed_urls", lambda netid: [])


def pytest_collection_modifyitems(config, items):
    raise_example_counts(items)
    rerun_known_i2pd_defects(config, items)


def raise_example_counts(items):
    """In the long fuzzing run, tests that set their own (smaller) example count get the raised one too."""
    if not LONG_FUZZ_EXAMPLES:
        return
    for item in items:
        test = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
        own = getattr(test, "_hypothesis_internal_use_settings", None)   # where @given keeps @settings
        if own is not None and own.max_examples < LONG_FUZZ_EXAMPLES:
            test._hypothesis_internal_use_settings = settings(own, max_examples=LONG_FUZZ_EXAMPLES,
                                                              suppress_health_check=list(HealthCheck))


def rerun_known_i2pd_defects(config, items):
    """An interop test is run once more only where it names a known i2pd defect that makes it fail now and
    then (`@pytest.mark.i2pd_defect("...")`); our own faults must show. Re-runs are listed in the summary.
    `version="2.45.1"` limits the re-run to the runs of a module on that i2pd (each_i2pd_testnet's "i2pd-2.45.1")."""
    if not config.pluginmanager.hasplugin("rerunfailures"):
        return
    for item in items:
        defect = item.get_closest_marker("i2pd_defect")
        if item.get_closest_marker("interop") and defect and not item.get_closest_marker("flaky"):
            if not defect.args or not str(defect.args[0]).strip():
                raise pytest.UsageError(f"{item.nodeid}: i2pd_defect needs the defect named")
            version = defect.kwargs.get("version")
            callspec = getattr(item, "callspec", None)
            if version and callspec is not None and f"i2pd-{version}" not in callspec.id:
                continue   # another i2pd: a failure there is ours to see
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=5))


@pytest.fixture
async def network():
    """An in-memory I2P for the apps: destinations of one ClientAPI reach each other by local delivery."""
    from apps.network import InProcessNetwork
    from core.client import ClientAPI
    net = InProcessNetwork(ClientAPI())
    yield net
    await net.close()
