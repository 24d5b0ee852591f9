"""The LuCI status page (luci-app/.../view/clat-eamt/status.js) in headless Chromium against a
running daemon without a lab: the real daemon on loopback with a scripted dataplane
(tests/unit/standins.py), its control socket behind the bridge's stand-ins of uhttpd, rpcd (the
clat-eamt package's plugin, run for real; the app's ACL; `session access`) and ubusd
(tests/browser/bridge.py, tests/unit/fakeubus.py: rules and sources there), and the stand-in of
LuCI's runtime (tests/browser/standin/).  No root needed; without chromium the tests skip, in CI
they fail.

What it checks (issue 24): a poll of the page is one HTTP request (one call, overview, one run
of the plugin and one daemon call); a login with read access only sees no Delete, Flush or
Restart buttons, and a write refused by rpcd says the login lacks write access; a large table is
capped, with how many there are.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from ipaddress import IPv4Network, IPv6Address
from pathlib import Path

from clat_eamt.config import load_text
from clat_eamt.control.client import call
from clat_eamt.core.counters import Count
from clat_eamt.core.safety import BrakeState, SafetyPolicy
from clat_eamt.daemon import Daemon
from tests.browser.bridge import READ_ONLY, SESSION_ID, Bridge, Login
from tests.browser.chromium import Node, chromium, dump_dom, rendered
from tests.browser.scene import OVERVIEW_WIDGET, STATUS_VIEW
from tests.unit.standins import ScriptedDataplane, free_port, loopback_config

STATIC = {"ipv4": "192.0.2.99", "ipv6": "2001:db8:1::99", "comment": "office NAS"}


@contextlib.contextmanager
def running_daemon(tmp_path: Path, braked: bool = False) -> Iterator[str]:
    """The daemon in a thread of its own; its control socket's path.  ``braked``: its safety
    net on (the scripted dataplane has none) with the brake engaged and one rescue counted."""
    socket = str(tmp_path / "control.sock")
    # a pool (RFC 2544 space) with room for the capped table's entries
    text = loopback_config(free_port(), socket).replace("198.51.100.128/25", "198.18.0.0/16")
    cfg = load_text(text)
    loop = asyncio.new_event_loop()
    daemon = Daemon(cfg, ScriptedDataplane(), bus=None)
    loop.run_until_complete(daemon.start())
    if braked:
        net = daemon.rescuer.safety
        net.policy = SafetyPolicy()
        net.brake, net.brake_until = BrakeState.ENGAGED, daemon.clock() + 42
        net.counters[Count.SAFETY_RESCUED] += 3
        net.counters[Count.BRAKE_ENGAGED] += 1
        net.steered("flow", IPv6Address("2001:db8:1::10"), daemon.clock() - 5)
        net.due(daemon.clock())  # one broken verdict to show
        # STATIC's destination suspended: its target's /64 is the broken one (core.suspend)
        daemon.rescuer.suspension.held[IPv4Network(f"{STATIC['ipv4']}/32")] = daemon.clock() + 42
        net.counters[Count.SUSPENDED] += 1
    thread = threading.Thread(target=loop.run_forever, name="daemon", daemon=True)
    thread.start()
    try:
        yield socket
    finally:
        asyncio.run_coroutine_threadsafe(daemon.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def by_id(page: Node, id_: str) -> Node:
    [node] = page.find(id=id_)
    return node


def test_one_request_per_poll(tmp_path: Path) -> None:
    chromium()
    with running_daemon(tmp_path) as socket, Bridge(socket).serving() as bridge:
        call(socket, "add", STATIC)
        page = rendered(dump_dom(bridge.url(STATUS_VIEW), budget_ms=16000))
        polls = int(page.find("html")[0].attrs.get("data_polls", "0"))
        assert polls >= 3  # 16 s of virtual time, one refresh every 5 s (the first is load's)
        asked = [c for c in bridge.calls if c[0] != "session"]
        # load(): one overview; each refresh after it: one overview, nothing else
        assert asked == [("clat-eamt", "overview")] * len(asked), asked
        assert len(asked) == polls, (polls, asked)
        [row] = by_id(page, "clat-eamt-mappings").find("tr", data_ipv4=STATIC["ipv4"])
        assert STATIC["comment"] in row.text() and row.find("button", data_action="del")
        assert page.find("button", data_action="flush")
        counters = by_id(page, "clat-eamt-all-counters").text()
        assert "mappings.created" in counters or "created" in counters


def test_the_safety_net_s_brake_and_rescues_show(tmp_path: Path) -> None:
    """Issue 25: steering suspended router-wide must be seen on the page, with the counters."""
    chromium()
    with running_daemon(tmp_path, braked=True) as socket, Bridge(socket).serving() as bridge:
        call(socket, "add", STATIC)
        page = rendered(dump_dom(bridge.url(STATUS_VIEW), budget_ms=2000))
        text = page.text()
        assert "BRAKE ENGAGED: steering suspended (trial in 4" in text
        assert "rescued 4 (0 conntrack entries deleted), stale by broken 0, suspended 1" in text
        [row] = by_id(page, "clat-eamt-mappings").find("tr", data_ipv4=STATIC["ipv4"])
        assert "valid (suspended: target broken)" in row.text()  # Valid, not steered now
        assert "brake engaged 1 released 0" in text
        assert "broken now: 2001:db8:1::/64 (for 0" in text and "2001:db8:1::10 (for 0" in text


def test_a_read_only_login_gets_no_buttons_it_cannot_use(tmp_path: Path) -> None:
    chromium()
    with running_daemon(tmp_path) as socket:
        call(socket, "add", STATIC)
        with Bridge(socket, login=READ_ONLY).serving() as bridge:
            page = rendered(dump_dom(bridge.url(STATUS_VIEW), budget_ms=2000))
            [row] = by_id(page, "clat-eamt-mappings").find("tr", data_ipv4=STATIC["ipv4"])
            assert not row.find("button")
            assert not page.find("button", data_action="flush")
            assert ("session", "access") in bridge.calls  # rpcd asked, not guessed
            denied = bridge.router.answer(
                {"id": 1, "params": [SESSION_ID, "clat-eamt", "flush", {}]}
            )
            assert denied["error"] == {"code": -32002, "message": "Access denied"}


def test_a_large_table_is_capped_and_says_so(tmp_path: Path) -> None:
    chromium()
    with running_daemon(tmp_path) as socket:
        for i in range(205):
            call(socket, "add", {"ipv4": f"192.0.2.{i + 1}", "ipv6": f"2001:db8:1::{i + 1:x}"})
        with Bridge(socket).serving() as bridge:
            page = rendered(dump_dom(bridge.url(STATUS_VIEW), budget_ms=2000))
            rows = by_id(page, "clat-eamt-mappings").find("tr", data_ipv4="")
            assert len(rows) == 200
            capped = by_id(page, "clat-eamt-mappings-capped").text()
            assert "The first 200 of 205 mappings" in capped


def test_a_login_without_the_apps_group_is_told_what_it_lacks(tmp_path: Path) -> None:
    """uhttpd answers -32002 "Access denied" before rpcd or the object is asked (ubus.c
    uh_ubus_allowed); the Overview box and the page say the login lacks read access."""
    chromium()
    nobody = Login(read=(), write=())
    with running_daemon(tmp_path) as socket, Bridge(socket, login=nobody).serving() as bridge:
        widget = rendered(dump_dom(bridge.url(OVERVIEW_WIDGET), budget_ms=2000))
        text = by_id(widget, "clat-eamt-overview").text()
        assert "this login may not read clat-eamt: it needs read access" in text
        page = rendered(dump_dom(bridge.url(STATUS_VIEW), budget_ms=2000))
        notes = by_id(page, "clat-eamt-notes").text()
        assert "your login may not read clat-eamt: it needs read access" in notes
        assert not page.find("button")


def test_the_health_table_shows_the_memories_and_the_operators_table(tmp_path: Path) -> None:
    """The status parts `memory` and `provider` in rows of their own, worded as
    `clat-eamt status` words them (control/views.py), not as raw keys (issue 26, issue 28)."""
    chromium()
    table = "serial 7\nrefresh 3600\n192.0.2.1 2001:db8:1::1 ttl=600 # cdn\n"
    with running_daemon(tmp_path) as socket:
        call(socket, "provider", {"table": table})
        with Bridge(socket).serving() as bridge:
            page = rendered(dump_dom(bridge.url(STATUS_VIEW), budget_ms=2000))
    rows = {
        row.find("td")[0].text(): row.find("td")[1].text()
        for row in by_id(page, "clat-eamt-health").find("tr")
    }
    assert rows["Operator's table"].startswith(
        "pushed only: serial 7, 1 entries (1 installed); last push taken"
    ), rows
    memory = rows["Memory"]
    assert memory.startswith("answers seen 0 of ") and "AAAA kept 0 of " in memory, rows
    assert "provider" not in rows and "memory" not in rows  # no raw keys


def test_delete_says_a_configured_entry_comes_back_at_the_next_reload(tmp_path: Path) -> None:
    """The Delete button, clicked: the entry goes stale, and the page says that an entry of the
    configuration is revived by the next reload (found on the real runtime: a Save & Apply
    brought a deleted entry back without a word)."""
    chromium()
    with running_daemon(tmp_path) as socket:
        call(socket, "add", STATIC)
        with Bridge(socket).serving() as bridge:
            steps = [{"click": "del"}]
            page = rendered(dump_dom(bridge.url(STATUS_VIEW, steps), budget_ms=4000))
            assert ("clat-eamt", "del") in bridge.calls
    assert page.find("html")[0].attrs.get("data_steps") == "done"
    [said] = page.find("p", **{"class": "clat-eamt-deleted"})
    assert said.text().startswith(f"{STATIC['ipv4']} deleted: new connections take the NAT64")
    assert "remove it on the Settings page" in said.text()
    [row] = by_id(page, "clat-eamt-mappings").find("tr", data_ipv4=STATIC["ipv4"])
    assert "stale" in row.text() and not row.find("button")
