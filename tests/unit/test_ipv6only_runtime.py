"""IPv6-only names through the runtime and a model of the kernel (issue 27): the option reaches
the engine from the config (and a reload), the A the proxy gets, the IPv6 leg only."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from clat_eamt.cli import main
from clat_eamt.config import load_text
from clat_eamt.control.target import status_json
from clat_eamt.control.views import status_text
from clat_eamt.core.ipv6only import SyntheticA
from clat_eamt.core.model import AaaaStatus, Observation, Origin
from clat_eamt.dataplane.conntrack import Flow, census
from clat_eamt.present import entry_json, mappings_table
from clat_eamt.runtime import events as e
from clat_eamt.runtime.runtime import Runtime
from tests.unit.runtimekit import ModelDriver, ModelKernel
from tests.unit.standins import loopback_config
from tests.unit.test_runtime import TV

ON = "\toption ipv6_only '1'\n\tlist ipv6_only_placeholder '192.0.2.99'\n"
ON += "\toption ipv6_only_quarantine '120'\n"


def booted(extra: str = "") -> ModelDriver:
    text = loopback_config(5353, "/nonexistent.sock", "\toption host_mode 'all'\n" + extra, "")
    driver = ModelDriver(Runtime(load_text(text), 1000.0, "model"), ModelKernel(), 1000.0)
    driver.start()
    return driver


def v6only(name: str, aaaa: str, a: tuple[str, ...] = ()) -> Observation:
    return Observation(
        name, tuple(IPv4Address(x) for x in a), 300, AaaaStatus.ANSWER, (IPv6Address(aaaa),),
        300, host=TV,
    )  # fmt: skip


def test_off_by_default_nothing_is_mapped_and_the_answer_is_untouched() -> None:
    driver = booted()
    life, _ = driver.handle(e.AnswerObserved(v6only("v6.example", "2001:db8:6::1")))
    assert life is None and len(driver.runtime.engine.table) == 0
    assert driver.kernel.translator == {} and driver.kernel.dnat == {}


def test_on_the_proxy_gets_p_and_the_kernel_holds_only_the_ipv6_leg() -> None:
    driver = booted(ON)
    life, _ = driver.handle(e.AnswerObserved(v6only("v6.example", "2001:db8:6::1")))
    assert isinstance(life, SyntheticA) and life.ttl == 300
    p = IPv4Network(life.address)
    assert driver.kernel.translator == {p: IPv6Network("2001:db8:6::1")}
    assert driver.kernel.dnat == {}  # no IPv4 destination D to DNAT
    (entry,) = driver.runtime.engine.table
    assert entry.origin is Origin.IPV6_ONLY


def test_two_names_on_one_placeholder_get_their_own_p() -> None:
    driver = booted(ON)
    one, _ = driver.handle(
        e.AnswerObserved(v6only("one.example", "2001:db8:6::1", ("192.0.2.99",)))
    )
    two, _ = driver.handle(
        e.AnswerObserved(v6only("two.example", "2001:db8:6::2", ("192.0.2.99",)))
    )
    assert isinstance(one, SyntheticA) and isinstance(two, SyntheticA)
    assert one.address != two.address
    assert set(driver.kernel.translator.values()) == {
        IPv6Network("2001:db8:6::1"), IPv6Network("2001:db8:6::2"),
    }  # fmt: skip
    assert driver.kernel.dnat == {}  # the placeholder is nobody's destination


def test_a_reload_switches_it() -> None:
    driver = booted()
    text = loopback_config(5353, "/nonexistent.sock", "\toption host_mode 'all'\n" + ON, "")
    driver.handle(e.Reconfigured(load_text(text)))
    assert driver.runtime.engine.ipv6_only.enabled
    assert driver.runtime.engine.ipv6_only.quarantine == 120
    life, _ = driver.handle(e.AnswerObserved(v6only("v6.example", "2001:db8:6::1")))
    assert isinstance(life, SyntheticA)


def shown(report: dict[str, object]) -> list[str]:
    """The CLI status's ipv6-only line(s) for a report with this ipv6_only part."""
    status = {
        "version": "0", "uptime": 1, "listen": "127.0.0.1#53", "enabled": True,
        "dataplane": {"name": "x", "error": None, "last_error": None, "install": None},
        "pref64": {"prefixes": [], "source": "none"},
        "upstreams": {"servers": [], "source": "config", "problem": None},
        "hosts": {"ipv4_only": 0, "dual_stack": 0, "unsure": False, "error": None},
        "mappings": 0, "summary": {}, "flows": None, "control": {"error": None},
        "ipv6_only": report["ipv6_only"],
    }  # fmt: skip
    return [line for line in status_text(status).splitlines() if line.startswith("ipv6-only")]


