"""The LuCI settings page (luci-app/.../view/clat-eamt/settings.js, with the generated
clat-eamt/schema.js) rendered in headless Chromium from a UCI config file.

The page around the view is a STAND-IN, not LuCI: the LuCI runtime (luci.js, form.js, uci.js
behind uhttpd and rpcd) is not available here.  tests/browser/standin/luci-form-standin.js
renders LuCI's form.Map, NamedSection with tabs, GridSection and the option widgets (Flag,
Value, ListValue, DynamicList) with LuCI's class names, validates fields as validation.js and
ui.js do (a DynamicList's empty add field through the option's validate()), and saves as form.js
does (parse, then uci.save to the bridge's stand-in of rpcd's uci object, which stages the
changes; Save & Apply commits them to the file); its uci.load reads the config file through the
bridge's /uci, which parses it with the daemon's own UCI parser.  standin/user.js types and
clicks as a user.  The view's Save asks the daemon's check (the ubus method clat-eamt check: the
clat-eamt package's rpcd plugin runs `clat-eamt config check --ubus`).  No daemon and no lab are
needed (no root); without chromium the test skips, in CI it fails.  Screenshots land in the
test's tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clat_eamt.config import load_file, load_text, schema
from tests.browser.bridge import READ_ONLY, Bridge, uci_sections
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
# CONFIG as the daemon accepts it (what Save must keep acceptable): tayga's addresses and Pref64,
# documentation ranges allowed for the lab's addresses.
VALID = CONFIG.replace(
    "\toption require_dnssec '1'\n",
    "\toption require_dnssec '1'\n\toption allow_documentation '1'\n"
    "\toption clat_ipv6 '2001:db8:46::1'\n\tlist pref64 '2001:db8:64::/96'\n",
)
TABS = [
    "General",
    "Translator",
    "DNS",
    "Hosts",
    "Limits",
    "Names and prefixes",
    "Operator's table",
    "Safety net",
]


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
    [port] = field(globals_, "port").find("input", id="cbid.clat-eamt.globals.port")
    assert (port.attrs["value"], port.attrs["placeholder"]) == ("", "5353")  # the default
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


def invalid_fields(page: Node) -> list[str]:
    return [n.attrs.get("id") or n.attrs.get("placeholder", "?") for n in page.find("input")
            if "cbi-input-invalid" in n.attrs.get("class", "").split()]  # fmt: skip


def test_the_page_loads_with_no_field_marked_invalid(tmp_path: Path) -> None:
    """Issue 24: every list's empty add field was marked invalid on load (the option's
    validate() refused ''), and Save failed."""
    chromium()
    config = tmp_path / "clat-eamt"
    config.write_text(CONFIG)
    with Bridge(str(tmp_path / "nothing.sock"), uci_file=config).serving() as bridge:
        page = rendered(dump_dom(bridge.url(SETTINGS_VIEW), budget_ms=3000))
    assert page.find("div", **{"class": "cbi-dynlist"})  # the lists with their add fields
    assert invalid_fields(page) == []


SAVE_STEPS = [
    {"set": "cbid.clat-eamt.globals.port", "value": "5354"},
    {"add": "cbid.clat-eamt.globals.upstream", "value": "2001:db8::54"},
]


def test_a_changed_port_and_a_new_upstream_are_staged_then_applied(tmp_path: Path) -> None:
    chromium()
    config = tmp_path / "clat-eamt"
    config.write_text(VALID)
    load_file(config)  # the daemon accepts it as it is
    with Bridge(str(tmp_path / "nothing.sock"), uci_file=config).serving() as bridge:
        steps = [*SAVE_STEPS, {"click": "save"}]
        page = rendered(dump_dom(bridge.url(SETTINGS_VIEW, steps), budget_ms=20000))
        [root] = page.find("html")
        assert root.attrs.get("data_steps") == "done", page.find("pre")[0].text()
        modals = [m.text() for m in page.find("div", id="modal")]
        assert root.attrs.get("data_save") == "saved", modals
        staged = bridge.router.answer(
            {"id": 1, "params": ["x", "uci", "changes", {"config": "clat-eamt"}]}
        )["result"][1]["changes"]
        assert ["set", "globals", "port", "5354"] in staged
        upstream = ["2001:db8::53", "192.0.2.53#5353", "2001:db8::54"]
        assert ["set", "globals", "upstream", upstream] in staged
        # the rest: flags and choices the form writes as they were (form.js parse writes a
        # widget's value that the file does not hold), no typed field's default
        others = {c[2] for c in staged} - {"port", "upstream"}
        kinds = {o.name: o for o in schema.GLOBAL_OPTIONS}
        assert all(type(kinds[o].type).__name__ in ("Bool", "Choice") for o in others), others
        assert config.read_text() == VALID  # staged, not applied
        assert ("clat-eamt", "check") in bridge.calls  # the daemon's check before staging

        applied = [*SAVE_STEPS, {"click": "save-apply"}]
        page = rendered(dump_dom(bridge.url(SETTINGS_VIEW, applied), budget_ms=20000))
        [root] = page.find("html")
        assert root.attrs.get("data_apply") == "applied"
    before = load_text(VALID).to_json()["globals"]
    after = load_file(config).to_json()["globals"]  # `clat-eamt config check` of the new file
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert changed == {
        "port": (5353, 5354),
        "upstream": (before["upstream"], [*before["upstream"], "2001:db8::54"]),
    }


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"set": "cbid.clat-eamt.globals.port", "value": "70000"}], "an integer 1..65535"),
        ([{"set": "cbid.clat-eamt.globals.pool", "value": "100.127.0.0/31"}],
         "pool 100.127.0.0/31 is too small (at most /30)"),
        ([{"set": "cbid.clat-eamt.globals.ttl_min", "value": "7200"}],
         "ttl_min (7200) must not be larger than ttl_max (3600)"),
        # typed into a list's add field, not added: LuCI would drop it silently at Save
        ([{"add": "cbid.clat-eamt.globals.upstream", "value": "2001:db8::53#99999"}],
         'Option "Upstream resolvers": "2001:db8::53#99999" is not added: a DNS server'),
    ],
)  # fmt: skip
def test_an_invalid_value_blocks_save_with_its_message(tmp_path: Path, steps, message) -> None:
    """A field's own check (port), or the daemon's check of the settings as Save would stage
    them (pool, ttl_min against ttl_max): LuCI's Save error dialog says it, nothing is staged."""
    chromium()
    config = tmp_path / "clat-eamt"
    config.write_text(VALID)
    with Bridge(str(tmp_path / "nothing.sock"), uci_file=config).serving() as bridge:
        url = bridge.url(SETTINGS_VIEW, [*steps, {"click": "save"}])
        page = rendered(dump_dom(url, budget_ms=20000))
        [root] = page.find("html")
        assert root.attrs.get("data_save") == "failed"
        [modal] = page.find("div", id="modal")
        assert "Save error" in modal.text() and message in modal.text(), modal.text()
        assert bridge.router.staged == []
        assert config.read_text() == VALID
        if "integer" in message:  # the field itself is marked, with the option's message
            [port] = page.find("input", id="cbid.clat-eamt.globals.port")
            assert "cbi-input-invalid" in port.attrs["class"]
            assert port.attrs["data_tooltip"] == message


