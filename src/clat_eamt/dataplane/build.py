"""The dataplane the configuration asks for (config -> shells, one place)."""

from __future__ import annotations

import os
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address

from clat_eamt.apply import Dataplane, DisabledDataplane
from clat_eamt.config import EffectiveConfig, schema


def build_dataplane(
    cfg: EffectiveConfig, pref64: Callable[[], IPv6Network | None] = lambda: None
) -> Dataplane:
    """``pref64``: the Pref64 the daemon knows now (configured or discovered), for a CLAT
    whose own cannot be read."""
    kind = cfg[schema.TRANSLATOR]
    if kind == "none":
        return DisabledDataplane()
    # Imported only for a dataplane: with none the daemon never loads them (router memory).
    from clat_eamt.dataplane.conntrack import FlowOracle  # noqa: PLC0415
    from clat_eamt.dataplane.jool import JoolSiit  # noqa: PLC0415
    from clat_eamt.dataplane.kernel import (  # noqa: PLC0415
        ClatSource,
        ExternalClat,
        JoolEamClat,
        KernelDataplane,
        TaygaClat,
    )
    from clat_eamt.dataplane.nft import NftTable  # noqa: PLC0415
    from clat_eamt.dataplane.nftlib import Nft  # noqa: PLC0415
    from clat_eamt.dataplane.tayga import Tayga, TaygaSettings  # noqa: PLC0415

    pool = cfg[schema.POOL]
    clat: ClatSource
    if kind == "tayga":
        clat_ipv6, tayga_ipv6 = cfg[schema.CLAT_IPV6], cfg[schema.TAYGA_IPV6]
        assert isinstance(clat_ipv6, IPv6Address)  # the config rules demand it with tayga
        settings = TaygaSettings(
            tun=cfg[schema.TUN],
            tayga_ipv4=IPv4Address(cfg[schema.TAYGA_IPV4]),
            prefix=cfg[schema.PREF64][0],
            clat_ipv4=IPv4Address(cfg[schema.CLAT_IPV4]),
            clat_ipv6=clat_ipv6,
            pool=pool,
            tayga_ipv6=tayga_ipv6 if isinstance(tayga_ipv6, IPv6Address) else None,
        )
        clat = TaygaClat(Tayga(settings, cfg[schema.STATE_DIR]))
    elif kind == "jool":
        netns = cfg[schema.JOOL_NETNS] or None
        clat = JoolEamClat(JoolSiit(cfg[schema.JOOL_INSTANCE], pool, netns=netns))
    else:  # external, auto
        clat = ExternalClat(kind, cfg[schema.CLAT_DEVICE] or None, pref64)
    only_ipv4_only = cfg[schema.HOST_MODE] == "ipv4-only"
    handover = os.path.join(cfg[schema.STATE_DIR], "handover.json")
    plane = NftTable(Nft())
    guard = None
    if cfg[schema.SAFETY]:
        from clat_eamt.dataplane.guard import Guard  # noqa: PLC0415

        guard = Guard(pool, cfg[schema.MSS_CLAMP], _loopback_port(cfg))
    return KernelDataplane(
        plane, clat, FlowOracle(pool), only_ipv4_only, pool, handover=handover, guard=guard
    )


def _loopback_port(cfg: EffectiveConfig) -> int | None:
    """The proxy's port when it listens on loopback (dnsmasq's queries: not tracked)."""
    return int(cfg[schema.PORT]) if ip_address(cfg[schema.LISTEN]).is_loopback else None
