"""The dataplane the configuration asks for (config -> shells, one place)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from clat_eamt.apply import Dataplane, DisabledDataplane
from clat_eamt.config import EffectiveConfig, schema


def build_dataplane(cfg: EffectiveConfig) -> Dataplane:
    kind = cfg[schema.TRANSLATOR]
    if kind == "none":
        return DisabledDataplane()
    # Imported only for a translator: with none the daemon never loads them (router memory).
    from clat_eamt.dataplane.conntrack import FlowOracle  # noqa: PLC0415
    from clat_eamt.dataplane.jool import JoolSiit  # noqa: PLC0415
    from clat_eamt.dataplane.kernel import KernelDataplane  # noqa: PLC0415
    from clat_eamt.dataplane.nft import NftTable  # noqa: PLC0415
    from clat_eamt.dataplane.tayga import Tayga, TaygaSettings  # noqa: PLC0415
    from clat_eamt.dataplane.translator import Translator  # noqa: PLC0415

    pool = cfg[schema.POOL]
    translator: Translator
    if kind == "tayga":
        clat_ipv6, tayga_ipv6 = cfg[schema.CLAT_IPV6], cfg[schema.TAYGA_IPV6]
        assert isinstance(clat_ipv6, IPv6Address)  # the config rules demand it with tayga
        settings = TaygaSettings(
            tun=cfg[schema.TUN],
            tayga_ipv4=IPv4Address(cfg[schema.TAYGA_IPV4]),
            prefix=cfg[schema.PREF64][0],
            clat_ipv4=IPv4Address(cfg[schema.CLAT_IPV4]),
            clat_ipv6=clat_ipv6,
            tayga_ipv6=tayga_ipv6 if isinstance(tayga_ipv6, IPv6Address) else None,
        )
        translator = Tayga(settings, pool, cfg[schema.STATE_DIR])
    else:
        translator = JoolSiit(cfg[schema.JOOL_INSTANCE], pool, netns=cfg[schema.JOOL_NETNS] or None)
    only_ipv4_only = cfg[schema.HOST_MODE] == "ipv4-only"
    return KernelDataplane(NftTable(), translator, FlowOracle(pool), only_ipv4_only)
