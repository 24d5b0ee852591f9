"""The AAAA answers the proxy keeps for their TTL (dns.remembered): kept and reused as a cache
would (RFC 1035 / 2181 / 2308), by the AAAA's own TTL, bounded; and the proxy asks AAAA beside
an A again only once the kept answer's TTL has ended."""

from __future__ import annotations

import asyncio
import tracemalloc
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from dnslib import QTYPE, RR, DNSRecord

from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.core.model import AaaaStatus, Observation
from clat_eamt.dns import answers
from clat_eamt.dns.answers import AddressAnswer
from clat_eamt.dns.proxy import Proxy, ProxySettings
from clat_eamt.dns.remembered import RememberedAaaa, name_key
from clat_eamt.dns.upstream import Upstreams
from tests.unit.dnspeer import ScriptedPeer

X = IPv6Address("2001:db8:1::10")
Y = IPv6Address("2001:db8:1::11")
KEY = name_key((b"ds", b"lab", b"example"))


def found(*addresses: IPv6Address, authenticated: bool = False) -> AddressAnswer:
    return AddressAnswer(AaaaStatus.ANSWER, addresses, 60, authenticated=authenticated)


def test_an_answer_is_recalled_with_the_ttl_it_has_left_until_it_ends():
    memory = RememberedAaaa()
    memory.remember(KEY, found(Y, X), 60, now=100.0)
    kept = memory.recall(KEY, now=120.5)
    assert kept is not None and kept.status is AaaaStatus.ANSWER
    assert kept.addresses == (Y, X) and kept.ttl == 39  # whole seconds left, rounded down
    assert memory.recall(KEY, now=158.9) is not None
    assert memory.recall(KEY, now=159.5) is None and len(memory) == 0  # ended: forgotten


def test_names_compare_case_insensitively_and_a_dot_in_a_label_is_another_name():
    memory = RememberedAaaa()
    memory.remember(name_key((b"DS", b"Lab", b"example")), found(X), 60, now=0.0)
    assert memory.recall(KEY, now=1.0) is not None
    assert memory.recall(name_key((b"ds.lab", b"example")), now=1.0) is None


@pytest.mark.parametrize(
    ("answer", "ttl"),
    [
        (AddressAnswer(AaaaStatus.SERVFAIL), 60),  # a failure says nothing to keep
        (found(X), 0),  # TTL 0: use once, keep never (RFC 1035 section 3.2.1)
    ],
)
def test_failures_and_ttl_zero_are_not_kept_and_drop_an_older_answer(answer, ttl):
    memory = RememberedAaaa()
    memory.remember(KEY, found(Y), 60, now=0.0)
    memory.remember(KEY, answer, ttl, now=1.0)
    assert memory.recall(KEY, now=2.0) is None


def test_no_aaaa_is_kept_too_and_the_authenticated_flag_with_it():
    memory = RememberedAaaa()
    memory.remember(KEY, AddressAnswer(AaaaStatus.NODATA, authenticated=True), 30, now=0.0)
    kept = memory.recall(KEY, now=10.0)
    assert kept is not None and kept.status is AaaaStatus.NODATA and kept.addresses == ()
    assert kept.authenticated and kept.ttl == 20


def test_the_memory_is_bounded_oldest_first():
    memory = RememberedAaaa(capacity=2)
    keys = [name_key((f"n{i}".encode(), b"example")) for i in range(3)]
    for i, key in enumerate(keys):
        memory.remember(key, found(X), 60, now=float(i))
    assert len(memory) == 2 and memory.recall(keys[0], now=3.0) is None
    assert memory.recall(keys[2], now=3.0) is not None
    with pytest.raises(ValueError):
        RememberedAaaa(capacity=0)


def test_one_name_costs_about_what_the_module_says():
    """The module doc's figure per name (~200 bytes), so the README's memory figures hold."""
    memory = RememberedAaaa(capacity=4096)
    keys = [name_key((f"name{i}".encode(), b"cdn", b"example")) for i in range(2000)]
    answer = found(X)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for key in keys:
        memory.remember(key, answer, 60, now=0.0)
    per_name = (tracemalloc.get_traced_memory()[0] - before) / len(keys)
    tracemalloc.stop()
    assert 100 < per_name < 300, per_name


def soa(name: str, ttl: int, minimum: int) -> RR:
    text = f"{name}. {ttl} IN SOA ns.{name}. admin.{name}. 1 7200 3600 1209600 {minimum}"
    return RR.fromZone(text)[0]


@pytest.mark.parametrize(("soa_ttl", "minimum", "kept"), [(300, 60, 60), (30, 60, 30)])
def test_a_negative_answer_is_kept_for_its_soa_ttl_or_minimum_rfc2308(soa_ttl, minimum, kept):
    reply = DNSRecord.question("v4only.lab.example", "AAAA").reply()
    reply.add_auth(soa("lab.example", soa_ttl, minimum))
    answer = answers.parse(reply.pack())
    read = answers.read_addresses(answer, "v4only.lab.example", QTYPE.AAAA)
    assert read.status is AaaaStatus.NODATA and answers.keep_for(answer, read) == kept


