"""Builds the core's objects from the effective configuration (config -> core, one place)."""

from __future__ import annotations

from ipaddress import IPv4Address, ip_network

from clat_eamt.config import EffectiveConfig, schema
from clat_eamt.core.addresses import AddressPolicy
from clat_eamt.core.decide import HostMode, Policy
from clat_eamt.core.engine import Engine, Outcome, StaticSpec
from clat_eamt.core.ipv6only import Ipv6OnlyPolicy
from clat_eamt.core.limits import CreationLimiter
from clat_eamt.core.model import IPNetwork
from clat_eamt.core.names import NameFilter
from clat_eamt.core.pool import Pool
from clat_eamt.core.pref64 import Pref64Set
from clat_eamt.core.safety import SafetyPolicy


def resolver_prefixes(cfg: EffectiveConfig) -> tuple[IPNetwork, ...]:
    """SPEC section 4: the router's own resolver addresses are never mapped."""
    return tuple(
        ip_network(a) for a in (cfg[schema.LISTEN], *(s.address for s in cfg[schema.UPSTREAM]))
    )


def policy_from_config(cfg: EffectiveConfig, local: tuple[IPNetwork, ...] = ()) -> Policy:
    """``local`` holds the CE's own, LAN and resolver prefixes found at run time (SPEC 4)."""
    pref64 = tuple(cfg[schema.PREF64])
    return Policy(
        enabled=cfg[schema.ENABLED],
        addresses=AddressPolicy(
            allow_documentation=cfg[schema.ALLOW_DOCUMENTATION],
            excluded=tuple(cfg[schema.DENY_PREFIX]) + local,
            allowed=tuple(cfg[schema.ALLOW_PREFIX]),
        ),
        pref64=Pref64Set(pref64, "config" if pref64 else "none"),
        names=NameFilter.of(cfg[schema.ALLOW_NAME], cfg[schema.DENY_NAME]),
        ttl_min=cfg[schema.TTL_MIN],
        ttl_max=cfg[schema.TTL_MAX],
        stale_linger=cfg[schema.STALE_LINGER],
        require_dnssec=cfg[schema.REQUIRE_DNSSEC],
        host_mode=HostMode(cfg[schema.HOST_MODE]),
        max_entries=cfg[schema.MAX_ENTRIES],
        max_per_target=cfg[schema.MAX_IPV4_PER_IPV6],
    )


def ipv6_only_from_config(cfg: EffectiveConfig) -> Ipv6OnlyPolicy:
    return Ipv6OnlyPolicy(
        enabled=cfg[schema.IPV6_ONLY],
        placeholders=frozenset(
            a for a in cfg[schema.IPV6_ONLY_PLACEHOLDER] if isinstance(a, IPv4Address)
        ),
        quarantine=float(cfg[schema.IPV6_ONLY_QUARANTINE]),
    )


def safety_from_config(cfg: EffectiveConfig) -> SafetyPolicy:
    return SafetyPolicy(
        enabled=cfg[schema.SAFETY],
        window=cfg[schema.RESCUE_WINDOW_MS] / 1000,
        backoff=float(cfg[schema.BROKEN_BACKOFF]),
        brake_failures=cfg[schema.BRAKE_FAILURES],
        brake_window=float(cfg[schema.BRAKE_WINDOW]),
    )


def limiter_from_config(cfg: EffectiveConfig) -> CreationLimiter:
    return CreationLimiter(
        rate=cfg[schema.CREATE_RATE],
        burst=cfg[schema.CREATE_BURST],
        host_rate=cfg[schema.HOST_CREATE_RATE],
        host_burst=cfg[schema.HOST_CREATE_BURST],
    )


def static_specs(cfg: EffectiveConfig) -> list[StaticSpec]:
    return [StaticSpec(s.ipv4, s.ipv6, s.comment) for s in cfg.static]


def engine_from_config(
    cfg: EffectiveConfig, now: float, local: tuple[IPNetwork, ...] = ()
) -> tuple[Engine, Outcome]:
    """A new engine with the configured static entries installed (and the operations that
    installing them needs).  ``local``: see ``policy_from_config``."""
    policy = policy_from_config(cfg, local)
    engine = Engine(policy, Pool(cfg[schema.POOL]), limiter_from_config(cfg))
    engine.ipv6_only = ipv6_only_from_config(cfg)
    return engine, engine.sync_static(static_specs(cfg), now)
