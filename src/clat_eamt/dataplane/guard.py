"""The safety net's rules in the daemon's nft table (issue 25; the decisions are ``core.safety``).

    set brake        holds 0.0.0.0/0 while the brake is engaged: no new IPv4 leg is DNATed
    set suspended    the D of static and provider entries whose target is broken
                     (``core.suspend``): no new IPv4 leg to them is DNATed
    set unguarded    T(P) of the pool blocks IPv6-only entries use (``core.unguarded``)
    chain guard      filter, prerouting priority -90 (after dstnat, -100: DNAT is decided):
      0. a flow whose original destination is in ``unguarded`` is left alone (only its MSS
         clamped, as in 4): no NAT64 path is behind an IPv6-only entry, so a refusal of its
         first packet goes to the device at once (ECONNREFUSED) and nothing rescues its flows;
      1. a new steered leg gets the conntrack mark bit STEERED: the IPv4 leg DNATed into the
         pool, and the IPv6 leg the CLAT emitted for T(pool), DNATed to X;
      2. the first reply of a steered flow that is not an RST sets CONFIRMED: the daemon's
         event listener sees the mark change (its only "it works" signal, see below); the
         next packet of a confirmed flow sets REPORTED, and the listener's kernel filter
         drops every event of a REPORTED flow (its TCP states, its end): the daemon hears two
         events per leg of a connection that works (``dataplane.ctevents``);
      3. until then, an RST or an ICMP(v6) destination unreachable (no route, administratively
         prohibited, address or port unreachable, policy, reject route) for a steered flow is
         held back (dropped): the device sees no answer, the rescue un-steers the flow within
         its window and the SYN's retransmission goes through the NAT64, so a refusal of the
         native path costs no connection.  An RST let through would end the device's
         connection at once (ECONNREFUSED), before any rescue could act.  ICMPv6 Packet Too
         Big is never held back: conntrack relates it to the flow and the CLAT turns it into
         an ICMPv4 Fragmentation Needed (RFC 7915 section 5.2);
      4. TCP SYNs and SYN-ACKs of steered flows get their MSS clamped to ``mss`` (1220: the
         IPv6 minimum MTU of 1280, RFC 8200 section 5, less 40 bytes of IPv6 and 20 of TCP
         header), so a native path narrower than the NAT64 path whose Packet Too Big is
         filtered (a PMTU black hole, RFC 4890 section 4.3.1) still carries steered TCP.
    chains notrack_in / notrack_out   raw: dnsmasq's queries to the proxy on loopback are not
         tracked (each would hold a conntrack entry for 30 s, a random source port apiece).

Why the CONFIRMED bit and not conntrack's seen-reply status: conntrack marks a flow seen-reply
for any reply, an RST too, before the guard can hold it back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

STEERED = 0x10000000  # ct mark bits of the safety net (bits other subsystems of OpenWrt leave:
CONFIRMED = 0x20000000  # mwan3 0x3f00, qosify the low byte, fw4 none)
REPORTED = 0x40000000
BOTH = STEERED | CONFIRMED
BRAKE = "brake"
SUSPENDED = "suspended"
UNGUARDED = "unguarded"
UNREACHABLE4 = "net-unreachable, host-unreachable, port-unreachable, net-prohibited, " \
    "host-prohibited, admin-prohibited"  # not frag-needed: that one is path MTU  # fmt: skip
UNREACHABLE6 = "no-route, admin-prohibited, addr-unreachable, port-unreachable, policy-fail, " \
    "reject-route"  # fmt: skip


@dataclass(frozen=True)
class Guard:
    """What the guard's rules need (configuration, not state)."""

    pool: IPv4Network
    mss: int = 1220  # 0: no clamp
    proxy_port: int | None = None  # the DNS proxy's port on loopback: not tracked


def brake_lines(table: str) -> list[str]:
    """The brake, suspended and unguarded sets, emptied when the table is (re)written: a new
    run starts released, with no verdicts and so nothing suspended; the unguarded legs are put
    back by the dataplane (``KernelDataplane.start``) as it knows them."""
    return [
        f"add set {table} {BRAKE} {{ type ipv4_addr; flags interval; }}",
        f"flush set {table} {BRAKE}",
        f"add set {table} {SUSPENDED} {{ type ipv4_addr; flags interval; }}",
        f"flush set {table} {SUSPENDED}",
        f"add set {table} {UNGUARDED} {{ type ipv6_addr; flags interval; }}",
        f"flush set {table} {UNGUARDED}",
    ]


