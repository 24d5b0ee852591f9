"""The demo's pure parts: which path a flow took by the server's log, the counts and the last
line of the report, and what the demo zone offers the workload (tests/demo)."""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest

from tests.demo.plan import (
    CONFLICT,
    MULTI,
    SHORT,
    V4ONLY,
    Plan,
    catalogue,
    ipv6_only_targets,
    roles,
)
from tests.demo.report import (
    DUAL_STACK,
    IPV4_ONLY,
    NAT64,
    NATIVE,
    OTHER,
    RULE_CONFLICT,
    UNSEEN,
    Facts,
    FlowRecord,
    classify,
    ipv6_only_lines,
    ipv6_only_ok,
    parse_last_line,
    path_of,
    percentile,
    render,
    summarize,
)
from tests.labkit.zone import DEMO, all_zones

NAT64_PUBLIC4 = "203.0.113.1"
CLAT6 = "2001:db8:ce:c1a7::66"


def flow(tag: str, **kw: object) -> FlowRecord:
    fields: dict[str, object] = {
        "client": "lan",
        "host_class": IPV4_ONLY,
        "name": "ds1.demo.example.",
        "dest_kind": DUAL_STACK,
        "addr": "192.0.2.128",
    }
    fields.update(kw)
    return FlowRecord(tag, **fields)  # type: ignore[arg-type]


def test_the_peer_the_server_saw_tells_the_path() -> None:
    assert path_of(NAT64_PUBLIC4, NAT64_PUBLIC4) == NAT64
    assert path_of(CLAT6, NAT64_PUBLIC4) == NATIVE
    assert path_of("2001:db8:ce:1::11", NAT64_PUBLIC4) == NATIVE
    assert path_of(None, NAT64_PUBLIC4) == UNSEEN
    assert path_of("198.51.100.10", NAT64_PUBLIC4) == OTHER


def test_server_events_are_matched_to_flows_by_their_tag() -> None:
    events = [
        {"event": "listening", "port": 8080},
        {"event": "accepted", "id": 1, "peer": CLAT6},
        {"event": "accepted", "id": 2, "peer": NAT64_PUBLIC4},
        {"event": "first", "id": 2, "line": "b"},
        {"event": "first", "id": 1, "line": "a"},
        {"event": "closed", "id": 1, "bytes": 10, "duration": 0.1},
    ]
    flows = [flow("a"), flow("b"), flow("never")]
    classify(flows, events, NAT64_PUBLIC4)
    assert [(f.path, f.peer) for f in flows] == [
        (NATIVE, CLAT6),
        (NAT64, NAT64_PUBLIC4),
        (UNSEEN, None),
    ]
    assert flows[2].failed and not flows[0].failed


def test_summary_counts_and_last_line() -> None:
    flows = [
        flow("native", path=NATIVE),
        flow("excluded", path=NAT64, allowance=RULE_CONFLICT),
        flow("v4", dest_kind=IPV4_ONLY, addr="203.0.113.124", path=NAT64),
        flow("via dns64", host_class=DUAL_STACK, dest_kind=IPV4_ONLY, addr="64::1", path=NAT64),
        flow("ds6", host_class=DUAL_STACK, addr="2001:db8:d::1", path=NATIVE),
        flow("ds4", host_class=DUAL_STACK, path=NAT64),
    ]
    s = summarize(flows)
    assert (len(s.eligible), len(s.native), len(s.excluded), len(s.unexpected)) == (2, 1, 1, 0)
    assert (len(s.v4only), len(s.v4only_ok), len(s.failed), len(s.ds_client)) == (2, 2, 0, 3)
    assert s.ok
    line = s.last_line()
    assert line == "demo: eligible flows native 1/2, ipv4-only flows ok 2/2, failed flows 0"
    assert parse_last_line(line) == {
        "native": 1, "eligible": 2, "v4only_ok": 2, "v4only": 2, "failed": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (flow("nat64 without a rule", path=NAT64), "unexpected"),
        (flow("v4 native?", dest_kind=IPV4_ONLY, path=NATIVE), "v4only"),
        (flow("steered", host_class=DUAL_STACK, path=NATIVE), "ds_steered"),
        (flow("reset", path=NATIVE, error="data: ConnectionResetError()"), "failed"),
        (flow("unseen"), "failed"),
    ],
)
def test_what_fails_the_demo(bad: FlowRecord, why: str) -> None:
    s = summarize([flow("fine", path=NATIVE), bad])
    assert not s.ok
    if why != "v4only":
        assert getattr(s, why) == [bad]
    assert parse_last_line(s.last_line())["failed"] == len(s.failed)


def test_a_failed_eligible_flow_is_not_native() -> None:
    s = summarize([flow("x", path=NATIVE, error="long flow stalled 6.0 s")])
    assert (len(s.native), len(s.eligible), len(s.failed)) == (0, 1, 1)


@pytest.mark.parametrize(
    "line",
    [
        "demo: eligible flows native 1/2, ipv4-only flows ok 2/2, failed flows 0 ",
        "demo: eligible flows native 1/2, ipv4-only flows ok 2/2",
        "eligible flows native 1/2, ipv4-only flows ok 2/2, failed flows 0",
    ],
)
def test_parse_last_line_rejects_other_lines(line: str) -> None:
    with pytest.raises(ValueError, match="not the demo's last line"):
        parse_last_line(line)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0, 99.0, 100.0,
    )  # fmt: skip
    assert percentile([3.0], 99) == 3.0