def test_status_shows_the_kind_its_mappings_and_quarantine_only_when_on() -> None:
    report = status_json(booted().runtime.snapshot(1000.0))
    assert report["ipv6_only"] == {"enabled": False, "mappings": 0, "quarantined": 0, "answers": 0}
    assert shown(report) == []
    driver = booted(ON)
    driver.handle(e.AnswerObserved(v6only("v6.example", "2001:db8:6::1")))
    snap = driver.runtime.snapshot(1000.0, entries=True)
    report = status_json(snap)
    assert report["ipv6_only"] == {"enabled": True, "mappings": 1, "quarantined": 0, "answers": 1}
    [line] = shown(report)
    assert "1 mappings now, 1 A answers made, 0 pool addresses in quarantine" in line
    rows = [entry_json(entry, 1000.0) for entry in snap.entries or ()]
    assert [r["origin"] for r in rows] == ["ipv6-only"]
    assert "ipv6-only" in mappings_table(rows)


def test_the_flow_census_counts_flows_to_p_itself_as_native_on_its_entry() -> None:
    pool = IPv4Network("198.51.100.128/25")
    p, d = IPv4Address("198.51.100.129"), IPv4Address("192.0.2.10")
    flows = [
        Flow(p, p, dnat=False, proto=6, tcp_state=3),  # to P itself: an IPv6-only name's A
        Flow(d, IPv4Address("198.51.100.130"), dnat=True, proto=6, tcp_state=3),
        Flow(IPv4Address("192.0.2.20"), IPv4Address("192.0.2.20"), dnat=False, proto=6),
    ]
    counted = census(flows, pool)
    assert counted.totals(()) == {"native": 2, "nat64": 1}
    driver = booted(ON)
    driver.handle(e.AnswerObserved(v6only("v6.example", "2001:db8:6::1")))
    (entry,) = driver.runtime.engine.table
    assert counted.flows_of(entry) == 1


def test_a_restart_keeps_the_p_it_finds_from_other_names_and_gives_it_back_to_its_own() -> None:
    first = booted(ON)
    life, _ = first.handle(e.AnswerObserved(v6only("v6.example", "2001:db8:6::1")))
    assert isinstance(life, SyntheticA)
    kernel, p = first.kernel, IPv4Network(life.address)
    second = ModelDriver(Runtime(first.runtime.cfg, 2000.0, "model"), kernel, 2000.0)  # SIGKILL
    second.start()
    assert kernel.translator == {}  # the old leg went: a device's old P goes nowhere
    other, _ = second.handle(e.AnswerObserved(v6only("other.example", "2001:db8:6::2")))
    assert isinstance(other, SyntheticA) and other.address != life.address
    again, _ = second.handle(e.AnswerObserved(v6only("v6.example", "2001:db8:6::1")))
    assert isinstance(again, SyntheticA) and again.address == life.address
    assert kernel.translator[p] == IPv6Network("2001:db8:6::1")
    second.runtime.engine.table.check_invariants()


def test_explain_answers_an_ipv6_only_name_as_the_daemon_does(capsys) -> None:  # type: ignore[no-untyped-def]
    lab = ["--allow-documentation", "--pref64", "2001:db8:64::/96", "--host-mode", "all"]
    step = "v6.example a= aaaa=2001:db8:1::70"
    assert main(["explain", "--json", *lab, "--ipv6-only", "1", step]) == 0
    [entry] = json.loads(capsys.readouterr().out)["table"]
    assert (entry["origin"], entry["ipv4"], entry["ipv6"]) == (
        "ipv6-only",
        entry["pool"],
        "2001:db8:1::70",
    )
    assert main(["explain", "--json", *lab, step]) == 0  # off by default
    assert json.loads(capsys.readouterr().out)["table"] == []
