"""The LuCI settings form is the option schema: schema.js is generated from it (and current),
holds every option with its LuCI datatype, and the settings view, run in node against a
stand-in of LuCI's form (luci_harness.js), shows every option of the schema exactly once, with
the widget, datatype, default and help the schema gives it."""

from __future__ import annotations

import html
import json
import re
import subprocess
from typing import Any

import pytest

from clat_eamt.config import schema
from clat_eamt.config.render import LUCI_SCHEMA_JS, js_string, luci_options, luci_schema_js
from clat_eamt.config.types import Bool, Choice
from tests.unit.lucikit import REPO, node, run_harness

ALL_OPTIONS = schema.GLOBAL_OPTIONS + schema.STATIC_OPTIONS
WIDGET_CLASS = {"flag": "Flag", "choice": "ListValue", "list": "DynamicList", "value": "Value"}
TRANSLATOR_ONLY = {
    ("auto", "external"): {"clat_device"},
    ("tayga",): {"tun", "clat_ipv4", "clat_ipv6", "tayga_ipv4", "tayga_ipv6"},
    ("jool",): {"jool_instance", "jool_netns"},
}


def default_word(option: schema.Option[Any]) -> str:
    return "" if option.required or option.is_list else option.words(option.default)[0]


@pytest.fixture(scope="module")
def form() -> dict[str, Any]:
    return dict(run_harness("view", "view.clat-eamt.settings"))


def options_of(form: dict[str, Any], section: str) -> list[dict[str, Any]]:
    (found,) = [s for s in form["sections"] if s["type"] == section]
    return list(found["options"])


# --- schema.js -------------------------------------------------------------------------------


def test_schema_js_is_generated_from_the_schema() -> None:
    assert (REPO / LUCI_SCHEMA_JS).read_text() == luci_schema_js(), (
        f"{LUCI_SCHEMA_JS} is stale: run `make docs`"
    )


def test_schema_js_holds_every_option_with_its_datatype() -> None:
    data = run_harness("module", "clat-eamt.schema")
    by_name = {row["name"]: row for row in data["options"]}
    assert [row["name"] for row in data["options"]] == [o.name for o in ALL_OPTIONS]
    assert len(by_name) == len(ALL_OPTIONS)
    for option in ALL_OPTIONS:
        row = by_name[option.name]
        assert row["datatype"] == option.luci_datatype, option.name
        assert row["rule"] == option.luci_rule, option.name
        assert row["section"] == option.section
        assert row["help"] == option.full_help
        assert row["restart"] is option.restart
        assert row["required"] is option.required
        assert row["default"] == default_word(option)
        if option.is_list:
            assert row["widget"] == "list"
        elif isinstance(option.type, Bool):
            assert row["widget"] == "flag"
        elif isinstance(option.type, Choice):
            assert (row["widget"], row["values"]) == ("choice", list(option.type.choices))
        else:
            assert row["widget"] == "value"
    assert data["options"] == luci_options()
    assert data["sections"] == {s: schema.SECTION_HELP[s] for s in schema.OPTIONS}
    assert "Takes effect on restart" in by_name["translator"]["help"]


