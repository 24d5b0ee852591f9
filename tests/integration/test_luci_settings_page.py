"""The LuCI settings page (luci-app/.../view/clat-eamt/settings.js, with the generated
clat-eamt/schema.js) rendered in headless Chromium from a UCI config file.

The page around the view is a STAND-IN, not LuCI: the LuCI runtime (luci.js, form.js, uci.js
behind uhttpd and rpcd) is not available here.  tests/browser/standin/luci-form-standin.js
renders LuCI's form.Map, NamedSection with tabs, GridSection and the option widgets (Flag,
Value, ListValue, DynamicList) read-only, with LuCI's class names; its uci.load reads the config
file through the bridge's /uci, which parses it with the daemon's own UCI parser.  It does not
edit, validate or save.  So what is checked is what the view makes of a real config file: every
tab of the globals section, the file's values in their widgets, options of the other translator
hidden, and one grid row per static section.  No daemon and no lab are needed (no root); without
chromium the test skips, in CI it fails.  Screenshots land in the test's tmp_path.
"""

from __future__ import annotations

from pathlib import Path

from clat_eamt.config import schema
from tests.browser.bridge import Bridge, uci_sections
from tests.browser.chromium import Node, chromium, dump_dom, parse, rendered, screenshot
from tests.browser.scene import SETTINGS_VIEW

CONFIG = """\
config globals 'globals'
\toption enabled '1'
\toption translator 'tayga'
\toption pool '100.99.0.0/16'
\toption ttl_min '45'
\toption host_mode 'all'
\tlist upstream '2001:db8::53'
\tlist upstream '192.0.2.53#5353'
\toption require_dnssec '1'

config static 'nas'
\toption ipv4 '192.0.2.99'
\toption ipv6 '2001:db8:1::99'
\toption comment 'office NAS'

config static
\toption ipv4 '192.0.2.100/31'
\toption ipv6 '2001:db8:1::100/127'
"""
TABS = ["General", "Translator", "DNS", "Hosts", "Limits", "Names and prefixes", "Operator's table"]


def field(section: Node, name: str) -> Node:
    [node] = section.find("div", data_name=name)
    return node


def test_uci_sections_has_luci_shape() -> None:
    sections = uci_sections(CONFIG)
    assert list(sections) == ["globals", "nas", "cfg000002"]
    assert sections["globals"]["upstream"] == ["2001:db8::53", "192.0.2.53#5353"]
    assert sections["globals"]["pool"] == "100.99.0.0/16"
    assert sections["cfg000002"][".anonymous"] is True
    assert sections["nas"] | {} == {
        ".name": "nas", ".type": "static", ".anonymous": False, ".index": 1,
        "ipv4": "192.0.2.99", "ipv6": "2001:db8:1::99", "comment": "office NAS",
    }  # fmt: skip


def test_settings_page_shows_tabs_values_and_static_rows(tmp_path: Path) -> None:
    chromium()
    config = tmp_path / "clat-eamt"
    config.write_text(CONFIG)
    with Bridge(str(tmp_path / "nothing.sock"), uci_file=config).serving() as bridge:
        page = rendered(dump_dom(bridge.url(SETTINGS_VIEW), budget_ms=2000))
        screenshot(bridge.url(SETTINGS_VIEW), tmp_path / "settings.png", size="1280,1400")
    [globals_] = page.find("div", data_section="globals")
    [menu] = globals_.find("ul", **{"class": "cbi-tabmenu"})
    assert [li.text() for li in menu.find("li")] == TABS
    panes = globals_.find("div", data_tab="")
    assert [p.attrs["data_tab_title"] for p in panes] == TABS

    def value(name: str) -> str:
        [node] = field(globals_, name).find("input", id=f"cbid.clat-eamt.globals.{name}")
        return node.attrs["value"]

    assert value("pool") == "100.99.0.0/16"
    assert value("ttl_min") == "45"
    assert value("port") == "5353"  # not in the file: the schema's default
    [selected] = field(globals_, "translator").find("option", selected="")
    assert selected.attrs["value"] == "tayga"
    [selected] = field(globals_, "host_mode").find("option", selected="")
    assert selected.attrs["value"] == "all"
    upstream = field(globals_, "upstream").find("div", **{"class": "item"})
    assert [i.attrs["data_value"] for i in upstream] == ["2001:db8::53", "192.0.2.53#5353"]
    assert field(globals_, "require_dnssec").find("input", checked="")
    assert "hidden" not in field(globals_, "tun").attrs["class"]  # tayga's
    assert "hidden" in field(globals_, "jool_instance").attrs["class"]  # jool's
    assert "hidden" in field(globals_, "pref64").attrs["class"]  # Pref64 from DNS: no list
    names = {n.attrs["data_name"] for n in globals_.find("div", data_name="")}
    assert names >= {o.name for o in schema.GLOBAL_OPTIONS}

    [grid] = page.find("div", data_section_type="static")
    rows = grid.find("tr", data_sid="")
    cells = [{td.attrs["data_name"]: td.text() for td in row.find("td")} for row in rows]
    assert cells == [
        {"ipv4": "192.0.2.99", "ipv6": "2001:db8:1::99", "comment": "office NAS"},
        {"ipv4": "192.0.2.100/31", "ipv6": "2001:db8:1::100/127", "comment": ""},
    ]
    assert [r.attrs["data_sid"] for r in rows] == ["nas", "cfg000002"]


def test_settings_page_without_a_config_file_fails_visibly(tmp_path: Path) -> None:
    """No file: /uci answers 404, uci.load rejects and the stand-in reports it."""
    chromium()
    with Bridge(str(tmp_path / "nothing.sock")).serving() as bridge:
        page = parse(dump_dom(bridge.url(SETTINGS_VIEW), budget_ms=2000))
    [root] = page.find("html")
    assert root.attrs.get("data_standin") == "failed"
    [errors] = page.find("pre", id="standin-errors")
    assert "HTTP 404 for /uci?config=clat-eamt" in errors.text()
