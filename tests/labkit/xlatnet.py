"""The addresses, translator configs, nft rulesets and routes of the 464XLAT lab (`xlatwire`
builds the links from them, `xlat.Xlat` puts everything together).

    lan  (IPv4 only) ---+
                        br-lan  ce ==wan (IPv6 only)== isp ==(IPv4+IPv6)== inet
    lan6 (dual stack) --+    CLAT: tayga `clat`         PLAT: tayga `nat64`  knot, TCP echo
                             + NAT44 to 198.51.100.66   + masquerade         server, every
                                                        unbound DNS64        zone address

Documentation addresses only (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32) and the
network-specific Pref64 2001:db8:64::/96 on both translators: with 64:ff9b::/96 tayga refuses
documentation IPv4 as "non-global" (SPEC 7).  Every ruleset, config and route is built here as
text or argv, so `make demo` and the daemon's generated config use the very same values.

Where the small documentation space collides (all harmless, the colliding names of `big` only
exist to make a DNS answer large): 203.0.113.1 of `big` is the NAT64's public address (isp) and
198.51.100.1-60 of `big` lie in the LAN's 198.51.100.0/26, so the LAN reaches its own hosts
there, never inet.  The RFC 7050 192.0.0.170/171 of ipv4only.arpa are not documentation
addresses and exist nowhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .zone import DNS64_PREFIX

PREF64 = DNS64_PREFIX  # "2001:db8:64::/96", on the NAT64, the CLAT and unbound's DNS64
SERVER_PORT = 8080  # the TCP echo server in inet, on every address
DNS_PORT = 53

# -- isp <-> ce: IPv6 only -------------------------------------------------------------------
ISP_CE_IF, CE_WAN_IF = "to-ce", "wan"
ISP_CE_ADDR6 = "2001:db8:100::1"  # also where the ISP's resolver (unbound DNS64) listens
CE_WAN_ADDR6 = "2001:db8:100::2"
WAN_PLEN = 64
DELEGATED_PREFIX = "2001:db8:ce::/48"  # routed by the ISP to the CE (holds the CLAT's IPv6)

# -- isp <-> inet: IPv4 and IPv6 ---------------------------------------------------------------
ISP_INET_IF, INET_ISP_IF = "to-inet", "to-isp"
ISP_INET_ADDR4 = "203.0.113.1"  # the NAT64's public IPv4 (masquerade): the server sees it
INET_ISP_ADDR4 = "203.0.113.2"
ISP_INET_ADDR6 = "2001:db8:200::1"
INET_ISP_ADDR6 = "2001:db8:200::2"

# -- the ISP's NAT64 (PLAT) ----------------------------------------------------------------------
NAT64_TUN = "nat64"
NAT64_POOL = "203.0.113.192/26"  # dynamic-pool, internal to isp, masqueraded towards inet
NAT64_TAYGA_ADDR4 = "203.0.113.193"  # tayga's own (inside the pool, as tayga's sample does)

# -- inet ----------------------------------------------------------------------------------------
KNOT_ADDR = "192.0.2.53"  # ns.lab.example: the authoritative server of every lab zone

# -- ce: the home router -------------------------------------------------------------------------
BRIDGE = "br-lan"
LAN_NET = "198.51.100.0/26"
CE_LAN_ADDR4 = "198.51.100.1"
LAN6_NET = "2001:db8:ce:1::/64"
CE_LAN_ADDR6 = "2001:db8:ce:1::1"
CLAT_TUN = "clat"
TAYGA_ADDR4 = "198.51.100.65"  # tayga's own IPv4 (ipv4-addr)
TAYGA_ADDR6 = "2001:db8:ce:c1a7::1"  # tayga's own IPv6 (ipv6-addr)
CLAT_ADDR4 = "198.51.100.66"  # the LAN is NAT44ed to it before the CLAT
CLAT_ADDR6 = "2001:db8:ce:c1a7::66"  # ... and tayga maps it to the CLAT's IPv6 source
CLAT_NET6 = "2001:db8:ce:c1a7::/64"  # routed into the tun (tayga's and the CLAT's IPv6)
EAM_POOL = "198.51.100.128/25"  # the mapping pool P the daemon may use (SPEC 5)

# -- LAN clients (fixed MACs so tests can name them) ---------------------------------------------
CLIENT_IF = "eth0"
LAN_ADDR4, LAN_MAC, LAN_PORT = "198.51.100.10", "02:00:00:00:00:0a", "port-lan"
LAN6_ADDR4, LAN6_MAC, LAN6_PORT = "198.51.100.11", "02:00:00:00:00:0b", "port-lan6"
LAN6_ADDR6 = "2001:db8:ce:1::11"
MAX_CLIENTS = 5  # IPv4-only clients lan, lan2 .. lan5 (lan6 is the dual-stack one's name)


def ipv4_client(n: int) -> tuple[str, str, str]:
    """Address, MAC and bridge port of IPv4-only client number `n` (1 is `lan`; 2.. are the
    extra ones of `Xlat(ipv4_clients=...)`, namespaces lan2 .. lan5 at 198.51.100.12-15): fixed,
    so that a test or the demo can tell them apart in the daemon's host table."""
    if n == 1:
        return LAN_ADDR4, LAN_MAC, LAN_PORT
    if not 2 <= n <= MAX_CLIENTS:
        raise ValueError(f"IPv4-only client number {n}: 1..{MAX_CLIENTS}")
    return f"198.51.100.{10 + n}", f"02:00:00:00:01:{n:02x}", f"port-lan{n}"