def test_demo_zone_has_every_kind_of_name_on_its_own_addresses() -> None:
    targets = catalogue(DEMO)
    assert len(targets) >= 200
    groups = Counter(t.group for t in targets)
    assert groups[CONFLICT] == 2 and groups[MULTI] and groups[SHORT] and groups[V4ONLY]
    mappable = {a for t in targets if t.aaaa for a in t.a}
    assert len(mappable) < 100  # the 128-address mapping pool never runs out
    nat64_pool = ipaddress.ip_network("203.0.113.192/26")
    lan = ipaddress.ip_network("198.51.100.0/24")
    others = {
        r.rdata for z in all_zones() if z is not DEMO for r in z.records if r.rtype in ("A", "AAAA")
    }
    for target in targets:
        for addr in (*target.a, *target.aaaa):
            assert addr not in others
            ip = ipaddress.ip_address(addr)
            assert ip not in nat64_pool and ip not in lan


def test_roles_give_each_client_a_long_flow_and_visit_every_name() -> None:
    targets = catalogue(DEMO)
    plan = Plan(clients=3, visits=2)
    r = roles(targets, plan)
    assert len(r.long) == 3 and all(t.group == SHORT for t in r.long)
    assert [t.name for t in r.conflict] == ["conflict-a.demo.example.", "conflict-b.demo.example."]
    visited = {t.name for _, t in r.sweep}
    special = {t.name for t in (*r.long, *r.conflict)}
    assert visited == {t.name for t in targets} - special
    assert r.pinned.name in visited
    per_client = Counter(i for i, _ in r.sweep)
    assert set(per_client) == {-1, 0, 1, 2}


def test_render_lists_each_excluded_flow_with_its_rule_and_the_mapping_table() -> None:
    flows = [
        flow("native", path=NATIVE, group="plain"),
        flow(
            "excluded",
            path=NAT64,
            allowance=RULE_CONFLICT,
            group="conflict",
            name="conflict-b.demo.example.",
            addr="192.0.2.210",
        ),
        flow("v4", dest_kind=IPV4_ONLY, addr="203.0.113.124", path=NAT64, group="ipv4-only"),
    ]
    mappings = [
        {"ipv4": "192.0.2.128", "ipv6": "2001:db8:d::1", "pool": "198.51.100.150",
         "state": "valid", "stale_reason": None, "expires_in": 297.2, "flows": 1,
         "fqdn": "ds1.demo.example.", "fqdns": ["ds1.demo.example.", "www1.demo.example."]},
        {"ipv4": "192.0.2.210", "ipv6": "2001:db8:d::3:a", "pool": "198.51.100.133",
         "state": "stale", "stale_reason": "conflict", "expires_in": -0.4, "flows": 0,
         "fqdn": "conflict-a.demo.example.", "fqdns": []},
    ]  # fmt: skip
    facts = Facts(
        config_path="demo.uci",
        config_text="config globals 'globals'\n\toption host_mode 'ipv4-only'\n",
        commands={"status": "clat-eamt status", "mappings": "clat-eamt mappings", "hosts": "h"},
        hosts=["lan 198.51.100.10 ipv4-only"],
        dns_times=[0.001, 0.002, 0.050],
        dns_failures=[],
        mappings=mappings,
        status_text="mappings    2 now; created 2\nrefused     synthesized 1\n",
        notes=["clients classified 3.2 s after they first talked"],
        timings={"sweep": 2.5},
    )
    lines, summary = render(flows, facts)
    text = "\n".join(lines)
    assert "option host_mode 'ipv4-only'" in text
    assert f"* {RULE_CONFLICT}:" in text
    assert "lan -> 192.0.2.210 (conflict-b.demo.example): nat64" in text
    assert "native 1/2 (50.0%), NAT64 by rule 1, NAT64 unexplained 0" in text
    assert "   refused     synthesized 1\n" in text
    assert "p50 2.0 ms, p99 50.0 ms" in text
    row = "192.0.2.128 2001:db8:d::1 198.51.100.150 valid 297s 1 ds1.demo.example +1"
    assert any(line.split() == row.split() for line in lines)
    assert any("stale(conflict)" in line and " 0s " in line for line in lines)
    assert not lines[-1].startswith("demo: ")  # the last line is the caller's to print
    assert summary.last_line().startswith("demo: eligible flows native 1/2")


def test_the_ipv6_only_section_counts_flows_that_reached_their_own_server() -> None:
    [first, *_] = targets = ipv6_only_targets(DEMO)
    assert len(targets) == 3 and all(t.aaaa and not t.a for t in targets)
    assert all(t.name not in {c.name for c in catalogue(DEMO)} for t in targets)  # not swept
    own = first.aaaa[0]

    def v6(tag: str, **kw: object) -> FlowRecord:
        base = {"path": NATIVE, "local": own, "targets": first.aaaa, "name": first.name}
        return flow(tag, **{**base, **kw})

    good = [
        v6("a", addr="198.51.100.129", note="A answer"),
        v6("b", host_class=DUAL_STACK, addr=own, note="AAAA answer"),
        v6("c", host_class=DUAL_STACK, addr="198.51.100.129", note="A answer"),
    ]
    assert ipv6_only_ok(good)
    lines = ipv6_only_lines(good)
    assert "IPv4-only clients native to the name's own server 1/1" in lines[0]
    assert "dual-stack client over IPv6 1/1, to the pool address (native too) 1/1" in lines[0]
    assert lines[0].endswith("A answers from the pool 2")
    for bad in (v6("c", local="2001:db8:d::4:2"), v6("d", path=NAT64), v6("e", error="DNS A")):
        assert not ipv6_only_ok([*good, bad])
        assert any(line.startswith("   NOT OK: ") for line in ipv6_only_lines([*good, bad]))
