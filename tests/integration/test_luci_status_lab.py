"""The LuCI status page (luci-app/.../view/clat-eamt/status.js) and the overview widget, rendered
in headless Chromium against the real daemon on the lab's home router (tayga, real flows).

The page around the view is a STAND-IN, not LuCI: the LuCI runtime (luci.js, rpc.js, ui.js
behind uhttpd and rpcd) is not available here.  tests/browser/standin/ supplies the small part
of LuCI's JavaScript API the views use (L, view, baseclass, rpc, poll, ui, E, _; rpc.declare
resolving with the bare ubus status number of a failed call, as rpc.js does), loads the real
view file unchanged and runs its load() and render(); tests/browser/bridge.py answers its ubus
calls as uhttpd (which adds ubus_rpc_session), rpcd (the app's ACL, the clat-eamt package's
plugin, run for real)
and ubusd would, stand-ins too, with the daemon's real ubus object behind them, asking the
daemon's control socket.  So what is checked is what the view makes of the daemon's real
answers: the mappings table lists the daemon's live mappings, the chart draws its flow history,
the poll refreshes without errors, a page load asks once, a stopped daemon gets a note with a
start button, an object that answers a bare status number gets the "cannot ask" note and no
exception, and a deleted static entry loses its Delete button.  Screenshots land in the test's
tmp_path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.bridge import SESSION_ID, Bridge
from tests.browser.chromium import Node, chromium, dump_dom, rendered, screenshot
from tests.browser.scene import OVERVIEW_WIDGET, STATIC, STATUS_VIEW, V6ONLY, Scene, live_scene
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS, require_root, require_tools

POINT = re.compile(r"^\d+(\.\d+)?,\d+(\.\d+)?$")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    chromium()
    with live_scene(tmp_path_factory.mktemp("luci")) as live:
        yield live


def by_id(page: Node, id_: str) -> Node:
    [node] = page.find(id=id_)
    return node


@pytest.mark.lab
def test_status_view_shows_the_daemons_mappings_health_and_chart(scene: Scene, tmp_path: Path):
    page = rendered(dump_dom(scene.bridge.url(STATUS_VIEW)))
    table = by_id(page, "clat-eamt-mappings")
    rows = {r.attrs["data_ipv4"]: r for r in table.find("tr", data_ipv4="")}
    mappings = scene.ask("mappings")
    assert set(rows) == {m["ipv4"] for m in mappings}
    for name, ipv4 in scene.mapped.items():
        assert name in rows[ipv4].text()
        assert not rows[ipv4].find("button")  # learned entries go by flush, not one by one
    static = rows[STATIC["ipv4"]]
    assert STATIC["comment"] in static.text() and STATIC["ipv6"] in static.text()
    assert static.find("button", data_action="del")

    health = by_id(page, "clat-eamt-health").text()
    status = scene.ask("status")
    assert "nftables on external: ok" in health
    assert "clat (tun, IPv4 default route), Pref64 2001:db8:64::/96, nft via libnftables" in health
    assert f"{status['pref64']['prefixes'][0]} (source: config)" in health
    assert status["flows"]["native"] >= 1 and status["flows"]["nat64"] >= 1
    native, nat64 = status["flows"]["native"], status["flows"]["nat64"]
    assert f"{native} native (EAM), {nat64} through the NAT64" in health
    assert f"{status['mappings']} now; created" in by_id(page, "clat-eamt-counters").text()

    chart = by_id(page, "clat-eamt-chart")
    samples = len(scene.ask("history")["points"])
    for series in ("native", "nat64"):
        [line] = chart.find("polyline", **{"class": series})
        points = line.attrs["points"].split()
        assert points and all(POINT.match(p) for p in points)
        assert len(points) <= samples

    lan_macs = {h.attrs["data_mac"] for h in by_id(page, "clat-eamt-hosts").find("tr", data_mac="")}
    assert scene.router.lab.LAN_MAC in lan_macs
    [html] = page.find("html")
    assert int(html.attrs.get("data_polls", "0")) >= 2  # the 5 s refresh ran (virtual time)
    # everything above came from one method, one call per refresh
    assert {method for obj, method in scene.bridge.calls if obj == "clat-eamt"} == {"overview"}
    screenshot(scene.bridge.url(STATUS_VIEW), tmp_path / "status.png")


@pytest.mark.lab
def test_status_view_shows_ipv6_only_entries_as_their_own_kind(scene: Scene):
    page = rendered(dump_dom(scene.bridge.url(STATUS_VIEW), budget_ms=2000))
    [row] = by_id(page, "clat-eamt-mappings").find("tr", data_ipv4=scene.mapped[V6ONLY])
    assert "ipv6-only" in row.text() and "2001:db8:1::70" in row.text()
    counters = by_id(page, "clat-eamt-counters").text()
    assert "IPv6-only names1 mappings now, 1 A answers made, 0 pool addresses in quarantine" in (
        counters
    )


@pytest.mark.lab
def test_overview_widget_shows_daemon_mappings_and_flows(scene: Scene, tmp_path: Path):
    page = rendered(dump_dom(scene.bridge.url(OVERVIEW_WIDGET), budget_ms=2000))
    text = by_id(page, "clat-eamt-overview").text()
    status = scene.ask("status")
    assert "running, translator nftables on external ok" in text
    assert f"Mappings{status['mappings']}" in text
    assert f"{status['flows']['native']} native (EAM)" in text
    screenshot(scene.bridge.url(OVERVIEW_WIDGET), tmp_path / "overview.png", size="1280,400")


@pytest.mark.lab
def test_a_page_load_asks_once(scene: Scene):
    before = len(scene.bridge.calls)
    rendered(dump_dom(scene.bridge.url(STATUS_VIEW), budget_ms=2000))
    asked = [method for obj, method in scene.bridge.calls[before:] if obj == "clat-eamt"]
    assert asked == ["overview"]  # one call: what the page shows


@pytest.mark.lab
def test_a_deleted_static_entry_has_no_delete_button(scene: Scene):
    """Runs last: it deletes the scene's static entry (as the Delete button does)."""
    done = scene.bridge.router.answer(
        {"id": 1, "params": [SESSION_ID, "clat-eamt", "del", {"ipv4": STATIC["ipv4"]}]}
    )
    assert done["result"][0] == 0 and done["result"][1]["deleted"][0]["state"] == "stale"
    page = rendered(dump_dom(scene.bridge.url(STATUS_VIEW), budget_ms=2000))
    [row] = by_id(page, "clat-eamt-mappings").find("tr", data_ipv4=STATIC["ipv4"])
    assert "stale" in row.text() and not row.find("button")