# -- nft tables the lab owns (one per namespace, all die with it) --------------------------------
NAT64_TABLE = "clatlab_nat64"  # isp
NAT44_TABLE = "clatlab_nat44"  # ce
EAMT_TABLE = "clatlab_eamt"  # ce, only when a test loads `dnat_ruleset`


def tayga_conf(
    tun: str,
    ipv4_addr: str,
    *,
    prefix: str = PREF64,
    ipv6_addr: str | None = None,
    dynamic_pool: str | None = None,
    data_dir: str | None = None,
    maps: Mapping[str, str] | Iterable[tuple[str, str]] = (),
) -> str:
    """A tayga 0.9.2 config; `maps` are IPv4 -> IPv6 EAM entries (`map` lines)."""
    lines = [f"tun-device {tun}", f"ipv4-addr {ipv4_addr}"]
    if ipv6_addr:
        lines.append(f"ipv6-addr {ipv6_addr}")
    lines.append(f"prefix {prefix}")
    if dynamic_pool:
        lines.append(f"dynamic-pool {dynamic_pool}")
    if data_dir:
        lines.append(f"data-dir {data_dir}")
    pairs = maps.items() if isinstance(maps, Mapping) else maps
    lines += [f"map {v4} {v6}" for v4, v6 in pairs]
    return "\n".join(lines) + "\n"


def clat_tayga_conf(maps: Mapping[str, str] | None = None) -> str:
    """The CLAT's config: the NAT44 address <-> CLAT IPv6 first, then the EAM entries."""
    return tayga_conf(
        CLAT_TUN,
        TAYGA_ADDR4,
        ipv6_addr=TAYGA_ADDR6,
        maps=[(CLAT_ADDR4, CLAT_ADDR6), *(maps or {}).items()],
    )


def nat64_tayga_conf(data_dir: str) -> str:
    return tayga_conf(NAT64_TUN, NAT64_TAYGA_ADDR4, dynamic_pool=NAT64_POOL, data_dir=data_dir)


def nat64_ruleset() -> str:
    """isp: the NAT64's dynamic pool leaves towards inet masqueraded to 203.0.113.1."""
    return (
        f"table ip {NAT64_TABLE} {{\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    oifname "{ISP_INET_IF}" ip saddr {NAT64_POOL} masquerade\n'
        "  }\n"
        "}\n"
    )


