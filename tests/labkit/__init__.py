"""labkit: real DNS servers (knot, unbound DNS64, dnsmasq) and namespaces for integration tests.

No mocks: every server is the Debian binary, started in its own process group with its log in a
file, and stopped (with its namespaces and files) when the test ends, also when it fails.
"""

from .chain import DnsChain, qtype_offset_bits, slow_aaaa, slow_aaaa_drops, slow_aaaa_ruleset
from .client import (
    answers,
    edns_option,
    edns_option_codes,
    make_query,
    query,
    query_raw,
    rcode,
)
from .dnsmasq import Dnsmasq
from .knot import Knot
from .lan import Lan, lan
from .netns import Netns, nft, remove_stale, run, socket_in, veth
from .ports import free_port, port_is_free
from .procs import Proc, ProcessGroup, ReadyTimeoutError, find_tool, spawn, wait_ready
from .sniff import Packet, Sniffer, read_capture
from .tcpflow import Flow
from .unbound import Stub, Unbound
from .xlat import Xlat
from .zone import DNS64_PREFIX, IPV4ONLY, LAB, SLOW, WKA, Record, Zone, dns64

__all__ = [
    "DNS64_PREFIX",
    "IPV4ONLY",
    "LAB",
    "SLOW",
    "WKA",
    "DnsChain",
    "Dnsmasq",
    "Flow",
    "Knot",
    "Lan",
    "Netns",
    "Packet",
    "Proc",
    "ProcessGroup",
    "ReadyTimeoutError",
    "Record",
    "Sniffer",
    "Stub",
    "Unbound",
    "Xlat",
    "Zone",
    "answers",
    "dns64",
    "edns_option",
    "edns_option_codes",
    "find_tool",
    "free_port",
    "lan",
    "make_query",
    "nft",
    "port_is_free",
    "qtype_offset_bits",
    "query",
    "query_raw",
    "rcode",
    "read_capture",
    "remove_stale",
    "run",
    "slow_aaaa",
    "slow_aaaa_drops",
    "slow_aaaa_ruleset",
    "socket_in",
    "spawn",
    "veth",
    "wait_ready",
]
