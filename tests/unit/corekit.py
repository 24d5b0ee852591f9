"""Small builders for core tests: documentation addresses only, time passed explicitly."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from clat_eamt.core.addresses import AddressPolicy
from clat_eamt.core.decide import Policy
from clat_eamt.core.engine import Engine
from clat_eamt.core.limits import CreationLimiter
from clat_eamt.core.model import AaaaStatus, Host, HostClass, Observation
from clat_eamt.core.pool import Pool
from clat_eamt.core.pref64 import Pref64Set

LAB_PREF64 = IPv6Network("2001:db8:64::/96")  # network-specific prefix, as in the lab (SPEC 7)
POOL = IPv4Network("198.51.100.0/24")
TV = Host("02:00:00:00:00:01", HostClass.IPV4_ONLY)
LAPTOP = Host("02:00:00:00:00:02", HostClass.DUAL_STACK)


def policy(**overrides: Any) -> Policy:
    base: dict[str, Any] = {
        "addresses": AddressPolicy(allow_documentation=True),
        "pref64": Pref64Set((LAB_PREF64,), "config"),
    }
    base.update(overrides)
    return Policy(**base)


def engine(pool: IPv4Network = POOL, limiter: CreationLimiter | None = None, **kw: Any) -> Engine:
    return Engine(policy(**kw), Pool(pool), limiter or CreationLimiter(1000, 1000, 1000, 1000))


def obs(
    name: str,
    a: str | list[str],
    aaaa: str | list[str] | AaaaStatus,
    ttl: int = 300,
    aaaa_ttl: int | None = None,
    host: Host | None = TV,
    authenticated: bool = False,
    qtype: str = "A",
) -> Observation:
    a_list = [a] if isinstance(a, str) else a
    if isinstance(aaaa, AaaaStatus):
        status, aaaa_list = aaaa, []
    else:
        aaaa_list = [aaaa] if isinstance(aaaa, str) else aaaa
        status = AaaaStatus.ANSWER
    return Observation(
        name=name,
        a=tuple(IPv4Address(x) for x in a_list),
        a_ttl=ttl,
        aaaa_status=status,
        aaaa=tuple(IPv6Address(x) for x in aaaa_list),
        aaaa_ttl=ttl if aaaa_ttl is None else aaaa_ttl,
        authenticated=authenticated,
        host=host,
        qtype=qtype,
    )


def v4(text: str) -> IPv4Network:
    return IPv4Network(text)


def v6(text: str) -> IPv6Network:
    return IPv6Network(text)