def test_a_stopped_daemon_gets_a_note_and_a_start_button(tmp_path: Path):
    """No lab: nothing answers on the socket, so the daemon's object is not on the bus and the
    package's rpcd plugin answers that the daemon is not running."""
    chromium()
    with Bridge(str(tmp_path / "nothing.sock")).serving() as bridge:
        page = rendered(dump_dom(bridge.url(STATUS_VIEW), budget_ms=2000))
        notes = by_id(page, "clat-eamt-notes")
        assert "daemon is not running" in notes.text()
        assert notes.find("button", data_action="start")
        assert not page.find(id="clat-eamt-mappings")
        assert ("rc", "list") in bridge.calls
        widget = rendered(dump_dom(bridge.url(OVERVIEW_WIDGET), budget_ms=2000))
        assert "not running" in by_id(widget, "clat-eamt-overview").text()
        screenshot(bridge.url(STATUS_VIEW), tmp_path / "stopped.png", size="1280,400")


PLUGINS = {  # an object clat-eamt that answers a bare status: rpcd's rules (tests/unit/fakeubus.py)
    5: '#!/bin/sh\n[ "$1" = list ] && echo \'{"status":{},"overview":{}}\'\nexit 0\n',  # NO_DATA
    2: '#!/bin/sh\n[ "$1" = list ] && echo \'{"status":{},"overview":{}}\' || echo \'[]\'\n',
}


@pytest.mark.parametrize("status", sorted(PLUGINS))
def test_a_status_number_gets_the_cannot_ask_note_not_an_exception(tmp_path: Path, status: int):
    """rpc.declare resolves with the bare status number when the call fails: the views must say
    so and what to do, and the overview include must not throw (it would take LuCI's whole
    Overview page down)."""
    chromium()
    plugin = tmp_path / "rpcd" / "clat-eamt"
    plugin.parent.mkdir()
    plugin.write_text(PLUGINS[status])
    plugin.chmod(0o755)
    with Bridge(str(tmp_path / "nothing.sock"), rpcd_plugins=plugin.parent).serving() as bridge:
        request = {"id": 1, "params": [SESSION_ID, "clat-eamt", "status", {}]}
        assert bridge.router.answer(request)["result"] == [status]
        page = rendered(dump_dom(bridge.url(STATUS_VIEW), budget_ms=2000))
        [cannot] = by_id(page, "clat-eamt-notes").find("p", **{"class": "clat-eamt-cannot-ask"})
        said = "Cannot ask the clat-eamt daemon: the ubus object clat-eamt answered with"
        assert f"{said} ubus status {status}" in cannot.text()
        assert "logread -e clat-eamt" in by_id(page, "clat-eamt-notes").text()
        assert not page.find(id="clat-eamt-mappings")
        widget = rendered(dump_dom(bridge.url(OVERVIEW_WIDGET), budget_ms=2000))
        text = by_id(widget, "clat-eamt-overview").text()
        assert f"cannot ask the daemon (ubus status {status})" in text
        screenshot(bridge.url(STATUS_VIEW), tmp_path / "cannot-ask.png", size="1280,400")


def test_the_bridge_answers_as_uhttpd_rpcd_and_ubusd_do(tmp_path: Path):
    with Bridge(str(tmp_path / "nothing.sock")).serving() as bridge:

        def ask(obj: str, method: str, args: dict[str, str]) -> dict[str, object]:
            return bridge.router.answer({"id": 7, "params": [SESSION_ID, obj, method, args]})

        assert ask("clat-eamt", "add", {})["error"] == {"code": -32002, "message": "Access denied"}
        assert ask("clat-eamt", "config", {})["error"]["code"] == -32002  # not in the ACL
        assert ask("network", "status", {})["error"] == {
            "code": -32000, "message": "Object not found"
        }  # fmt: skip
        assert ask("clat-eamt.daemon", "status", {})["error"]["code"] == -32000  # no daemon
        session = {"ubus_rpc_session": "x"}
        assert ask("clat-eamt", "status", session)["error"]["code"] == -32602
        status, reply = ask("clat-eamt", "status", {})["result"]  # type: ignore[misc]
        assert status == 0 and reply["error"]["code"] == "not-running"
