"""The daemon's wiring in one process: a slow or failing dataplane costs an A answer at most
the apply deadline, and the answer still goes out (the NAT64 path works without a mapping).
The dataplanes are scripted stand-ins for the nftables/translator backends of the dataplane
issue; the upstream is a scripted peer."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from ipaddress import IPv4Network, IPv6Network

from dnslib import DNSRecord

from clat_eamt.config import StaticEntry, load_text
from clat_eamt.core.counters import known
from clat_eamt.core.model import LiveFlows
from clat_eamt.daemon import Daemon
from clat_eamt.runtime import events as e
from tests.unit.dnspeer import ScriptedPeer, zone_answer
from tests.unit.standins import ScriptedDataplane, free_port, loopback_config

ZONE = {
    ("ds.lab.example", "A"): ["192.0.2.10"],
    ("ds.lab.example", "AAAA"): ["2001:db8:1::10"],
}


FAILURE = "translator is not running"


def run_daemon(dataplane: ScriptedDataplane, apply_timeout_ms: int = 30):
    workdir = tempfile.mkdtemp(prefix="clat-eamt-test-")

    async def scenario():
        async with ScriptedPeer(zone_answer(ZONE)) as peer:
            extra = f"\toption host_mode 'all'\n\toption apply_timeout_ms '{apply_timeout_ms}'\n"
            control = f"{workdir}/control.sock"
            upstream = f"127.0.0.1#{peer.port}"
            cfg = load_text(loopback_config(free_port(), control, extra, upstream=upstream))
            daemon = Daemon(cfg, dataplane)
            await daemon.start()
            try:
                loop = asyncio.get_running_loop()
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                    client.setblocking(False)
                    client.connect(("127.0.0.1", daemon.server.port))
                    await loop.sock_sendall(client, DNSRecord.question("ds.lab.example").pack())
                    reply = await asyncio.wait_for(loop.sock_recv(client, 4096), 5)
                status = daemon.status()
            finally:
                await daemon.stop()
            return DNSRecord.parse(reply), status

    try:
        return asyncio.run(scenario())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_fast_dataplane_maps_before_the_answer():
    reply, status = run_daemon(ScriptedDataplane())
    assert [str(r.rdata) for r in reply.rr] == ["192.0.2.10"]
    assert status["counters"]["answers.apply_done"] == 1
    assert status["mappings"] == 1
    assert all(known(name) for name in status["counters"])  # every one named in core.counters
    assert status["dataplane"]["error"] is None


def test_slow_dataplane_releases_the_answer_unmapped_at_the_deadline():
    dataplane = ScriptedDataplane(delay=0.3)  # ten times the deadline
    reply, status = run_daemon(dataplane, apply_timeout_ms=30)
    assert [str(r.rdata) for r in reply.rr] == ["192.0.2.10"]
    assert status["counters"]["answers.apply_late"] == 1
    assert len(dataplane.applied) == 1  # stop waited for the batch: it landed after all


def test_failing_dataplane_is_visible_and_dns_goes_on():
    reply, status = run_daemon(ScriptedDataplane(fail=FAILURE))
    assert [str(r.rdata) for r in reply.rr] == ["192.0.2.10"]
    assert status["counters"]["answers.apply_failed"] == 1
    assert "translator is not running" in status["dataplane"]["last_error"]
    assert "translator is not running" in status["dataplane"]["error"]  # the start failed too


def test_a_dead_translator_is_noticed_and_restarted_by_one_tick(tmp_path, caplog):
    """tayga crashing is a dataplane problem() (tests/integration/test_control_lab kills the
    real one); one tick of the driver reports it and carries out the runtime's restart (the
    timing rules themselves: tests/unit/test_runtime.py, without a clock)."""
    dataplane = ScriptedDataplane()

    async def scenario() -> tuple[int, str | None]:
        cfg = load_text(loopback_config(free_port(), f"{tmp_path}/control.sock"))
        daemon = Daemon(cfg, dataplane)
        await daemon.start()
        try:
            dataplane.died = "tayga is not running"
            await daemon.tick()  # what the ticker does every second
            return dataplane.starts, daemon.runtime.dataplane_error
        finally:
            await daemon.stop()

    starts, error = asyncio.run(scenario())
    assert starts == 2 and error is None
    assert "dataplane scripted: tayga is not running; restarting it" in caplog.text


def test_a_tick_reads_the_live_flows_only_when_the_runtime_needs_them(tmp_path):
    """A conntrack dump walks the kernel's whole table (Runtime.wants_flows): an idle daemon's
    tick reads none; one with a Stale entry to delete reads them."""

    class Counting(ScriptedDataplane):
        reads = 0

        async def live_flows(self) -> LiveFlows | None:
            self.reads += 1
            return LiveFlows()

    dataplane = Counting()

    async def scenario() -> tuple[int, int, int]:
        extra = "\toption stale_linger '0'\n"
        cfg = load_text(loopback_config(free_port(), f"{tmp_path}/control.sock", extra))
        daemon = Daemon(cfg, dataplane)
        await daemon.start()
        try:
            started = dataplane.reads  # the start reads them (adoption)
            await daemon.tick()
            idle = dataplane.reads - started
            entry = StaticEntry(IPv4Network("192.0.2.10/32"), IPv6Network("2001:db8:1::10/128"))
            await daemon.act(e.OperatorAdd(entry))
            await daemon.act(e.OperatorDelete(entry.ipv4))  # Stale until its flows are gone
            await daemon.tick()
            return idle, dataplane.reads - started, daemon.status()["mappings"]
        finally:
            await daemon.stop()

    idle, reads, left = asyncio.run(scenario())
    assert idle == 0 and reads == 1 and left == 0  # read once, no flow: the entry went