def test_a_read_only_login_cannot_stage(tmp_path: Path) -> None:
    """rpcd's uci set without write access to the config: UBUS_STATUS_PERMISSION_DENIED."""
    chromium()
    config = tmp_path / "clat-eamt"
    config.write_text(VALID)
    bridge = Bridge(str(tmp_path / "nothing.sock"), uci_file=config, login=READ_ONLY)
    with bridge.serving():
        steps = [{"set": "cbid.clat-eamt.globals.port", "value": "5354"}, {"click": "save"}]
        page = rendered(dump_dom(bridge.url(SETTINGS_VIEW, steps), budget_ms=20000))
        assert page.find("html")[0].attrs.get("data_save") == "failed"
        assert bridge.router.staged == []


def test_a_save_without_an_edit_keeps_the_daemons_configuration(tmp_path: Path) -> None:
    """What a Save stages without an edit (real form.js: an option set to its default is
    removed, an option holding one value becomes a list) means the same to the daemon; a
    flag's change is written: enabled (default 1) unchecked stages enabled '0'."""
    chromium()
    config = tmp_path / "clat-eamt"
    config.write_text(VALID)
    with Bridge(str(tmp_path / "nothing.sock"), uci_file=config).serving() as bridge:
        page = rendered(dump_dom(bridge.url(SETTINGS_VIEW, [{"click": "save-apply"}]), 20000))
        assert page.find("html")[0].attrs.get("data_apply") == "applied"
        assert load_file(config).to_json() == load_text(VALID).to_json()
        steps = [{"toggle": "cbid.clat-eamt.globals.enabled"}, {"click": "save"}]
        rendered(dump_dom(bridge.url(SETTINGS_VIEW, steps), budget_ms=20000))
        assert bridge.router.staged == [["set", "globals", "enabled", "0"]]


def grid_steps(ipv4: str, ipv6: str) -> list[dict[str, str]]:
    """Add a static entry through the grid's dialog, as a user does."""
    field = "#modal [data-name={}] input"
    return [
        {"click": "grid-add"},
        {"set": field.format("ipv4"), "value": ipv4},
        {"set": field.format("ipv6"), "value": ipv6},
        {"click": "grid-save"},
    ]


def test_a_static_entry_the_daemon_refuses_is_not_staged_from_its_dialog(tmp_path: Path) -> None:
    """The grid's dialog saves a form.Map of its own (real form.js handleModalSave): the
    daemon's check runs there too, in uci.save; its words go at the top of the dialog."""
    chromium()
    config = tmp_path / "clat-eamt"
    config.write_text(VALID)
    with Bridge(str(tmp_path / "nothing.sock"), uci_file=config).serving() as bridge:
        url = bridge.url(SETTINGS_VIEW, grid_steps("10.0.0.5", "2001:db8:1::5"))
        page = rendered(dump_dom(url, budget_ms=20000))
        assert page.find("html")[0].attrs.get("data_save") == "failed"
        [refused] = page.find("div", **{"class": "alert-message error clat-eamt-refused"})
        assert "@static[2] ipv4: cannot be mapped" in refused.text(), refused.text()
        assert bridge.router.staged == []
        url = bridge.url(SETTINGS_VIEW, grid_steps("192.0.2.20", "2001:db8:1::20"))
        page = rendered(dump_dom(url, budget_ms=20000))
        assert page.find("html")[0].attrs.get("data_save") == "saved"
        staged = bridge.router.staged
        assert staged[0][0] == "add" and staged[0][2] == "static"
        assert ["set", staged[0][1], "ipv4", "192.0.2.20"] in staged
