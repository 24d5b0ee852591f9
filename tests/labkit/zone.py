"""The test zones as data, rendered to zone files for knot.

Tests name their expectations from the same data (`LAB.addresses("ds", "AAAA")`), so adding a
name here is the only step to use it.  Every address is a documentation address (192.0.2/24,
198.51.100/24, 203.0.113/24, 2001:db8::/32), except the RFC 7050 well-known 192.0.0.170/171 in
ipv4only.arpa.

- `lab.example.` on the main knot: the names most tests use.
- `slow.lab.example.` on a second knot, so a test can drop the AAAA queries to that server
  (`chain.slow_aaaa`) and make AAAA slow while A stays fast.
- `ipv4only.arpa.` so RFC 7050 Pref64 discovery through unbound's DNS64 works.
- `demo.example.` for `make demo`: ~200 names of the kinds a home network meets (see
  `demo_zone`), on addresses no other zone uses, so the demo's expectations cannot collide
  with the lab tests'.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

# The only addresses tests may use (the project's rule; RFC 5737 and RFC 3849).
DOCUMENTATION_NETS = [
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]
DEFAULT_TTL = 300
SHORT_TTL = 2
NEGATIVE_TTL = 60  # SOA minimum: how long resolvers cache NODATA / NXDOMAIN
DNS64_PREFIX = "2001:db8:64::/96"  # network-specific (SPEC 7: tayga rejects doc IPv4 with WKP)
WKA = ("192.0.0.170", "192.0.0.171")  # RFC 7050 well-known IPv4 of ipv4only.arpa
FRESH_NAMES = 20  # ds1 .. ds20
BENCH_NAMES = 60  # b0..b59.lab.example: 203.0.113.64-123, 2001:db8:2::1-3c


@dataclass(frozen=True)
class Record:
    """One resource record; `name` is relative to the zone ("@" is the apex) or absolute."""

    name: str
    rtype: str
    rdata: str
    ttl: int | None = None


@dataclass
class Zone:
    """A zone: origin plus records (SOA and NS are added when rendered)."""

    origin: str
    records: list[Record] = field(default_factory=list)
    ttl: int = DEFAULT_TTL
    ns: str = "ns.lab.example."

    def add(self, name: str, rtype: str, *rdata: str, ttl: int | None = None) -> Zone:
        for value in rdata:
            self.records.append(Record(name, rtype.upper(), value, ttl))
        return self

    def fqdn(self, name: str) -> str:
        """Absolute name: ds -> ds.lab.example. (absolute names are kept)."""
        if name == "@":
            return self.origin
        return name if name.endswith(".") else f"{name}.{self.origin}"

    def rdata(self, name: str, rtype: str) -> list[str]:
        """The rdata strings of `name`/`rtype` in zone order ([] when there are none)."""
        fq = self.fqdn(name).lower()
        return [
            r.rdata for r in self.records if self.fqdn(r.name).lower() == fq and r.rtype == rtype
        ]

    def addresses(self, name: str, rtype: str = "A") -> set[str]:
        """A or AAAA addresses of a name, normalised (compare with dnslib's str())."""
        return {str(ipaddress.ip_address(v)) for v in self.rdata(name, rtype)}

    def render(self, serial: int = 1) -> str:
        """Zone file text (for knot)."""
        lines = [
            f"$ORIGIN {self.origin}",
            f"$TTL {self.ttl}",
            f"@ {self.ttl} IN SOA {self.ns} hostmaster.lab.example. "
            f"{serial} 3600 600 86400 {NEGATIVE_TTL}",
            f"@ {self.ttl} IN NS {self.ns}",
        ]
        for rec in self.records:
            lines.append(f"{rec.name} {rec.ttl or self.ttl} IN {rec.rtype} {rec.rdata}")
        return "\n".join(lines) + "\n"


def dns64(ipv4: str, prefix: str = DNS64_PREFIX) -> str:
    """The address a /96 DNS64 synthesizes for `ipv4` (192.0.2.20 -> 2001:db8:64::c000:214)."""
    net = ipaddress.IPv6Network(prefix)
    assert net.prefixlen == 96, "only /96 prefixes here"
    return str(ipaddress.IPv6Address(int(net.network_address) | int(ipaddress.IPv4Address(ipv4))))


def lab_zone() -> Zone:
    zone = Zone("lab.example.")
    zone.add("ns", "A", "192.0.2.53").add("ns", "AAAA", "2001:db8:1::53")
    zone.add("ds", "A", "192.0.2.10").add("ds", "AAAA", "2001:db8:1::10")
    zone.add("v4only", "A", "192.0.2.20")
    zone.add("v6only", "AAAA", "2001:db8:1::70")
    zone.add("cname", "CNAME", "edge.cdn.lab.example.")
    zone.add("edge.cdn", "A", "192.0.2.30").add("edge.cdn", "AAAA", "2001:db8:1::30")
    zone.add("multi", "A", "192.0.2.41", "192.0.2.42", "192.0.2.43")
    zone.add("multi", "AAAA", "2001:db8:1::40")
    zone.add("short", "A", "192.0.2.60", ttl=SHORT_TTL)
    zone.add("short", "AAAA", "2001:db8:1::60", ttl=SHORT_TTL)
    # 120 A records: ~1.9 kB of answer, more than 1232 bytes (TC over UDP), fine over TCP.
    zone.add("big", "A", *[f"203.0.113.{i}" for i in range(1, 61)])
    zone.add("big", "A", *[f"198.51.100.{i}" for i in range(1, 61)])
    # Fresh dual-stack names for `make bench`'s bursts of new mappings.
    for i in range(BENCH_NAMES):
        zone.add(f"b{i}", "A", f"203.0.113.{64 + i}").add(f"b{i}", "AAAA", f"2001:db8:2::{i + 1:x}")
    # Two names that map one IPv4 to different IPv6 addresses (a reverse proxy): a conflict.
    zone.add("conflict-a", "A", "192.0.2.71").add("conflict-a", "AAAA", "2001:db8:1::71")
    zone.add("conflict-b", "A", "192.0.2.71").add("conflict-b", "AAAA", "2001:db8:1::72")
    # Issue 13: a long A TTL with a short AAAA TTL (the mapping lives as long as the AAAA), one
    # more to reuse past its TTL, and hostile names that claim a victim's IPv4 (v4only's, and
    # victim's) with an IPv6 of their own (an attacker's host, which the echo server also has).
    zone.add("longttl", "A", "192.0.2.80", ttl=86400).add(
        "longttl", "AAAA", "2001:db8:1::80", ttl=60
    )
    zone.add("reuse", "A", "192.0.2.81", ttl=86400).add("reuse", "AAAA", "2001:db8:1::81", ttl=12)
    zone.add("victim", "A", "192.0.2.82").add("victim", "AAAA", "2001:db8:1::82")
    zone.add("hostile", "A", "192.0.2.20").add("hostile", "AAAA", "2001:db8:1::66")
    zone.add("hostile2", "A", "192.0.2.82").add("hostile2", "AAAA", "2001:db8:1::67")
    # Issue 27, IPv6-only services: two names sharing one placeholder "A null" record (the
    # echo server has it too: the "sorry, IPv6 only" page), one whose AAAA lives 2 s, one more.
    zone.add("null1", "A", "192.0.2.98").add("null1", "AAAA", "2001:db8:1::91")
    zone.add("null2", "A", "192.0.2.98").add("null2", "AAAA", "2001:db8:1::92")
    zone.add("v6gone", "AAAA", "2001:db8:1::93", ttl=SHORT_TTL)
    zone.add("v6next", "AAAA", "2001:db8:1::94")
    for i in range(1, FRESH_NAMES + 1):
        zone.add(f"ds{i}", "A", f"192.0.2.{100 + i}")
        zone.add(f"ds{i}", "AAAA", f"2001:db8:1::{100 + i}")
        zone.add(f"v4only{i}", "A", f"203.0.113.{100 + i}")
    return zone


def slow_zone() -> Zone:
    """slow.lab.example on its own server: its AAAA can be made slow (see chain.slow_aaaa)."""
    zone = Zone("slow.lab.example.")
    zone.add("@", "A", "192.0.2.50").add("@", "AAAA", "2001:db8:1::50")
    return zone


def ipv4only_zone() -> Zone:
    zone = Zone("ipv4only.arpa.")
    zone.add("@", "A", *WKA)
    return zone


# demo.example: the sizes of its name families (`demo_zone`).
DEMO_DS, DEMO_ALIASES, DEMO_WWW, DEMO_MULTI, DEMO_SHORT, DEMO_V4, DEMO_V4CNAME = (
    48, 25, 50, 6, 10, 60, 10,
)  # fmt: skip


DEMO_V6ONLY = 3


def demo_zone() -> Zone:
    """demo.example. for `make demo`: 211 names, 77 IPv4 addresses a mapping may use.

    Addresses: 192.0.2.128-210 (dual-stack), 203.0.113.124-183 (IPv4-only), 2001:db8:d::/64;
    nothing else in the lab uses them (203.0.113.192/26 is the NAT64 pool, 198.51.100/24 the
    LAN and the mapping pool).  The mapping pool has 128 addresses, one per IPv6 target: the
    zone has 65 targets that can be mapped at once (66 if the conflict's second side ever
    gets its turn), so the pool never runs out, however the demo's flows interleave.

    - ds1..ds48: dual-stack, one A and one AAAA each (192.0.2.128-175, 2001:db8:d::1-30);
    - www1..www50 CNAME alias{1..25}.cdn CNAME ds1..ds25: CDN-style chains to dual-stack
      targets (two www names share each alias);
    - multi1..multi6: three A and two AAAA each (192.0.2.176-193, 2001:db8:d::1:N);
    - short1..short10: dual-stack with a 2 s TTL (192.0.2.194-203, 2001:db8:d::2:N);
    - conflict-a / conflict-b: one IPv4 (192.0.2.210), two different IPv6 (a reverse proxy);
    - v4-1..v4-60: IPv4-only (203.0.113.124-183): unbound's DNS64 synthesizes their AAAA;
    - v4cname1..v4cname10 CNAME v4-1..v4-10: IPv4-only behind a CNAME;
    - ipv6only1..ipv6only3: IPv6-only services, AAAA only (2001:db8:d::4:N).
    """
    zone = Zone("demo.example.")
    for i in range(1, DEMO_DS + 1):
        zone.add(f"ds{i}", "A", f"192.0.2.{127 + i}").add(f"ds{i}", "AAAA", f"2001:db8:d::{i:x}")
    for k in range(1, DEMO_ALIASES + 1):
        zone.add(f"alias{k}.cdn", "CNAME", f"ds{k}.demo.example.")
    for i in range(1, DEMO_WWW + 1):
        zone.add(f"www{i}", "CNAME", f"alias{(i - 1) % DEMO_ALIASES + 1}.cdn.demo.example.")
    for m in range(1, DEMO_MULTI + 1):
        base = 176 + 3 * (m - 1)
        zone.add(f"multi{m}", "A", *[f"192.0.2.{base + j}" for j in range(3)])
        zone.add(f"multi{m}", "AAAA", f"2001:db8:d::1:{2 * m - 1:x}", f"2001:db8:d::1:{2 * m:x}")
    for i in range(1, DEMO_SHORT + 1):
        zone.add(f"short{i}", "A", f"192.0.2.{193 + i}", ttl=SHORT_TTL)
        zone.add(f"short{i}", "AAAA", f"2001:db8:d::2:{i:x}", ttl=SHORT_TTL)
    zone.add("conflict-a", "A", "192.0.2.210").add("conflict-a", "AAAA", "2001:db8:d::3:a")
    zone.add("conflict-b", "A", "192.0.2.210").add("conflict-b", "AAAA", "2001:db8:d::3:b")
    for i in range(1, DEMO_V4 + 1):
        zone.add(f"v4-{i}", "A", f"203.0.113.{123 + i}")
    for i in range(1, DEMO_V4CNAME + 1):
        zone.add(f"v4cname{i}", "CNAME", f"v4-{i}.demo.example.")
    # IPv6-only services (issue 27): no A; the sweep skips them, the demo's last phase asks
    # their A with ipv6_only on.
    for i in range(1, DEMO_V6ONLY + 1):
        zone.add(f"ipv6only{i}", "AAAA", f"2001:db8:d::4:{i:x}")
    return zone


LAB = lab_zone()
SLOW = slow_zone()
IPV4ONLY = ipv4only_zone()
DEMO = demo_zone()


def all_zones() -> list[Zone]:
    return [LAB, SLOW, IPV4ONLY, DEMO]


def find_zone(name: str) -> Zone:
    """The zone a name belongs to (the longest matching origin)."""
    fq = (name if name.endswith(".") else name + ".").lower()
    matches = [z for z in all_zones() if fq == z.origin or fq.endswith("." + z.origin)]
    if not matches:
        raise KeyError(name)
    return max(matches, key=lambda z: len(z.origin))
