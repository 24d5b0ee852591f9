"""The daemon's DNSSEC condition (`require_dnssec`) against real servers: knot signs lab.example,
unbound validates it with the zone's own key as its only trust anchor (labkit `dnssec=True`).

With `require_dnssec 1` the daemon sets AD on the A query it forwards (RFC 6840 5.7) and AD+DO
on its AAAA side query, and only a name whose A and AAAA answers both came back with AD may be
mapped.  The client here asks without DO and without AD, so an authenticated observation proves
that the daemon asked for AD itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dnslib import QTYPE

from tests.integration.proxykit import Daemon, start_daemon
from tests.labkit import LAB, SLOW, DnsChain, answers, dns64, rcode
from tests.labkit.require import SERVER_TOOLS, require_tools

NOT_VALIDATED = "not-validated"  # clat_eamt.core.model.Reason.NOT_VALIDATED


@pytest.fixture(scope="module")
def dnssec_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsChain]:
    require_tools(*SERVER_TOOLS)
    with DnsChain(tmp_path_factory.mktemp("dnssec_chain"), dnssec=True) as chain:
        yield chain


@pytest.fixture(scope="module")
def strict(dnssec_chain: DnsChain) -> Iterator[Daemon]:
    """The daemon requiring DNSSEC in front of the validating unbound."""
    d = start_daemon(dnssec_chain, "clat-eamt-dnssec", require_dnssec="1")
    yield d
    dnssec_chain.procs.stop(d.proc.name)


def events(decision: dict) -> list[tuple[str, str, str]]:
    return [
        (e["kind"], e["entry"]["ipv4"], e["entry"]["ipv6"]) for e in decision["outcome"]["events"]
    ]


def reasons(decision: dict) -> list[str]:
    return [r["reason"] for r in decision["outcome"]["decision"]["refusals"]]


def one(zone_addresses: set[str]) -> str:
    [address] = zone_addresses
    return address


# -- the signed chain itself --------------------------------------------------------------------
def test_unbound_validates_lab_example_and_only_says_so_when_asked(dnssec_chain: DnsChain):
    assert [a.split()[3:6] for a in dnssec_chain.trust_anchors] == [["DNSKEY", "257", "3"]]
    for qtype in ("A", "AAAA"):
        want = sorted(LAB.addresses("ds1", qtype))
        with_do = dnssec_chain.query("ds1.lab.example", qtype, do=True)
        assert (rcode(with_do), with_do.header.ad) == ("NOERROR", 1)
        assert sorted(answers(with_do, qtype)) == want
        assert [str(rr.rdata).split()[0] for rr in with_do.rr if rr.rtype == QTYPE.RRSIG] == [qtype]
        with_ad = dnssec_chain.query("ds1.lab.example", qtype, ad=True)  # RFC 6840 5.7
        assert (with_ad.header.ad, sorted(answers(with_ad))) == (1, want)  # no RRSIG without DO
        plain = dnssec_chain.query("ds1.lab.example", qtype)
        assert (plain.header.ad, sorted(answers(plain))) == (0, want)


def test_unsigned_zones_stay_insecure_not_bogus(dnssec_chain: DnsChain):
    # First an NXDOMAIN whose NSEC also covers slow.lab.example (not delegated in lab.example):
    # unbound still asks the slow.lab.example stub instead of synthesizing NXDOMAIN from it.
    nx = dnssec_chain.query("sm.lab.example", do=True)
    assert rcode(nx) == "NXDOMAIN"
    nsec = [(str(rr.rname), str(rr.rdata).split()[0]) for rr in nx.auth if rr.rtype == QTYPE.NSEC]
    assert ("short.lab.example.", "v4only.lab.example.") in nsec
    for qtype in ("A", "AAAA"):
        r = dnssec_chain.query(SLOW.origin, qtype, do=True)  # domain-insecure below the anchor
        assert (rcode(r), r.header.ad) == ("NOERROR", 0)
        assert set(answers(r, qtype)) == SLOW.addresses("@", qtype)
    pref64 = dnssec_chain.query("ipv4only.arpa", "AAAA", do=True)  # no anchor above it
    assert (rcode(pref64), pref64.header.ad) == ("NOERROR", 0)
    assert sorted(answers(pref64)) == sorted([dns64("192.0.0.170"), dns64("192.0.0.171")])


def test_a_synthesized_aaaa_of_a_signed_name_is_authenticated_too(dnssec_chain: DnsChain):
    """RFC 6147 5.5: the NODATA and the A validated, so unbound sets AD on what it made."""
    r = dnssec_chain.query("v4only.lab.example", "AAAA", do=True)
    assert answers(r, "AAAA") == [dns64(one(LAB.addresses("v4only")))]
    assert r.header.ad == 1


# -- the daemon requiring DNSSEC ----------------------------------------------------------------
def test_validated_dual_stack_name_is_mapped(strict: Daemon):
    reply = strict.query("ds11.lab.example")  # no DO, no AD: the daemon asks for AD itself
    ipv4, ipv6 = one(LAB.addresses("ds11")), one(LAB.addresses("ds11", "AAAA"))
    assert answers(reply, "A") == [ipv4]
    decision = strict.wait_decision("ds11.lab.example")
    assert decision["observation"]["authenticated"] is True
    assert decision["observation"]["aaaa"] == [ipv6]
    assert reasons(decision) == []
    assert events(decision) == [("added", ipv4, ipv6)]


def test_insecure_name_is_refused_by_a_validating_resolver(strict: Daemon):
    reply = strict.query(SLOW.origin)
    assert answers(reply, "A") == [one(SLOW.addresses("@"))]  # the answer is released anyway
    decision = strict.wait_decision(SLOW.origin.rstrip("."))
    assert decision["observation"]["authenticated"] is False
    assert decision["observation"]["aaaa"] == [one(SLOW.addresses("@", "AAAA"))]
    assert reasons(decision) == [NOT_VALIDATED]
    assert events(decision) == []


def test_authenticated_synthesized_aaaa_is_still_refused(strict: Daemon):
    strict.query("v4only12.lab.example")
    decision = strict.wait_decision("v4only12.lab.example")
    ipv4 = one(LAB.addresses("v4only12"))
    assert decision["observation"]["authenticated"] is True  # see the chain test above
    assert decision["observation"]["aaaa"] == [dns64(ipv4)]
    assert reasons(decision) == ["synthesized"]
    assert events(decision) == []


# -- the same daemon in front of a resolver that does not validate ------------------------------
@pytest.mark.parametrize(("require", "label"), [("1", "ds12"), ("0", "ds13")])
def test_unvalidated_answers_map_only_when_dnssec_is_not_required(
    dns_chain: DnsChain, require: str, label: str
):
    d = start_daemon(dns_chain, f"clat-eamt-require-{require}", require_dnssec=require)
    try:
        name = f"{label}.lab.example"
        ipv4, ipv6 = one(LAB.addresses(label)), one(LAB.addresses(label, "AAAA"))
        assert answers(d.query(name), "A") == [ipv4]  # released in both cases
        decision = d.wait_decision(name)
        assert decision["observation"]["authenticated"] is False  # no validator: never AD
        assert decision["observation"]["aaaa"] == [ipv6]
        if require == "1":
            assert reasons(decision) == [NOT_VALIDATED]
            assert events(decision) == []
            assert d.status()["mappings"] == 0
        else:
            assert reasons(decision) == []
            assert events(decision) == [("added", ipv4, ipv6)]
            assert d.status()["mappings"] == 1
    finally:
        dns_chain.procs.stop(d.proc.name)
