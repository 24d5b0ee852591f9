"""The one option schema of clat-eamt: every option, its type, default, help and rules.

Everything else is derived from this table: the UCI loader (``load``), the command-line flags
(``load.add_arguments``), the default ``/etc/config/clat-eamt`` and the README table (``render``)
and the LuCI form.  Option lists are never restated by hand anywhere else.

Two section types exist: exactly one ``config globals 'globals'`` (absent means all defaults) and
any number of ``config static`` sections, each one fixed mapping.  Rules that involve one value
live in the value's type; rules between options live at the bottom of this module, written once
for both the file and the flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Any, Generic, TypeVar, cast

from clat_eamt.config.nettypes import Address, DnsServer, FamilyAddress, FilePath, Name
from clat_eamt.config.types import (
    Bool,
    BoundedInt,
    Checked,
    Choice,
    DnsName,
    IPPrefix,
    IPv4Prefix,
    IPv6Prefix,
    JSONScalar,
    Text,
    ValueType,
)
from clat_eamt.config.uci import statement
from clat_eamt.core.pref64 import RFC6052_LENGTHS, pref64_problem
from clat_eamt.core.provider import public_key_problem, url_problem

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)  # so cfg[PREF64] also reads as an Iterable[IPv6Network]
V = TypeVar("V")

CONFIG_PATH = "/etc/config/clat-eamt"
GLOBALS = "globals"
STATIC = "static"


@dataclass(frozen=True)
class Option(Generic[T_co]):
    """One option.  ``type`` parses one UCI word; list options hold a tuple of such values."""

    name: str
    type: ValueType[Any]
    default: T_co | None  # None only for required options
    help: str
    section: str = GLOBALS
    is_list: bool = False
    required: bool = False
    # shown commented out in the default config when the default is empty
    example: str | None = None
    # a reload (SIGHUP, `service clat-eamt reload`) cannot change it: it shapes the sockets, the
    # pool or the translator the running daemon was built with
    restart: bool = False

    @property
    def full_help(self) -> str:
        """The help as the docs, the default config and the LuCI form show it."""
        if self.restart:
            return self.help + " Takes effect on restart (`service clat-eamt restart`), not reload."
        return self.help

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def luci_datatype(self) -> str:
        return self.type.luci_datatype  # for a list: the datatype of each item (DynamicList)

    @property
    def luci_rule(self) -> dict[str, Any]:
        return self.type.luci_rule  # for a list: each item's

    @property
    def type_name(self) -> str:
        return f"list of {self.type.plural}" if self.is_list else self.type.type_name

    def words(self, value: object) -> tuple[str, ...]:
        """UCI words for ``value``: one per list item, exactly one for a scalar."""
        items = cast(Sequence[Any], value) if self.is_list else (value,)
        return tuple(self.type.render(item) for item in items)

    def uci_lines(self, value: object) -> list[str]:
        keyword = "list" if self.is_list else "option"
        return [statement(keyword, self.name, word) for word in self.words(value)]

    def to_json(self, value: object) -> JSONScalar | list[JSONScalar]:
        if self.is_list:
            return [self.type.to_json(item) for item in cast(Sequence[Any], value)]
        return self.type.to_json(value)


def scalar(
    name: str,
    type_: ValueType[V],
    default: V,
    help: str,
    *,
    section: str = GLOBALS,
    example: str | None = None,
    restart: bool = False,
) -> Option[V]:
    return Option(name, type_, default, help, section, example=example, restart=restart)


def required(name: str, type_: ValueType[V], help: str, example: str) -> Option[V]:
    return Option(name, type_, None, help, STATIC, required=True, example=example)


def listed(
    name: str, type_: ValueType[V], help: str, example: str, *, restart: bool = False
) -> Option[tuple[V, ...]]:
    # List defaults are always empty: UCI cannot write "an empty list" to override a non-empty one.
    return Option(name, type_, (), help, GLOBALS, is_list=True, example=example, restart=restart)


_PREF64 = Checked(
    IPv6Prefix(),
    pref64_problem,
    "NAT64 prefix",
    "NAT64 prefixes",
    (("lengths", RFC6052_LENGTHS), ("zero_bits", (64, 72))),  # pref64_problem as data
)

# fmt: off
# --- section globals -------------------------------------------------------------------------

ENABLED = scalar("enabled", Bool(), True,
    "Master switch. When off, DNS is still forwarded unchanged and every connection takes the "
    "plain CLAT (NAT64) path.",
)
LISTEN = scalar("listen", Address(), IPv4Address("127.0.0.1"),
    "Address the DNS proxy listens on. dnsmasq forwards to it: in /etc/config/dhcp, "
    "'list server' ADDRESS#PORT with 'option noresolv 1' (the package's dnsmasq hook sets both).",
    restart=True,
)
PORT = scalar("port", BoundedInt(1, 65535), 5353,
    "UDP and TCP port the DNS proxy listens on.",
    restart=True,
)
UPSTREAM = listed("upstream", DnsServer(),
    "Resolvers the proxy forwards to, in order of preference, IPv6 or IPv4 (ADDRESS or "
    "ADDRESS#PORT). Empty: the resolvers your ISP gave the WAN, read from resolv_file.",
    "2001:db8::53",
)
RESOLV_FILE = scalar("resolv_file", FilePath(), "/tmp/resolv.conf.d/resolv.conf.auto",
    "The resolv.conf file with the WAN's resolvers, used when no upstream is set; re-read when "
    "it changes.",
)
PREF64 = listed("pref64", _PREF64,
    "Your ISP's NAT64 prefix(es). Leave empty to discover it from DNS (RFC 7050: the AAAA "
    "records of ipv4only.arpa, re-checked before their TTL ends). 64:ff9b::/96 and "
    "64:ff9b:1::/48 are always treated as translation prefixes.",
    "2001:db8:64::/96",
)
POOL = scalar("pool", IPv4Prefix(), IPv4Network("100.127.0.0/16"),
    "Private IPv4 range the router uses internally for mappings; these addresses never leave "
    "the router. Change it only if something on the router already uses it (for example a VPN "
    "in 100.64.0.0/10).",
    restart=True,
)
TTL_MIN = scalar("ttl_min", BoundedInt(0, 86400, "seconds"), 30,
    "Shortest lifetime of a learned mapping. Applied to the smaller of the A and AAAA TTLs, so "
    "that very short TTLs do not make the router rebuild mappings all the time.",
)
TTL_MAX = scalar("ttl_max", BoundedInt(1, 604800, "seconds"), 3600,
    "Longest lifetime of a learned mapping, however long the DNS TTL, so that a name that moved "
    "to other addresses is followed within this time.",
)
STALE_LINGER = scalar("stale_linger", BoundedInt(0, 3600, "seconds"), 30,
    "How long an expired mapping waits before its connections are checked for the last time. "
    "Covers the short gap between a DNS answer and the first packet of the connection it "
    "starts.",
)
REQUIRE_DNSSEC = scalar("require_dnssec", Bool(), False,
    "Only DNS answers validated with DNSSEC (AD flag from a trusted resolver) create mappings. "
    "Turn on if your upstream resolver validates.",
)
HOLD_MS = scalar("hold_ms", BoundedInt(0, 1000, "milliseconds"), 50,
    "How long an A answer waits for the AAAA answer of the same name before it is released "
    "without a mapping (RFC 8305's resolution delay; the 464XLAT optimization draft asks 50).",
)
APPLY_TIMEOUT_MS = scalar("apply_timeout_ms", BoundedInt(1, 5000, "milliseconds"), 50,
    "How long an A answer waits for its mapping to be installed. If installing takes longer, "
    "the answer is released anyway and the connection uses the NAT64, as without clat-eamt.",
)
UPSTREAM_TIMEOUT_MS = scalar("upstream_timeout_ms", BoundedInt(50, 30000, "milliseconds"),
    1500,
    "How long the proxy waits for one resolver before it tries the next one.",
)
IPV6_ONLY = scalar("ipv6_only", Bool(), False,
    "Answer an A query for a name that has a real AAAA and no A (an IPv6-only service) with an "
    "address of the mapping pool mapped to that AAAA, so IPv4-only devices reach it over the "
    "router's native IPv6. Off by default: the router then makes up A records, which cannot "
    "validate with DNSSEC (a query with CD set gets the real answer, RFC 6147 section 5.5), "
    "which dnsmasq caches for the whole LAN, and which tell every device that the name has "
    "IPv4. Needs a pool outside the space dnsmasq's rebind protection drops (the default "
    "100.127.0.0/16 is fine).",
)
IPV6_ONLY_PLACEHOLDER = listed("ipv6_only_placeholder", FamilyAddress(4),
    "IPv4 addresses IPv6-only services publish as a placeholder A record (for example a page "
    "saying the service needs IPv6): with ipv6_only on, an A answer holding only these is "
    "answered as if it had no A, for each name on its own.",
    "192.0.2.1",
)
IPV6_ONLY_QUARANTINE = scalar("ipv6_only_quarantine", BoundedInt(0, 86400, "seconds"), 900,
    "How long a pool address given out in an A answer for an IPv6-only name is kept from every "
    "other name after its mapping ended, so that a device that kept the address longer than "
    "its TTL reaches nothing rather than another service.",
)
TRANSLATOR = scalar("translator", Choice(("auto", "external", "tayga", "jool", "none")),
    "auto",
    "Which CLAT the mappings steer on. 'auto': the router's own (OpenWrt's 464xlat interface, "
    "or a tun or nat46 device holding the IPv4 default route); if none is found, decide and "
    "log only. 'external': a CLAT someone else runs (464xlat/nat46, clatd, Jool in its own "
    "namespace, a tayga of its own package), on clat_device; it is never changed. 'tayga': "
    "clat-eamt runs tayga as the router's CLAT. 'jool': a Jool SIIT instance in netfilter mode "
    "set up by its own package (mappings become its EAM entries). 'none': decide and log only.",
    restart=True,
)
CLAT_DEVICE = scalar("clat_device", Name("interface", optional=True), "",
    "The CLAT's network device for translator auto or external (OpenWrt's 464xlat names it "
    "464-<interface>); empty finds it.",
    restart=True,
)
STATE_DIR = scalar("state_dir", FilePath(), "/var/run/clat-eamt",
    "Directory for the files clat-eamt keeps at run time (tayga's configuration and pid, the "
    "mappings a stop hands over to the next start).",
    restart=True,
)
CONTROL_SOCKET = scalar("control_socket", FilePath(), "/var/run/clat-eamt/control.sock",
    "Unix socket of the local control API (`clat-eamt status` and the other commands use it); "
    "only root may connect.",
    restart=True,
)
TUN = scalar("tun", Name("interface"), "clat",
    "The tun device of the CLAT (tayga).",
    restart=True,
)
CLAT_IPV4 = scalar("clat_ipv4", FamilyAddress(4), IPv4Address("192.0.0.1"),
    "The IPv4 address the LAN is NAT44ed to before the CLAT (RFC 7335 suggests 192.0.0.1).",
    restart=True,
)
CLAT_IPV6 = scalar("clat_ipv6", FamilyAddress(6, optional=True), None,
    "The CLAT's IPv6 source address, from the prefix the ISP delegated to the router "
    "(required with translator tayga).",
    restart=True,
)
TAYGA_IPV4 = scalar("tayga_ipv4", FamilyAddress(4), IPv4Address("192.0.0.2"),
    "The IPv4 address of tayga itself (the source of the ICMP errors it sends).",
    restart=True,
)
TAYGA_IPV6 = scalar("tayga_ipv6", FamilyAddress(6, optional=True), None,
    "The IPv6 address of tayga itself; empty lets tayga derive it from the Pref64.",
    restart=True,
)
JOOL_INSTANCE = scalar("jool_instance", Name("Jool instance"), "clat-eamt",
    "The Jool SIIT instance whose EAM table clat-eamt manages (translator jool).",
    restart=True,
)
JOOL_NETNS = scalar("jool_netns", Name("network namespace", optional=True), "",
    "The network namespace Jool runs in, if not the router's own.",
    restart=True,
)
HOST_OBSERVE = scalar("host_observe", BoundedInt(0, 86400, "seconds"), 60,
    "How long a LAN host must be seen in the neighbour tables with IPv4 and no IPv6 before "
    "it counts as IPv4-only (until then nothing changes for it).",
)
LAN_INTERFACES = listed("lan_interface", Name("interface"),
    "Interfaces whose neighbour tables classify the LAN hosts; empty means all.",
    "br-lan",
    restart=True,
)
HOST_MODE = scalar("host_mode", Choice(("ipv4-only", "all")), "ipv4-only",
    "Which LAN hosts get mappings: 'ipv4-only' only hosts detected as IPv4-only (when unsure, "
    "nothing changes for a host); 'all' every IPv4 client, for networks where the detection "
    "cannot work.",
    restart=True,
)
MAX_ENTRIES = scalar("max_entries", BoundedInt(1, 1000000), 4096,
    "Most mappings learned from DNS kept at once (static ones do not count). Caps memory use "
    "and what a flood of DNS answers can do.",
)
MAX_IPV4_PER_IPV6 = scalar("max_ipv4_per_ipv6", BoundedInt(1, 4096), 16,
    "Most IPv4 destinations learned from DNS mapped to one IPv6 target, all names together "
    "(one name maps at most 8). Stops hostile names from steering many destinations to one "
    "host.",
)
CREATE_RATE = scalar("create_rate", BoundedInt(1, 100000, "per second"), 20,
    "New learned mappings per second, all hosts together.",
)
CREATE_BURST = scalar("create_burst", BoundedInt(1, 1000000), 200,
    "How many new mappings may be created in a burst before create_rate applies.",
)
CLIENT_IDENTITY = scalar("client_identity", Bool(), False,
    "Let dnsmasq tell clat-eamt which LAN client asked (the hook sets dnsmasq's addmac and "
    "addsubnet '32,128'). It costs dnsmasq's cache: with these options dnsmasq forwards every "
    "query, so every lookup of every device goes to the ISP's resolver through clat-eamt. It "
    "buys per-host creation limits (host_create_rate, host_create_burst) and gating: only the "
    "answers of hosts known to be IPv4-only create mappings. Off, mappings are made from any "
    "client's answer while the LAN has an IPv4-only host, and only IPv4-only hosts are steered.",
    restart=True,
)
HOST_CREATE_RATE = scalar("host_create_rate", BoundedInt(1, 100000, "per second"), 5,
    "New learned mappings per second for any one LAN host, so that one busy or hostile host "
    "cannot use up the router-wide budget (hosts are known with client_identity).",
)
HOST_CREATE_BURST = scalar("host_create_burst", BoundedInt(1, 1000000), 50,
    "How many new mappings one LAN host may create in a burst before host_create_rate applies.",
)
ALLOW_NAME = listed("allow_name", DnsName(),
    "If set, only these names and the names below them are optimized (example.com covers "
    "www.example.com but not badexample.com).",
    "example.com",
)
DENY_NAME = listed("deny_name", DnsName(),
    "These names and the names below them are never optimized; wins over allow_name.",
    "broken.example.net",
)
ALLOW_PREFIX = listed("allow_prefix", IPPrefix(),
    "If set for an address family, only IPv4 destinations (or IPv6 targets) inside these "
    "prefixes are mapped.",
    "2001:db8::/32",
)
DENY_PREFIX = listed("deny_prefix", IPPrefix(),
    "IPv4 destinations or IPv6 targets inside these prefixes are never mapped; wins over "
    "allow_prefix.",
    "198.51.100.0/24",
)
ALLOW_DOCUMENTATION = scalar("allow_documentation", Bool(), False,
    "Treat the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, "
    "2001:db8::/32, 3fff::/20) as ordinary global addresses. For test labs only; never turn it "
    "on in a real router.",
)
SAFETY = scalar("safety", Bool(), True,
    "The safety net: a steered connection whose native IPv6 path gives no answer within "
    "rescue_window_ms is moved to the NAT64 before the device retries (no connection is "
    "lost), its target is not mapped for a while, and steering stops router-wide while native "
    "IPv6 looks broken. Off only to diagnose.",
    restart=True,
)
RESCUE_WINDOW_MS = scalar("rescue_window_ms", BoundedInt(100, 5000, "milliseconds"), 700,
    "How long a steered connection may wait for its first answer over native IPv6 before it "
    "is moved to the NAT64. Below the 1 s after which a device's TCP sends its first SYN "
    "again (RFC 6298), so that retry already takes the NAT64.",
)
BROKEN_BACKOFF = scalar("broken_backoff", BoundedInt(1, 86400, "seconds"), 60,
    "How long a destination whose native path failed is left to the NAT64 before a new "
    "connection tries it again; doubled after each failure in a row (at most one hour). Also "
    "the first pause of steering when native IPv6 as a whole looks broken.",
)
BRAKE_FAILURES = scalar("brake_failures", BoundedInt(0, 1000), 3,
    "How many destinations whose native path failed within brake_window stop all steering "
    "(the ISP's IPv6 or a firewall is broken, not one server); steering resumes on its own "
    "once a trial connection gets an answer. 0: never.",
)
BRAKE_WINDOW = scalar("brake_window", BoundedInt(1, 3600, "seconds"), 30,
    "The time window of brake_failures.",
)
MSS_CLAMP = scalar("mss_clamp", BoundedInt(0, 1460), 1220,
    "Largest TCP segment steered connections announce (1220 fits the IPv6 minimum MTU of "
    "1280), so a native path with a smaller MTU than the NAT64 path works even when its "
    "ICMPv6 Packet Too Big messages are filtered. 0: no clamp.",
    restart=True,
)


def _absolute_or_empty(path: str) -> str | None:
    return None if not path or path.startswith("/") else f"expected an absolute path, got {path!r}"


PROVIDER_URL = scalar("provider_url",
    Checked(Text(max_length=500), url_problem, "URL", "URLs", (("kind", "url"),)), "",
    "The operator's table of mappings (README, The operator's table): fetched at start and "
    "at the table's own refresh time with the router's uclient-fetch, over HTTPS with "
    "certificate checks; http:// only with provider_key set. Its entries are steered for every "
    "IPv4-only host, whatever resolver the host uses. Empty: no table is fetched (one can "
    "still be pushed, ubus call clat-eamt provider).",
    example="https://cpe.isp.example/clat-eamt.table",
)
PROVIDER_KEY = scalar("provider_key", Checked(Text(max_length=100), public_key_problem,
    "usign public key", "usign public keys", (("kind", "usign_key"),)), "",
    "The operator's usign (signify) public key, the base64 line of its .pub file: every table, "
    "fetched or pushed, must then come with a valid signature made with it (usign -S; fetched "
    "from provider_url + '.sig'). Empty: tables are taken unsigned, over HTTPS only.",
    example="RWRjZjh3Z1lYN2JuTn+C4bMuTtEZF7tl9yDK8Wr3+6nNSHrYSNS1DYgB",
)
PROVIDER_CA = scalar("provider_ca", Checked(Text(max_length=200), _absolute_or_empty,
    "absolute file path", "absolute file paths", (("kind", "path"), ("optional", True))), "",
    "A CA certificate file trusted for provider_url instead of the router's store "
    "(uclient-fetch --ca-certificate). Empty: the router's store (/etc/ssl/certs).",
)
PROVIDER_MAX_ENTRIES = scalar("provider_max_entries", BoundedInt(1, 100000), 20000,
    "Most entries an operator's table may hold; a larger table is refused whole (about 1 KB "
    "of memory per entry).",
)
PROVIDER_SERIAL_FILE = scalar("provider_serial_file", FilePath(), "/etc/clat-eamt/provider.serial",
    "Where the serial of the last operator's table taken is kept, so that after a restart or a "
    "reboot an older table (a replayed signed file) is still refused. On flash, and kept by "
    "sysupgrade (/lib/upgrade/keep.d/clat-eamt): written only when a table with another serial "
    "is taken.",
    restart=True,  # read once, at start: the floor below which no table is taken
)

# --- section static --------------------------------------------------------------------------

STATIC_IPV4 = required("ipv4", IPv4Prefix(),
    "IPv4 destination (address or prefix) that LAN hosts connect to.",
    "192.0.2.10",
)
STATIC_IPV6 = required("ipv6", IPv6Prefix(),
    "IPv6 address or prefix it is translated to; it must have as many host bits as ipv4 "
    "(/32 goes with /128, /24 with /120).",
    "2001:db8::10",
)
STATIC_COMMENT = scalar("comment", Text(max_length=200), "",
    "Free text for your own notes.",
    section=STATIC, example="my server at the office",
)

GLOBAL_OPTIONS: tuple[Option[Any], ...] = (
    ENABLED, LISTEN, PORT, UPSTREAM, RESOLV_FILE, PREF64, POOL, TTL_MIN, TTL_MAX,
    STALE_LINGER, REQUIRE_DNSSEC, HOLD_MS, APPLY_TIMEOUT_MS, UPSTREAM_TIMEOUT_MS,
    IPV6_ONLY, IPV6_ONLY_PLACEHOLDER, IPV6_ONLY_QUARANTINE,
    TRANSLATOR, CLAT_DEVICE, STATE_DIR, CONTROL_SOCKET, TUN, CLAT_IPV4, CLAT_IPV6, TAYGA_IPV4,
    TAYGA_IPV6, JOOL_INSTANCE, JOOL_NETNS, HOST_MODE, HOST_OBSERVE, LAN_INTERFACES,
    MAX_ENTRIES, MAX_IPV4_PER_IPV6, CREATE_RATE, CREATE_BURST, CLIENT_IDENTITY, HOST_CREATE_RATE,
    HOST_CREATE_BURST,
    ALLOW_NAME, DENY_NAME, ALLOW_PREFIX, DENY_PREFIX, ALLOW_DOCUMENTATION,
    PROVIDER_URL, PROVIDER_KEY, PROVIDER_CA, PROVIDER_MAX_ENTRIES, PROVIDER_SERIAL_FILE,
    SAFETY, RESCUE_WINDOW_MS, BROKEN_BACKOFF, BRAKE_FAILURES, BRAKE_WINDOW, MSS_CLAMP,
)
# fmt: on
STATIC_OPTIONS: tuple[Option[Any], ...] = (STATIC_IPV4, STATIC_IPV6, STATIC_COMMENT)
OPTIONS: dict[str, tuple[Option[Any], ...]] = {GLOBALS: GLOBAL_OPTIONS, STATIC: STATIC_OPTIONS}
SECTION_SYNTAX: dict[str, str] = {GLOBALS: "config globals 'globals'", STATIC: "config static"}
SECTION_HELP: dict[str, str] = {
    GLOBALS: "There is exactly one globals section; when it is absent, every option has its "
    "default.",
    STATIC: "There may be any number of static sections, named or anonymous; each one is a fixed "
    "mapping of IPv4 destinations to IPv6 that is never changed automatically.",
}


def lookup(section: str, name: str) -> Option[Any] | None:
    return next((o for o in OPTIONS.get(section, ()) if o.name == name), None)


@dataclass(frozen=True)
class StaticEntry:
    """One ``config static`` section.  ``line`` and ``option_lines`` say where it was written
    and take no part in equality."""

    ipv4: IPv4Network
    ipv6: IPv6Network
    comment: str = ""
    name: str | None = None
    line: int | None = field(default=None, compare=False)
    option_lines: tuple[tuple[str, int], ...] = field(default=(), compare=False, repr=False)

    def line_of(self, option: str) -> int | None:
        return dict(self.option_lines).get(option, self.line)

    def describe(self) -> str:
        if self.name:
            return f"static '{self.name}'"
        return f"the static entry at line {self.line}" if self.line else f"static {self.ipv4}"
