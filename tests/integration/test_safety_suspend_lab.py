"""Issue 25 in the lab for static and provider entries: a broken target suspends the entry's
destination (``core.suspend``) instead of making it Stale, so a static entry loses no
connection (made Stale it would have steered every retransmission into the black hole) and a
provider entry is steered again once its target works, without waiting for the next table.

As in test_safety_lab: the product on the lab's home router (translator external), the ISP
dropping native IPv6 to one server both ways while its NAT64 reaches the server's IPv4, an
IPv4-only client with the kernel's TCP (initial RTO 1 s) that connects to the literal D.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clat_eamt.control.client import call
from tests.integration.proxykit import uci
from tests.integration.routerkit import CLAT_IPV6, NAT64_PEER, Router
from tests.integration.safetykit import (
    BACKOFF,
    black_hole,
    connect,
    curl,
    in_parallel,
    isp_failure,
    safety_router,
)
from tests.labkit.netns import run
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS, require_root, require_tools

D, X = "192.0.2.111", "2001:db8:1::111"  # ds11.lab.example's A and AAAA (labkit.zone)


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    with safety_router(tmp_path) as router:
        yield router


def install(router: Router, origin: str) -> None:
    """D -> X as the operator's static section (a reload), or pushed as the provider's table."""
    if origin == "static":
        section = f"\nconfig static 'server'\n\toption ipv4 '{D}'\n\toption ipv6 '{X}'\n"
        router.config.write_text(uci(router.options) + section)
        os.kill(router.proc.pid, signal.SIGHUP)
    else:
        table = f"serial 1\nrefresh 3600\n{D} {X} ttl=3600\n"
        call(router.options["control_socket"], "provider", {"table": table})
    router.wait(lambda: D in router.dnat_elements(), f"the {origin} entry")


def row(router: Router) -> dict:
    [found] = [r for r in call(router.options["control_socket"], "mappings") if r["ipv4"] == D]
    return found


def suspended_set(router: Router) -> str:
    return run(router.lab.ce, ["nft", "list", "set", "inet", "clat_eamt", "suspended"]).stdout


@pytest.mark.lab
@pytest.mark.parametrize("origin", ["static", "provider"])
def test_a_broken_target_suspends_the_entry_loses_no_connection_and_native_comes_back(
    router: Router, origin: str
):
    install(router, origin)
    with isp_failure(router, black_hole(X)):
        first = curl(router, D)  # curl with its defaults, as a user would
        assert first.ok, first.error
        assert first.peer == NAT64_PEER
        assert 0.9 < first.seconds < 2.5  # one SYN retransmission (1 s), no more
        mapping = row(router)  # the entry is untouched, its destination suspended
        assert (mapping["origin"], mapping["state"]) == (origin, "valid")
        assert mapping["suspended"] == "target broken" and mapping["stale_reason"] is None
        assert D in router.dnat_elements() and D in suspended_set(router)
        rest = [curl(router, D) for _ in range(3)]
        rest += [connect(router, D) for _ in range(7)]
        rest += in_parallel(router, D, 9)
        assert len(rest) == 19
        assert [a for a in rest if not a.ok] == []
        assert {a.peer for a in rest} == {NAT64_PEER}
        assert max(a.seconds for a in rest) < 0.5  # through the NAT64 at once
        status = call(router.options["control_socket"], "status")
        counted = status["summary"]["safety"]
        assert counted["rescued"] == 1 and counted["suspended"] == 1
        assert counted["stale_by_broken"] == 0
        assert [s["ipv4"] for s in status["safety"]["suspended"]] == [f"{D}/32"]
    time.sleep(BACKOFF)  # the back-off passes: resumed, the next connection is the trial
    router.wait(lambda: not router.status()["safety"]["suspended"], "resumed", timeout=5)
    assert D not in suspended_set(router)
    after = connect(router, D)
    assert after.ok and after.peer == CLAT_IPV6  # native again, through the same entry
    mapping = row(router)
    assert (mapping["origin"], mapping["state"], mapping["suspended"]) == (origin, "valid", None)
    counted = call(router.options["control_socket"], "status")["summary"]["safety"]
    assert counted["verdicts_working"] >= 1  # the trial got its answer
