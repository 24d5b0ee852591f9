"""What each component takes from the configuration, and what it can change while running.

A reload (SIGHUP) must not drop mappings, so every option a running component can take a new
value of is applied in place, and the others keep their running value until a restart, which
status names (``restart_needed``).  Which options those are depends on the component that
reads them, in this configuration:

- the schema's ``restart`` options shape the sockets, the pool or the translator;
- ``pref64`` is live for the engine (decide reads it per answer) and for an external CLAT
  (it asks the runtime for it when it needs it, ``dataplane.kernel``), but tayga is started
  with it in its configuration file (``dataplane.build``, ``dataplane.tayga``): with
  ``translator tayga`` a new ``pref64`` waits for a restart, or the engine would map with a
  prefix the translator does not use.

``ShellSettings`` is every live option a shell reads; the engine's policy and limiter, the host
memory and the static entries are the runtime's own (``runtime``).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from clat_eamt.assemble import safety_from_config
from clat_eamt.config import EffectiveConfig, schema
from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.config.schema import GLOBAL_OPTIONS
from clat_eamt.core.safety import SafetyPolicy

# Options a component of the given translator reads only when it is built.
BUILT_WITH: dict[str, frozenset[str]] = {
    "tayga": frozenset({schema.PREF64.name}),
}


@dataclass(frozen=True)
class ShellSettings:
    """The live options of the shells: the proxy, the applier, the upstreams."""

    enabled: bool  # the proxy asks AAAA and maps; else a plain forwarder
    hold: float  # seconds an A answer waits for its AAAA
    require_dnssec: bool  # the proxy asks with DO and keeps AD
    apply_deadline: float  # seconds an answer waits for its batch
    upstream_timeout: float
    upstream: tuple[ServerAddress, ...]  # configured resolvers; empty: resolv_file's
    resolv_file: str
    safety: SafetyPolicy  # the safety net's timing (``rescue``); ``safety`` itself: restart
    ipv6_only: bool = False  # answer an IPv6-only name's A (``core.ipv6only``)
    placeholders: frozenset[IPv4Address] = frozenset()  # A records that count as none


def shell_settings(cfg: EffectiveConfig) -> ShellSettings:
    return ShellSettings(
        safety=safety_from_config(cfg),
        enabled=cfg[schema.ENABLED],
        hold=cfg[schema.HOLD_MS] / 1000,
        require_dnssec=cfg[schema.REQUIRE_DNSSEC],
        apply_deadline=cfg[schema.APPLY_TIMEOUT_MS] / 1000,
        upstream_timeout=cfg[schema.UPSTREAM_TIMEOUT_MS] / 1000,
        upstream=tuple(cfg[schema.UPSTREAM]),
        resolv_file=str(cfg[schema.RESOLV_FILE]),
        ipv6_only=cfg[schema.IPV6_ONLY],
        placeholders=frozenset(
            a for a in cfg[schema.IPV6_ONLY_PLACEHOLDER] if isinstance(a, IPv4Address)
        ),
    )


def fixed_options(running: EffectiveConfig) -> frozenset[str]:
    """The options the running components cannot change: a reload keeps their value."""
    fixed = {option.name for option in GLOBAL_OPTIONS if option.restart}
    return frozenset(fixed | BUILT_WITH.get(running[schema.TRANSLATOR], frozenset()))
