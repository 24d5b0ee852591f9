"""What the demo's workload visits: the names of the demo zone as targets, and who visits which.

Pure (the unit tests and the lab test use it as the demo does).  The expectations come from the
zone data itself (tests/labkit/zone.py `demo_zone`), so the zone is the one place to change.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tests.labkit.zone import DEFAULT_TTL, Zone

from .report import DUAL_STACK, IPV4_ONLY

PLAIN, CNAME, MULTI, SHORT, CONFLICT = "plain", "cname", "multi", "short", "conflict"
V4ONLY, V4CNAME = "ipv4-only", "ipv4-only cname"
GROUPS = (PLAIN, CNAME, MULTI, SHORT, CONFLICT, V4ONLY, V4CNAME)
IPV6_ONLY = "ipv6-only service"  # not in the sweep: the last phase, with ipv6_only on


@dataclass(frozen=True)
class Target:
    """One name of the zone as a client meets it: what its A and (real) AAAA records are."""

    name: str  # absolute, with the trailing dot
    group: str
    a: tuple[str, ...]
    aaaa: tuple[str, ...]  # as the zone has them: empty for an IPv4-only name
    ttl: int

    @property
    def kind(self) -> str:
        return DUAL_STACK if self.aaaa else IPV4_ONLY


def catalogue(zone: Zone) -> list[Target]:
    """Every name of `zone` with A, AAAA or CNAME records, CNAMEs followed inside the zone."""
    owners: list[str] = []
    for rec in zone.records:
        fq = zone.fqdn(rec.name)
        if rec.rtype in ("A", "AAAA", "CNAME") and fq not in owners:
            owners.append(fq)
    ttl_of = {(zone.fqdn(r.name), r.rtype): r.ttl or zone.ttl for r in zone.records}
    final = {name: _follow(zone, name) for name in owners}
    addrs = {n: (tuple(zone.rdata(f, "A")), tuple(zone.rdata(f, "AAAA"))) for n, f in final.items()}
    # An IPv4 that two names map to different IPv6: the conflict of SPEC 3.
    targets_of: dict[str, set[frozenset[str]]] = {}
    for a, aaaa in addrs.values():
        for ipv4 in a:
            targets_of.setdefault(ipv4, set()).add(frozenset(aaaa))
    found = []
    for name in owners:
        a, aaaa = addrs[name]
        if not a:
            continue  # no address at all (an intermediate name without A): nothing to fetch
        ttl = min(ttl_of.get((final[name], t), DEFAULT_TTL) for t in ("A", "AAAA"))
        if final[name] != name:
            group = CNAME if aaaa else V4CNAME
        elif not aaaa:
            group = V4ONLY
        elif any(len(targets_of[ipv4]) > 1 for ipv4 in a):
            group = CONFLICT
        elif len(a) > 1:
            group = MULTI
        elif ttl < DEFAULT_TTL:
            group = SHORT
        else:
            group = PLAIN
        found.append(Target(name, group, a, aaaa, ttl))
    return found


def ipv6_only_targets(zone: Zone) -> list[Target]:
    """The names of `zone` with an AAAA and no A at all (IPv6-only services, issue 27)."""
    found: dict[str, Target] = {}
    for rec in zone.records:
        name = zone.fqdn(rec.name)
        if rec.rtype != "AAAA" or name in found or zone.rdata(name, "A"):
            continue
        aaaa = tuple(zone.rdata(name, "AAAA"))
        found[name] = Target(name, IPV6_ONLY, (), aaaa, rec.ttl or zone.ttl)
    return list(found.values())


def _follow(zone: Zone, name: str, hops: int = 8) -> str:
    for _ in range(hops):
        target = zone.rdata(name, "CNAME")
        if not target:
            return name
        name = zone.fqdn(target[0])
    raise ValueError(f"CNAME chain from {name} longer than {hops}")


@dataclass(frozen=True)
class Plan:
    """How big a run is.  The full demo visits every name with two IPv4-only clients; the lab
    test (tests/integration/test_demo_lab.py) runs a smaller plan through the same code."""

    clients: int = 4  # IPv4-only clients (lan, lan2, ...); the dual-stack lan6 comes on top
    every: int = 1  # visit every n-th name of each group
    visits: int = 2  # IPv4-only clients per name
    ds_every: int = 3  # the dual-stack client visits every n-th name of the sweep
    threads: int = 12
    seed: int = 7  # the sweep's order (mixed, but the same on every run)


@dataclass(frozen=True)
class Roles:
    """The names the workload treats specially, and the sweep (client index, target) in order;
    client index -1 is the dual-stack client."""

    long: tuple[Target, ...]  # one short-TTL name per IPv4-only client: a flow spans its expiry
    pinned: Target  # a flow to its address starts before any DNS answer for it
    conflict: tuple[Target, Target]  # first maps, second conflicts
    sweep: tuple[tuple[int, Target], ...]


def roles(targets: list[Target], plan: Plan) -> Roles:
    by_group = {g: [t for t in targets if t.group == g] for g in GROUPS}
    shorts = by_group[SHORT]
    if len(shorts) < plan.clients:
        raise ValueError(f"{plan.clients} clients need as many short-TTL names, not {len(shorts)}")
    long = tuple(shorts[: plan.clients])
    conflict = by_group[CONFLICT]
    if len(conflict) != 2:
        raise ValueError(f"the zone needs one conflicting pair of names, not {len(conflict)}")
    chosen: list[Target] = []
    for group in GROUPS:
        if group == CONFLICT:
            continue
        members = [t for t in by_group[group] if t not in long]
        chosen += members[:: plan.every]
    pinned = next(t for t in reversed(chosen) if t.group == PLAIN)
    random.Random(plan.seed).shuffle(chosen)
    sweep: list[tuple[int, Target]] = []
    for i, target in enumerate(chosen):
        for j in range(min(plan.visits, plan.clients)):
            sweep.append(((i + j) % plan.clients, target))
        if i % plan.ds_every == 0:
            sweep.append((-1, target))
    return Roles(long, pinned, (conflict[0], conflict[1]), tuple(sweep))