def test_a_negative_answer_without_soa_is_not_kept():
    answer = answers.parse(DNSRecord.question("v4only.lab.example", "AAAA").reply().pack())
    read = answers.read_addresses(answer, "v4only.lab.example", QTYPE.AAAA)
    assert answers.keep_for(answer, read) == 0


# --- the proxy --------------------------------------------------------------------------------


def zone(a_ttl: int, aaaa_ttl: int, aaaa: str = str(X)):
    """ds.lab.example: A with ``a_ttl``, AAAA ``aaaa`` with ``aaaa_ttl``."""

    def respond(data: bytes) -> list[bytes]:
        query = DNSRecord.parse(data)
        reply = query.reply()
        if query.q.qtype == QTYPE.A:
            reply.add_answer(*RR.fromZone(f"ds.lab.example. {a_ttl} IN A 192.0.2.10"))
        elif query.q.qtype == QTYPE.AAAA:
            reply.add_answer(*RR.fromZone(f"ds.lab.example. {aaaa_ttl} IN AAAA {aaaa}"))
        return [reply.pack()]

    return respond


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Observation] = []

    async def __call__(self, obs: Observation) -> None:
        self.seen.append(obs)


class Clock:
    """The proxy's time, moved by the test (no sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def proxy_for(port: int, clock: Clock | None = None, **settings: object) -> tuple[Proxy, Recorder]:
    servers = [ServerAddress(ip_address("127.0.0.1"), port)]
    recorder = Recorder()
    upstreams = Upstreams(lambda: servers, 1.0, clock or Clock())
    proxy = Proxy(upstreams, recorder, ProxySettings(**settings))  # type: ignore[arg-type]
    return proxy, recorder


def aaaa_asked(received: list[bytes]) -> int:
    return sum(1 for data in received if DNSRecord.parse(data).q.qtype == QTYPE.AAAA)


def ask(name: str = "ds.lab.example") -> bytes:
    return DNSRecord.question(name, "A").pack()


def test_the_aaaa_beside_an_a_is_asked_again_only_when_its_own_ttl_ended():
    """A TTL 300, AAAA TTL 2: the second A within the AAAA's TTL is decided on the kept AAAA
    (with its TTL left, no upstream AAAA); once the AAAA's TTL ended (not the A's), asked again
    and what it says now is what the decision sees."""
    answer = {"aaaa": str(X)}

    def respond(data: bytes) -> list[bytes]:
        return zone(300, 2, answer["aaaa"])(data)

    async def scenario():
        async with ScriptedPeer(respond) as peer:
            clock = Clock()
            proxy, seen = proxy_for(peer.port, clock)
            await proxy.handle(ask(), IPv4Address("127.0.0.1"), False)
            clock.now += 1.0
            await proxy.handle(ask("DS.lab.example"), IPv4Address("127.0.0.1"), False)
            asked_within = aaaa_asked(peer.received)
            answer["aaaa"] = str(Y)  # the name moved; the kept answer still says X
            clock.now += 1.0  # the AAAA's 2 s have passed (the A's 300 s have not)
            await proxy.handle(ask(), IPv4Address("127.0.0.1"), False)
            return asked_within, aaaa_asked(peer.received), seen.seen, proxy.counters

    within, total, [first, second, third], counters = asyncio.run(scenario())
    assert within == 1 and total == 2
    assert first.aaaa == second.aaaa == (X,) and first.aaaa_ttl == 2 and second.aaaa_ttl == 1
    assert second.a_ttl == 300  # the A's own TTL is not what the AAAA is kept by
    assert third.aaaa == (Y,) and third.aaaa_ttl == 2
    assert counters["aaaa.remembered"] == 1 and counters["aaaa.asked"] == 2


def test_a_kept_answer_without_ad_is_not_used_when_dnssec_is_required():
    async def scenario():
        async with ScriptedPeer(zone(300, 300)) as peer:
            proxy, _ = proxy_for(peer.port)
            await proxy.handle(ask(), IPv4Address("127.0.0.1"), False)
            proxy.settings = ProxySettings(require_dnssec=True)
            await proxy.handle(ask(), IPv4Address("127.0.0.1"), False)
            return aaaa_asked(peer.received)

    assert asyncio.run(scenario()) == 2


def test_a_timed_out_aaaa_is_not_kept_the_next_a_asks_again():
    def no_aaaa(data: bytes) -> list[bytes]:
        return [] if DNSRecord.parse(data).q.qtype == QTYPE.AAAA else zone(300, 300)(data)

    async def scenario():
        async with ScriptedPeer(no_aaaa) as peer:
            proxy, seen = proxy_for(peer.port, hold=0.02)
            for _ in range(2):
                await proxy.handle(ask(), IPv4Address("127.0.0.1"), False)
            return seen.seen, proxy.counters

    observations, counters = asyncio.run(scenario())
    assert all(o.aaaa_status is AaaaStatus.TIMEOUT for o in observations)
    # asked twice (the second joins the first one still in flight: one upstream query)
    assert counters["aaaa.asked"] == 2 and counters["aaaa.remembered"] == 0
