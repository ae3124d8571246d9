"""Structures written by the testnet's live i2pd routers parse, verify and round-trip exactly."""
from pathlib import Path

import pytest

from core.data.encoding import b64encode
from core.data.privatekeys import PrivateKeys
from core.data.routerinfo import RouterInfo

pytestmark = pytest.mark.interop


def test_every_i2pd_router_info_and_netdb_file(testnet):
    for router in testnet.i2pd_routers:
        data = router.router_info_path.read_bytes()
        ri = RouterInfo.parse(data)
        assert ri.verify() and ri.to_bytes() == data
        assert b64encode(ri.hash) == router.ident_hash
        keys = PrivateKeys.parse((Path(router.datadir) / "router.keys").read_bytes())
        assert keys.router_identity == ri.identity
        for path in Path(router.datadir, "netDb").glob("r?/routerInfo-*.dat"):
            stored = RouterInfo.parse(path.read_bytes())
            assert stored.verify()
            assert path.name == f"routerInfo-{b64encode(stored.hash)}.dat"
            assert path.parent.name == "r" + b64encode(stored.hash)[0]
