"""The router's own prefixes from its interfaces (SPEC section 4), in a namespace: what
``local_networks`` reads is what the daemon never maps, the WAN link's prefix included.

router --veth "lan"-- client (192.0.2.0/24, 2001:db8:1::/64)
router --veth "wan"-- isp    (2001:db8:77::/64: the ISP's access link, not the LAN)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import ip_network

import pytest

from tests.labkit import Netns, veth
from tests.labkit.require import LAB_TOOLS, require_root, require_tools

pytestmark = pytest.mark.lab

READ = """
import asyncio, json, sys
from clat_eamt.dataplane.interfaces import local_networks
local = asyncio.run(local_networks([sys.argv[1]]))
print(json.dumps({"never": [str(p) for p in local.never_mapped],
                  "prefixes": [str(p) for p in local.prefixes]}))
"""


@pytest.fixture
def router() -> Iterator[tuple[Netns, str]]:
    require_root()
    require_tools(*LAB_TOOLS)
    with Netns("ifrouter") as router, Netns("ifclient") as client, Netns("ifisp") as isp:
        lan, _ = veth(router, client, ["192.0.2.1/24", "2001:db8:1::1/64"], "192.0.2.10/24")
        veth(router, isp, "2001:db8:77::2/64", "2001:db8:77::1/64")
        yield router, lan


def test_the_wan_links_prefix_is_never_mapped(router: tuple[Netns, str]) -> None:
    ns, lan = router
    out = ns.run([sys.executable, "-c", READ, lan], timeout=30)
    assert isinstance(out, subprocess.CompletedProcess)
    found = json.loads(out.stdout)
    never = {ip_network(p) for p in found["never"]}
    # the LAN's prefixes and every own address, as before
    assert {ip_network("192.0.2.0/24"), ip_network("2001:db8:1::/64")} <= never
    assert {ip_network("192.0.2.1/32"), ip_network("2001:db8:77::2/128")} <= never
    # the WAN link's prefix: another host on it (the ISP's router) is not the router's own
    # address, and an AAAA pointing there must not be mapped either
    assert ip_network("2001:db8:77::/64") in never
