"""The flow oracle (SPEC section 5): the ctnetlink parser on hand-built messages (no kernel),
then real DNATed TCP and UDP flows between two namespaces (lab).

Lab set-up (documentation addresses only): client 192.0.2.2 --veth-- router 192.0.2.1; the
router DNATs D = 203.0.113.10 to the pool address P = 198.51.100.7 (on its lo, where a TCP
server listens), D2 = 203.0.113.20 to 192.0.2.1 (outside the pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clat_eamt.core.model import LiveFlows
from clat_eamt.dataplane import conntrack as ct
from clat_eamt.dataplane.conntrack import Flow, FlowOracle, census, dump_flows, live_pairs
from tests.labkit import Netns, socket_in, veth
from tests.labkit.netns import ip
from tests.labkit.procs import tool, wait_ready
from tests.labkit.require import LAB_TOOLS, require_root, require_tools

POOL = IPv4Network("198.51.100.0/28")
D, P = IPv4Address("203.0.113.10"), IPv4Address("198.51.100.7")
D2, ROUTER, CLIENT = IPv4Address("203.0.113.20"), IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2")
TCP, UDP = socket.IPPROTO_TCP, socket.IPPROTO_UDP
ESTABLISHED, FIN_WAIT, CLOSE_WAIT, TIME_WAIT, CLOSE = 3, 4, 5, 7, 8


# --- pure: messages built the way the kernel builds them (ctnetlink_fill_info) -----------------


def nla(kind: int, payload: bytes, nested: bool = False) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind | (0x8000 if nested else 0)) + payload
    return data + b"\0" * (-len(data) % 4)


def tuple_attr(kind: int, src: str, dst: str, proto: int, v6: bool = False) -> bytes:
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    ips = nla(3 if v6 else 1, socket.inet_pton(fam, src)) + nla(
        4 if v6 else 2, socket.inet_pton(fam, dst)
    )
    ports = nla(1, bytes([proto])) + nla(2, b"\x9c\x40") + nla(3, b"\x00\x50")
    return nla(kind, nla(1, ips, True) + nla(2, ports, True), True)


def message(kind: int, body: bytes, flags: int = 2) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, flags, 1, 0) + body


def entry(orig_dst, reply_src, *, dnat=True, proto=TCP, state=ESTABLISHED, v6=False) -> bytes:
    src, dst = ("2001:db8::2", "2001:db8::1") if v6 else (str(CLIENT), str(orig_dst))
    reply = ("2001:db8::1", "2001:db8::2") if v6 else (str(reply_src), str(CLIENT))
    body = struct.pack("=BBH", socket.AF_INET6 if v6 else socket.AF_INET, 0, 0)
    body += tuple_attr(1, src, dst, proto, v6) + tuple_attr(2, *reply, proto, v6)
    body += nla(
        3, struct.pack("!I", 0x1AE if dnat else 0x18E)
    )  # SEEN_REPLY, ASSURED, CONFIRMED, (DST_NAT)
    body += nla(7, struct.pack("!I", 431999))  # CTA_TIMEOUT: an attribute the parser skips
    if proto == TCP:
        body += nla(4, nla(1, nla(1, bytes([state])), True), True)
    return message(ct.CT_NEW, body)


DONE = message(ct.NLMSG_DONE, b"\0\0\0\0")


def test_parse_dump_reads_what_the_oracle_needs_and_skips_other_families():
    data = entry(D, P) + entry(D2, ROUTER, dnat=False, proto=UDP) + entry(D, P, v6=True)
    flows, done = ct.parse_dump(data)
    assert not done
    assert flows == [Flow(D, P, True, TCP, ESTABLISHED), Flow(D2, ROUTER, False, UDP, None)]
    assert ct.parse_dump(entry(D, P, state=TIME_WAIT) + DONE) == (
        [Flow(D, P, True, TCP, TIME_WAIT)],
        True,
    )


def test_parse_dump_raises_netlink_errors_and_ignores_an_ack():
    with pytest.raises(OSError, match="Operation not permitted") as raised:
        ct.parse_dump(message(ct.NLMSG_ERROR, struct.pack("=i", -1) + b"\0" * 16))
    assert raised.value.errno == 1
    assert ct.parse_dump(message(ct.NLMSG_ERROR, struct.pack("=i", 0) + b"\0" * 16)) == ([], False)
    with pytest.raises(ValueError, match="truncated"):
        ct.parse_dump(entry(D, P)[:-4])


@given(st.binary(max_size=300))
def test_garbage_raises_only_what_the_oracle_reports(data):
    with contextlib.suppress(ValueError, OSError):
        ct.parse_dump(data)
    with contextlib.suppress(ValueError, OSError):
        ct.parse_dump(message(ct.CT_NEW, data))


def test_dump_request_asks_for_ipv4_and_filters_dnat_in_the_kernel():
    plain, dnat = ct.dump_request(False), ct.dump_request(True)
    assert struct.unpack_from("=IHH", plain) == (20, 0x101, 0x301)  # CT_GET, REQUEST|DUMP
    assert plain[16] == socket.AF_INET
    assert dnat[20:] == nla(3, b"\0\0\0\x20") + nla(26, b"\0\0\0\x20")  # CTA_STATUS(_MASK)


def flow(dst=D, src=P, dnat=True, proto=TCP, state=ESTABLISHED):
    return Flow(dst, src, dnat, proto, state if proto == TCP else None)


@pytest.mark.parametrize(
    ("f", "live"),
    [
        (flow(), True),
        (flow(proto=UDP), True),
        (flow(state=1), True),  # SYN_SENT: the attempt already has its DNAT target
        (flow(state=FIN_WAIT), True),  # half-closed: the other half may still send
        (flow(state=CLOSE_WAIT), True),
        (flow(state=TIME_WAIT), False),
        (flow(state=CLOSE), False),
        (flow(src=ROUTER), False),  # DNAT target outside the pool
        (flow(dst=P, dnat=False), False),  # straight to P, no DNAT: not a mapping's flow
    ],
)
def test_live_pairs(f, live):
    assert live_pairs([f], POOL) == LiveFlows(
        frozenset({(f.orig_dst, f.reply_src)} if live else ())
    )


def test_census_counts_live_flows_per_pair_and_the_others_per_destination():
    other = IPv4Address("203.0.113.99")
    flows = [flow(), flow(proto=UDP), flow(D2, D2, dnat=False), flow(D2, D2, dnat=False, state=7)]
    flows.append(flow(other, other, dnat=False))
    flows.append(flow(D2, ROUTER))  # DNATed, but not into the pool
    found = census(flows, POOL)
    assert found.native == {(D, P): 2}
    assert found.other == {D2: 2, other: 1}  # the TIME_WAIT one is not live
    assert found.totals([]) == {"native": 2, "nat64": 3}
    assert found.totals([IPv4Network("203.0.113.99/32")]) == {"native": 2, "nat64": 2}
    on_link = ["127.0.0.1", "224.0.0.22", "169.254.1.1", "255.255.255.255", "0.0.0.0"]
    local = census([flow(IPv4Address(a), IPv4Address(a), dnat=False) for a in on_link], POOL)
    assert local.totals([]) == {"native": 0, "nat64": 0}  # none of them leaves the router


def test_oracle_says_none_and_logs_when_conntrack_cannot_be_read(caplog):
    oracle = FlowOracle(POOL, netns="clatlab-no-such-namespace")
    assert asyncio.run(oracle.live()) is None
    assert asyncio.run(oracle.census()) is None
    assert "conntrack unreadable in netns clatlab-no-such-namespace" in caplog.text
    assert oracle.last_error is not None and "FileNotFoundError" in oracle.last_error


# --- lab: real flows -----------------------------------------------------------------------------

RULES = f"""
table ip clatlab {{
    chain prerouting {{
        type nat hook prerouting priority dstnat;
        ip daddr {D} dnat to {P}
        ip daddr {D2} dnat to {ROUTER}
    }}
}}
"""


@dataclass
class Lab:
    router: Netns
    client: Netns
    server: socket.socket
    port: int
    sockets: contextlib.ExitStack

    def connect(self, dst: IPv4Address) -> tuple[socket.socket, socket.socket]:
        """A TCP connection from the client to dst; returns (client end, router end)."""
        client = self.sockets.enter_context(
            socket_in(self.client, socket.AF_INET, socket.SOCK_STREAM)
        )
        client.settimeout(5)
        client.connect((str(dst), self.port))
        accepted, _ = self.server.accept()
        return client, self.sockets.enter_context(accepted)

    def oracle(self) -> FlowOracle:
        return FlowOracle(POOL, netns=self.router.name)

    def live(self) -> LiveFlows | None:
        return asyncio.run(self.oracle().live())

    def conntrack(self, *args: str) -> str:
        return self.router.run([tool("conntrack"), *args], check=False).stdout


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    require_tools(*LAB_TOOLS, "conntrack")
    with Netns("ctrouter") as router, Netns("ctclient") as client, contextlib.ExitStack() as stack:
        veth(router, client, f"{ROUTER}/24", f"{CLIENT}/24")
        ip("-n", router.name, "addr", "add", f"{P}/32", "dev", "lo")
        ip("-n", client.name, "route", "add", "203.0.113.0/24", "via", str(ROUTER))
        router.nft(RULES)
        server = stack.enter_context(socket_in(router, socket.AF_INET, socket.SOCK_STREAM))
        server.bind(("0.0.0.0", 0))
        server.listen(8)
        server.settimeout(5)
        yield Lab(router, client, server, server.getsockname()[1], stack)


@pytest.mark.lab
def test_open_tcp_flow_to_a_pool_address_is_live_the_others_are_not(lab: Lab) -> None:
    lab.connect(D)
    lab.connect(D2)  # DNATed, but outside the pool
    lab.connect(ROUTER)  # not DNATed at all
    assert lab.live() == LiveFlows(frozenset({(D, P)}))
    # The kernel filter did its part: only DNATed entries came back.
    flows = dump_flows(lab.router.name, dnat_only=True)
    assert {(f.orig_dst, f.reply_src) for f in flows} == {(D, P), (D2, ROUTER)}
    found = asyncio.run(lab.oracle().census())
    assert found is not None and found.native == {(D, P): 1}
    assert found.other == {D2: 1, ROUTER: 1}


@pytest.mark.lab
def test_closed_tcp_is_not_live_although_conntrack_keeps_it_in_time_wait(lab: Lab) -> None:
    client, accepted = lab.connect(D)
    client.sendall(b"hello")
    assert accepted.recv(5) == b"hello"
    assert lab.live() == LiveFlows(frozenset({(D, P)}))
    client.close()
    assert accepted.recv(1) == b""  # the client's FIN arrived
    accepted.close()
    wait_ready(lambda: "TIME_WAIT" in lab.conntrack("-L", "-d", str(D)), 10, what="TIME_WAIT")
    assert lab.live() == LiveFlows()


@pytest.mark.lab
def test_reset_tcp_is_not_live_udp_is_until_its_entry_is_deleted(lab: Lab) -> None:
    client, _ = lab.connect(D)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # RST: conntrack moves the entry to CLOSE (kept 10 s)
    wait_ready(lambda: " CLOSE " in lab.conntrack("-L", "-d", str(D)), 10, what="CLOSE")
    assert lab.live() == LiveFlows()

    udp = lab.sockets.enter_context(socket_in(lab.client, socket.AF_INET, socket.SOCK_DGRAM))
    udp.sendto(b"x", (str(D), 9))
    wait_ready(lambda: lab.live() == LiveFlows(frozenset({(D, P)})), 10, what="UDP entry")
    lab.router.run([tool("conntrack"), "-D", "-d", str(D)], check=False)  # in the lab ns only
    assert lab.live() == LiveFlows()