def brake_rules(table: str, chain: str) -> list[str]:
    """Before the IPv4 leg's DNAT: with the brake engaged nothing new is steered, and nothing
    to a suspended destination."""
    return [
        f"add rule {table} {chain} meta nfproto ipv4 ip daddr @{name} return"
        for name in (BRAKE, SUSPENDED)
    ]


def suspended_batch(table: str, add: Iterable[IPv4Network], remove: Iterable[IPv4Network]) -> str:
    """One transaction: removals first (a /32 may give way to the /24 that covers it)."""
    lines = [f"delete element {table} {SUSPENDED} {{ {d} }}" for d in remove]
    lines += [f"add element {table} {SUSPENDED} {{ {d} }}" for d in add]
    return "\n".join(lines) + "\n" if lines else ""


def unguarded_lines(
    table: str, add: Iterable[IPv6Network], remove: Iterable[IPv6Network]
) -> list[str]:
    """Changes of the ``unguarded`` set, removals first, for the legs' own transaction."""
    lines = [f"delete element {table} {UNGUARDED} {{ {t} }}" for t in remove]
    return lines + [f"add element {table} {UNGUARDED} {{ {t} }}" for t in add]


def brake_batch(table: str, engaged: bool) -> str:
    verb = "add" if engaged else "delete"
    return f"{verb} element {table} {BRAKE} {{ 0.0.0.0/0 }}\n"


def guard_lines(
    table: str, guard: Guard, clat_device: str | None, unsteered: tuple[IPv6Network, ...]
) -> list[str]:
    rule = f"add rule {table} guard"
    mine = f"ct mark & {BOTH:#x} == {STEERED:#x}"  # steered, not confirmed
    lines = [
        f"add chain {table} guard {{ type filter hook prerouting priority -90; policy accept; }}",
        f"flush chain {table} guard",
    ]
    unguarded = f"{rule} meta nfproto ipv6 ct original ip6 daddr @{UNGUARDED}"
    if guard.mss:  # both ways: the device's SYN from the CLAT, the server's SYN-ACK
        lines.append(
            f"{unguarded} tcp flags & syn == syn tcp option maxseg size > {guard.mss} "
            f"tcp option maxseg size set {guard.mss}"
        )
    lines += [
        f"{unguarded} return",
        f"{rule} meta nfproto ipv4 ct state new ct status dnat ip daddr {guard.pool} "
        f"ct mark set ct mark | {STEERED:#x}",
    ]
    if clat_device is not None and unsteered:
        listed = ", ".join(str(n) for n in unsteered)
        lines.append(
            f"{rule} iifname {json.dumps(clat_device)} meta nfproto ipv6 ct state new "
            f"ct status dnat ct original ip6 daddr {{ {listed} }} "
            f"ct mark set ct mark | {STEERED:#x}"
        )
    lines += [
        f"{rule} ct mark & {CONFIRMED | REPORTED:#x} == {CONFIRMED:#x} "
        f"ct mark set ct mark | {REPORTED:#x}",
        f"{rule} {mine} ct direction reply ct state established meta l4proto != tcp "
        f"ct mark set ct mark | {CONFIRMED:#x}",
        f"{rule} {mine} ct direction reply ct state established tcp flags & rst == 0 "
        f"ct mark set ct mark | {CONFIRMED:#x}",
        f"{rule} {mine} ct direction reply tcp flags & rst == rst drop",
        f"{rule} {mine} ct state related icmpv6 type destination-unreachable "
        f"icmpv6 code {{ {UNREACHABLE6} }} drop",
        f"{rule} {mine} ct state related icmp type destination-unreachable "
        f"icmp code {{ {UNREACHABLE4} }} drop",
    ]
    if guard.mss:
        lines.append(
            f"{rule} ct mark & {STEERED:#x} == {STEERED:#x} tcp flags & syn == syn "
            f"tcp option maxseg size > {guard.mss} tcp option maxseg size set {guard.mss}"
        )
    if guard.proxy_port is not None:
        port = guard.proxy_port
        for chain, hook, way in (("notrack_out", "output", "oifname"),
                                 ("notrack_in", "prerouting", "iifname")):  # fmt: skip
            lines += [
                f"add chain {table} {chain} {{ type filter hook {hook} priority -300; "
                "policy accept; }",
                f"flush chain {table} {chain}",
                f'add rule {table} {chain} {way} "lo" meta l4proto {{ tcp, udp }} '
                f"th dport {port} notrack",
                f'add rule {table} {chain} {way} "lo" meta l4proto {{ tcp, udp }} '
                f"th sport {port} notrack",
            ]
    return lines