@pytest.mark.parametrize("text", ["plain", "it's", "back\\slash", "tab\there", "new\nline", "ü"])
def test_js_string_is_the_text_in_javascript(text: str) -> None:
    literal = js_string(text)
    assert literal.startswith("'") and literal.endswith("'")
    done = subprocess.run(
        [node(), "-e", f"process.stdout.write(JSON.stringify({literal}))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == text


# --- the settings view -----------------------------------------------------------------------


def test_every_schema_option_is_in_the_form_exactly_once(form: dict[str, Any]) -> None:
    for section, options in schema.OPTIONS.items():
        names = [o["name"] for o in options_of(form, section) if not o["name"].startswith("_")]
        assert sorted(names) == sorted(o.name for o in options), section
        assert len(names) == len(set(names)), section


def test_form_options_take_the_schema_datatype_widget_default_and_help(
    form: dict[str, Any],
) -> None:
    for section, options in schema.OPTIONS.items():
        shown = {o["name"]: o for o in options_of(form, section)}
        for option in options:
            field = shown[option.name]
            row = next(r for r in luci_options() if r["name"] == option.name)
            if row["widget"] in ("flag", "choice"):  # the widget offers only the daemon's words
                assert field["datatype"] == option.luci_datatype, option.name
            else:  # checked by clat-eamt/validate.js with the rule (test_luci_validate.py)
                assert "datatype" not in field and field["validates"], option.name
            assert field["kind"] == WIDGET_CLASS[row["widget"]], option.name
            assert field["values"] == row["values"], option.name
            if row["widget"] in ("flag", "choice"):
                assert field.get("default") == default_word(option), option.name
            else:  # an empty field is the default: shown, never written by the form
                assert field.get("default") is None, option.name
                assert field["placeholder"] == (default_word(option) or row["example"]), option.name
            help_html = html.escape(option.full_help, quote=False)
            assert field["description"] == re.sub(r"`([^`]*)`", r"<code>\1</code>", help_html)
            # a label of its own, from the view's tab map (not the fallback: the bare name)
            assert field["title"] and field["title"] != option.name, option.name
            if row["widget"] == "flag":  # rmempty: a flag at its default is removed, '0' of
                assert "rmempty" not in field, option.name  # enabled (default 1) is written
            if option.required:
                assert (field["optional"], field["rmempty"]) == (False, False)


def test_globals_tabs(form: dict[str, Any]) -> None:
    (section,) = [s for s in form["sections"] if s["kind"] == "NamedSection"]
    assert section["args"] == ["globals", "globals"]
    tabs = [t["name"] for t in section["tabs"]]
    assert tabs == [
        "general",
        "translator",
        "dns",
        "hosts",
        "limits",
        "names",
        "provider",
        "safety",
    ]
    assert {o["tab"] for o in section["options"]} == set(tabs)
    assert form["config"] == "clat-eamt"
    # load() creates the section when the file has none (absent means all defaults)
    created = form["uci_after_load"]["clat-eamt"]
    assert list(created) == ["globals"] and created["globals"][".type"] == "globals"


def test_static_grid(form: dict[str, Any]) -> None:
    (grid,) = [s for s in form["sections"] if s["kind"] == "GridSection"]
    assert grid["type"] == "static"
    assert (grid["anonymous"], grid["addremove"]) == (True, True)
    assert [o["name"] for o in grid["options"]] == ["ipv4", "ipv6", "comment"]


def test_translator_options_depend_on_their_translator(form: dict[str, Any]) -> None:
    shown = {o["name"]: o for o in options_of(form, "globals")}
    for translators, names in TRANSLATOR_ONLY.items():
        for name in names:
            assert shown[name]["depends_on"] == [{"translator": t} for t in translators], name
            assert shown[name]["retain"] is True, name
    only = set().union(*TRANSLATOR_ONLY.values()) | {"pref64"}
    assert all(not o["depends_on"] for n, o in shown.items() if n not in only | {"_pref64_mode"})


def test_pref64_is_automatic_when_its_list_is_empty(form: dict[str, Any]) -> None:
    shown = {o["name"]: o for o in options_of(form, "globals")}
    mode = shown["_pref64_mode"]
    assert (mode["kind"], mode["values"]) == ("ListValue", ["auto", "manual"])
    assert shown["pref64"]["depends_on"] == [{"_pref64_mode": "manual"}]
    assert "retain" not in shown["pref64"]  # "auto" empties the list on save
    assert form["pref64_mode"] == {"empty": "auto", "set": "manual"}


def test_the_page_says_where_the_daemon_reports_a_refused_file(form: dict[str, Any]) -> None:
    assert "clat-eamt config check /etc/config/clat-eamt" in form["description"]
    assert "/admin/services/clat-eamt/status" in form["description"]