def nat44_ruleset() -> str:
    """ce: LAN IPv4 leaving into the CLAT tun is SNATed to the CLAT's one IPv4 (it matches the
    tun by name, so it can be loaded before the tun exists: clat="none")."""
    return (
        f"table ip {NAT44_TABLE} {{\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    oifname "{CLAT_TUN}" ip saddr {LAN_NET} snat to {CLAT_ADDR4}\n'
        "  }\n"
        "}\n"
    )


def dnat_ruleset(elements: Mapping[str, str], table: str = EAMT_TABLE) -> str:
    """ce: the per-flow pinning of SPEC 5 by hand: LAN IPv4 to D is DNATed to the pool address P
    (`elements` D -> P), which the CLAT maps to D's real IPv6.  conntrack fixes the target per
    flow, so changing or deleting an element never touches a running flow.  Delete one with
    `delete element ip TABLE dnat4 { D }`."""
    listed = ", ".join(f"{d} : {p}" for d, p in elements.items())
    contents = f" elements = {{ {listed} }};" if listed else ""
    return (
        f"table ip {table} {{\n"
        f"  map dnat4 {{ type ipv4_addr : ipv4_addr;{contents} }}\n"
        "  chain prerouting {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n"
        f'    iifname "{BRIDGE}" dnat to ip daddr map @dnat4\n'
        "  }\n"
        "}\n"
    )


def clat_routes() -> list[list[str]]:
    """ce: the routes that need the CLAT tun (`ip -n ce ...` argv tails).

    All IPv4 and the CLAT's own IPv6 /64 go into the tun; a mapped destination IPv6 never does
    (the translated packet would come straight back: SPEC 7): they leave by the default route.
    """
    return [
        ["route", "replace", "default", "dev", CLAT_TUN],
        ["-6", "route", "replace", CLAT_NET6, "dev", CLAT_TUN],
    ]


def nat64_routes() -> list[list[str]]:
    return [
        ["route", "replace", NAT64_POOL, "dev", NAT64_TUN],
        ["-6", "route", "replace", PREF64, "dev", NAT64_TUN],
    ]


class Addresses:
    """The xlatnet names, readable as attributes of the lab."""

    PREF64 = PREF64
    SERVER_PORT = SERVER_PORT
    NAT64_PUBLIC4 = ISP_INET_ADDR4
    NAT64_POOL = NAT64_POOL
    ISP_RESOLVER = ISP_CE_ADDR6
    CE_WAN_ADDR6 = CE_WAN_ADDR6
    DELEGATED_PREFIX = DELEGATED_PREFIX
    KNOT_ADDR = KNOT_ADDR
    BRIDGE = BRIDGE
    WAN_IF = CE_WAN_IF
    LAN_NET = LAN_NET
    LAN6_NET = LAN6_NET
    CE_LAN_ADDR4 = CE_LAN_ADDR4
    CE_LAN_ADDR6 = CE_LAN_ADDR6
    CLAT_TUN = CLAT_TUN
    NAT64_TUN = NAT64_TUN
    TAYGA_ADDR4 = TAYGA_ADDR4
    TAYGA_ADDR6 = TAYGA_ADDR6
    CLAT_ADDR4 = CLAT_ADDR4
    CLAT_ADDR6 = CLAT_ADDR6
    CLAT_NET6 = CLAT_NET6
    EAM_POOL = EAM_POOL
    LAN_ADDR4, LAN_MAC = LAN_ADDR4, LAN_MAC
    LAN6_ADDR4, LAN6_ADDR6, LAN6_MAC = LAN6_ADDR4, LAN6_ADDR6, LAN6_MAC
    NAT44_TABLE = NAT44_TABLE
    NAT64_TABLE = NAT64_TABLE
    EAMT_TABLE = EAMT_TABLE
