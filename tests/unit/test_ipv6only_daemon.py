"""An IPv6-only name's A through the whole daemon (issue 27): the answer carries P once its IPv6
leg is installed; a dataplane that fails or is late costs the A, never the answer (the
upstream's NODATA goes out, as without the option)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from ipaddress import ip_address, ip_network

import pytest
from dnslib import RCODE, DNSRecord

from clat_eamt.config import load_text
from clat_eamt.core.model import EnsureTranslator
from clat_eamt.daemon import Daemon
from tests.unit.dnspeer import ScriptedPeer, zone_answer
from tests.unit.standins import ScriptedDataplane, free_port, loopback_config

ZONE = {("v6.lab.example", "AAAA"): ["2001:db8:1::70"]}
POOL = ip_network("198.51.100.128/25")  # loopback_config's


def ask(dataplane: ScriptedDataplane, ipv6_only: str = "1") -> tuple[DNSRecord, dict]:  # type: ignore[type-arg]
    workdir = tempfile.mkdtemp(prefix="clat-eamt-test-")

    async def scenario() -> tuple[DNSRecord, dict]:  # type: ignore[type-arg]
        async with ScriptedPeer(zone_answer(ZONE)) as peer:
            extra = "\toption host_mode 'all'\n\toption apply_timeout_ms '30'\n"
            extra += f"\toption ipv6_only '{ipv6_only}'\n"
            upstream = f"127.0.0.1#{peer.port}"
            cfg = load_text(
                loopback_config(free_port(), f"{workdir}/c.sock", extra, upstream=upstream)
            )
            daemon = Daemon(cfg, dataplane)
            await daemon.start()
            try:
                loop = asyncio.get_running_loop()
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                    client.setblocking(False)
                    client.connect(("127.0.0.1", daemon.server.port))
                    await loop.sock_sendall(client, DNSRecord.question("v6.lab.example").pack())
                    reply = await asyncio.wait_for(loop.sock_recv(client, 4096), 5)
                status = daemon.status()
            finally:
                await daemon.stop()
            return DNSRecord.parse(reply), status

    try:
        return asyncio.run(scenario())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_answer_carries_p_once_its_ipv6_leg_is_in() -> None:
    dataplane = ScriptedDataplane()
    reply, status = ask(dataplane)
    [record] = reply.rr
    p = ip_address(str(record.rdata))
    assert p in POOL and reply.header.ad == 0
    [[op]] = dataplane.applied
    assert op == EnsureTranslator(ip_network(p), ip_network("2001:db8:1::70"))
    assert status["ipv6_only"]["mappings"] == 1


@pytest.mark.parametrize(
    "dataplane", [ScriptedDataplane(fail="translator is not running"), ScriptedDataplane(0.3)]
)
def test_a_failed_or_late_leg_costs_the_a_never_the_answer(dataplane: ScriptedDataplane) -> None:
    reply, _ = ask(dataplane)
    assert reply.header.rcode == RCODE.NOERROR and reply.rr == []  # the upstream's NODATA


def test_option_off_the_upstreams_nodata() -> None:
    dataplane = ScriptedDataplane()
    reply, status = ask(dataplane, "0")
    assert reply.rr == [] and dataplane.applied == [] and status["mappings"] == 0
