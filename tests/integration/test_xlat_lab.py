"""Self-tests of the 464XLAT lab (tests/labkit/xlat.py): the paths the dataplane tests rely on
carry real TCP the way SPEC 7 measured it, and nothing of the lab outlives it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.labkit import LAB, answers, dns64
from tests.labkit.netns import list_lab_namespaces
from tests.labkit.procs import process_gone, tool
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS, require_root, require_tools
from tests.labkit.xlat import XLAT_TOOLS, Xlat

pytestmark = pytest.mark.lab

V4ONLY = LAB.rdata("v4only", "A")[0]  # 192.0.2.20: reachable over IPv4 only (NAT64)
DS4 = LAB.rdata("ds", "A")[0]  # 192.0.2.10 (D) ...
DS6 = LAB.rdata("ds", "AAAA")[0]  # ... and its real IPv6 2001:db8:1::10 (X)
POOL_P = "198.51.100.129"  # the first address of the lab's mapping pool
MAX_STALL = 3.0  # seconds a flow may stall through a CLAT restart (SPEC 7: one ~200 ms RTO)


def _require() -> None:
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS, *XLAT_TOOLS)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xlat]:
    """A lab with its own CLAT, shared by the read-only tests."""
    _require()
    with Xlat(tmp_path_factory.mktemp("xlat")) as the_lab:
        yield the_lab


@pytest.fixture
def own_lab(tmp_path: Path) -> Iterator[Xlat]:
    """A lab for one test that changes it (DNAT, tayga maps)."""
    _require()
    with Xlat(tmp_path / "xlat") as the_lab:
        yield the_lab


def test_ipv4_only_client_reaches_an_ipv4_only_server_through_clat_and_nat64(lab: Xlat) -> None:
    with lab.flow(lab.lan, V4ONLY) as flow:
        seen = lab.accepted(flow.tag)
        assert (seen["family"], seen["peer"], seen["local"]) == ("ipv4", lab.NAT64_PUBLIC4, V4ONLY)
        # On the way: NAT44 to the CLAT's IPv4 in ce, then the NAT64's dynamic pool in isp.
        ce_flows = _flows(lab.conntrack(lab.ce), lab.LAN_ADDR4, V4ONLY)
        assert any(f"dst={lab.CLAT_ADDR4}" in line for line in ce_flows), ce_flows
        isp_flows = _flows(lab.conntrack(lab.isp), None, V4ONLY)
        assert any(f"dst={lab.NAT64_PUBLIC4}" in line for line in isp_flows), isp_flows


def test_dual_stack_client_goes_native_over_ipv6_and_through_the_clat_over_ipv4(lab: Xlat) -> None:
    with lab.flow(lab.lan6, DS6) as native, lab.flow(lab.lan6, V4ONLY) as translated:
        seen6, seen4 = lab.accepted(native.tag), lab.accepted(translated.tag)
    assert (seen6["family"], seen6["peer"], seen6["local"]) == ("ipv6", lab.LAN6_ADDR6, DS6)
    assert (seen4["family"], seen4["peer"]) == ("ipv4", lab.NAT64_PUBLIC4)


def test_the_isp_resolver_answers_from_ce_and_synthesizes_with_the_lab_pref64(lab: Xlat) -> None:
    host, port = lab.unbound_target.split("#")
    assert (host, int(port)) == (lab.ISP_RESOLVER, 53)
    assert answers(lab.resolve(lab.ce, "ds.lab.example", "A"), "A") == [DS4]
    assert answers(lab.resolve(lab.ce, "ds.lab.example", "AAAA"), "AAAA") == [DS6]
    synthesized = answers(lab.resolve(lab.ce, "v4only.lab.example", "AAAA"), "AAAA")
    assert synthesized == [dns64(V4ONLY)] == ["2001:db8:64::c000:214"]
    # RFC 7050 discovery of the Pref64 works through it too.
    wka = answers(lab.resolve(lab.ce, "ipv4only.arpa", "AAAA"), "AAAA")
    assert sorted(wka) == ["2001:db8:64::c000:aa", "2001:db8:64::c000:ab"]


def test_hand_made_dnat_to_a_pool_address_and_an_eam_entry_pin_each_flow(own_lab: Xlat) -> None:
    lab = own_lab
    before = lab.flow(lab.lan, DS4)  # no mapping yet: CLAT + NAT64
    assert lab.accepted(before.tag)["peer"] == lab.NAT64_PUBLIC4

    lab.dnat({DS4: POOL_P})
    with before.ticking(0.05):
        restart = lab.tayga_map(POOL_P, DS6)
    before.roundtrip("after the restart")
    assert before.max_stall() < MAX_STALL, before.ticks
    assert restart < 1.0

    native = lab.flow(lab.lan, DS4)  # D -> P -> X: the server sees the CLAT's IPv6
    seen = lab.accepted(native.tag)
    assert (seen["family"], seen["peer"], seen["local"]) == ("ipv6", lab.CLAT_ADDR6, DS6)
    before.roundtrip("the NAT64 flow still works")

    lab.undnat(DS4)
    after = lab.flow(lab.lan, DS4)
    assert lab.accepted(after.tag)["peer"] == lab.NAT64_PUBLIC4
    native.roundtrip("the native flow kept its target")
    before.roundtrip("and so did the NAT64 one")
    for flow in (before, native, after):
        flow.close()
        assert lab.closed(flow.tag)["bytes"] > len(flow.tag)


def test_clat_none_leaves_the_clat_to_the_daemon_and_its_settings_make_one(tmp_path: Path) -> None:
    _require()
    with Xlat(tmp_path / "xlat", clat="none") as lab:
        assert not [p for p in lab.procs if p.name == "clat"]
        links = lab.ce.run([tool("ip"), "-o", "link"]).stdout
        assert f" {lab.CLAT_TUN}:" not in links
        assert "default" not in lab.ce.run([tool("ip"), "route"]).stdout
        settings = lab.settings()
        assert settings["pool"] == lab.EAM_POOL and settings["upstream"] == "2001:db8:100::1#53"
        # What the daemon would do with these settings makes a working CLAT.
        conf = lab.clat_tayga_conf({POOL_P: DS6})
        lab.mktun(lab.ce, "daemon-tayga", conf)
        lab.add_clat_routes()
        lab.run_tayga("daemon-tayga", lab.ce, conf)
        with lab.flow(lab.lan, V4ONLY) as flow:
            assert lab.accepted(flow.tag)["peer"] == lab.NAT64_PUBLIC4


def _lab_pids(lab: Xlat) -> dict[str, int]:
    pids = {p.name: p.pid for p in lab.procs}
    assert {"clat", "nat64", "knot", "unbound", "tcpserver"} <= set(pids), pids
    # The Proc is `ip netns exec`, which execs: the pid is the server's own.
    return pids


def _assert_gone(names: list[str], pids: dict[str, int]) -> None:
    assert not set(names) & set(list_lab_namespaces())
    assert [name for name, pid in pids.items() if not process_gone(pid)] == []
    host_tables = subprocess.run(
        [tool("nft"), "list", "tables"], capture_output=True, text=True, check=True
    ).stdout
    assert "clatlab" not in host_tables


def test_nothing_of_the_lab_remains_after_exit_also_after_an_exception(tmp_path: Path) -> None:
    _require()
    with Xlat(tmp_path / "ok") as lab:
        names, pids = list(lab.namespaces().values()), _lab_pids(lab)
        assert all(name in list_lab_namespaces() for name in names)
    _assert_gone(names, pids)

    with pytest.raises(RuntimeError, match="boom"), Xlat(tmp_path / "boom") as lab:
        names, pids = list(lab.namespaces().values()), _lab_pids(lab)
        raise RuntimeError("boom")
    _assert_gone(names, pids)


def test_a_lab_that_fails_while_building_leaves_nothing_either(tmp_path: Path) -> None:
    _require()
    seen: dict[str, object] = {}

    class Broken(Xlat):
        def _wait_working(self) -> None:
            seen["names"], seen["pids"] = list(self.namespaces().values()), _lab_pids(self)
            raise RuntimeError("paths never worked")

    with pytest.raises(RuntimeError, match="paths never worked"), Broken(tmp_path / "broken"):
        pass
    _assert_gone(seen["names"], seen["pids"])  # type: ignore[arg-type]


def _flows(table: str, src: str | None, dst: str) -> list[str]:
    """conntrack -L lines of TCP flows to dst (from src if given)."""
    pattern = (rf"src={re.escape(src)} " if src else r"src=\S+ ") + rf"dst={re.escape(dst)} "
    lines = table.splitlines()
    return [line for line in lines if line.startswith("tcp") and re.search(pattern, line)]
