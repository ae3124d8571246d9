"""The private testnet interop tests share: one per test run, started by the first test that asks for it."""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyi2p.testnet import (PRIVATE_NETNS_NAME, Testnet, delete_netns, i2pd_binary, i2pd_version, list_netns,
                           netns_pids, private_netns_name, unavailable_reason)

TESTNET_WAIT_S = 100.0
log = logging.getLogger(__name__)


def remove_stale_test_namespaces() -> None:
    """Delete namespaces left by earlier test runs that were killed: their PID is gone and nothing runs there."""
    for name in list_netns():
        m = PRIVATE_NETNS_NAME.fullmatch(name)
        if not m:
            continue
        owner = int(m.group(1))
        if owner != os.getpid() and not os.path.exists(f"/proc/{owner}") and not netns_pids(name):
            delete_netns(name)


@pytest.fixture(scope="session")
def testnet_requirements() -> None:
    """Skips (with the reason) where a testnet cannot run: not root, no `ip`, no i2pd."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"private testnet unavailable: {reason}")
    remove_stale_test_namespaces()


def i2pd_binaries() -> list[str | None]:
    """The default i2pd (None) and every other executable named in $PYI2P_I2PD_EXTRA (paths split by ':'):
    modules that take `each_i2pd_testnet` run once per version."""
    extra = [p for p in os.environ.get("PYI2P_I2PD_EXTRA", "").split(":") if p and os.access(p, os.X_OK)]
    return [None, *extra]


def _version_id(binary: str | None) -> str:
    if binary is None and i2pd_binary() is None:
        return "i2pd"
    m = re.search(r"version (\S+)", i2pd_version(binary))
    return f"i2pd-{m.group(1)}" if m else "i2pd"


def _start_testnet(tmp_path_factory: pytest.TempPathFactory, i2pd: str | None = None, *,
                   wait: float = TESTNET_WAIT_S, **options) -> Testnet:
    """A testnet up and ready (`wait` 0: started, not waited for)."""
    net = Testnet(tmp_path_factory.mktemp("testnet"), netns=private_netns_name("t"),
                  die_with_parent=True, i2pd=i2pd, **options)
    try:
        net.up(wait=wait)
    except BaseException:
        net.down()
        raise
    return net


@pytest.fixture(scope="module", params=i2pd_binaries(), ids=_version_id)
def each_i2pd_testnet(request: pytest.FixtureRequest, testnet_requirements: None,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    """The `testnet` below, once with each i2pd version (Debian's, and those in $PYI2P_I2PD_EXTRA)."""
    net = _start_testnet(tmp_path_factory, request.param)
    yield net
    net.down()


@pytest.fixture(scope="module")
def testnet(testnet_requirements: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    """5 i2pd routers (r1, r2 floodfills), ready: each knows all, has sessions and exploratory tunnels.

    One per test module: every in-process router a test starts stays in the i2pd netDbs after it stops
    (i2pd never expires RouterInfos below 90 routers), and a netDb full of dead routers slows i2pd's
    tunnel building for every later test. A fresh testnet costs about 20 s.
    """
    net = _start_testnet(tmp_path_factory)
    yield net
    net.down()


def restart_dead_i2pd(net: Testnet) -> list[str]:
    """Start again (same identity) every i2pd router of `net` whose process died, and wait until all are ready;
    the names of those restarted."""
    dead = [r for r in net.i2pd_routers if not r.running]
    for r in dead:
        log.warning("%s of the testnet died (log: %s); starting it again", r.name, Path(r.datadir) / "i2pd.log")
        net.restart(r)
    if dead:
        net.wait_ready(TESTNET_WAIT_S)
    return [r.name for r in dead]


@pytest.fixture(autouse=True)
def crashed_i2pd_restarted(request: pytest.FixtureRequest) -> None:
    """i2pd 2.45.1 now and then dies after SAM sessions close (a segfault in its SAM thread, docs/testnet.md): a
    router of the module's testnet that died is started again before the next test, so a crash costs the test it
    happened in (re-run where that test names the defect), not the rest of the module."""
    for name in ("testnet", "each_i2pd_testnet"):
        if name in request.fixturenames:
            restart_dead_i2pd(request.getfixturevalue(name))
