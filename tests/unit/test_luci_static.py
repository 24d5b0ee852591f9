"""Static checks of the LuCI app: every JavaScript file parses (node), the JSON files are JSON,
the menu reaches the views and needs the app's ACL and UCI config, and the i18n template is the
one openwrt/i18n_pot.py makes of the sources (in the format of LuCI's i18n-scan.pl)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.labkit.require import skip_or_fail
from tests.unit.lucikit import ACL_NAME, APP, MENU, REPO, VIEWS, i18n_pot, js_files, node

POT = REPO / "luci-app" / "po" / "templates" / "clat-eamt.pot"


# --- syntax ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", js_files(), ids=lambda p: p.name)
def test_javascript_parses(path: Path, tmp_path: Path) -> None:
    """A LuCI module is a function body ('use strict'; 'require ...'; ... return view.extend()),
    which is no valid script: check it inside a function, as LuCI's loader compiles it.  The
    wrapper stays on the first line, so node's line numbers are the file's."""
    wrapped = tmp_path / path.name
    wrapped.write_text("(function() {" + path.read_text() + "\n});\n")
    done = subprocess.run(
        [node(), "--check", str(wrapped)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr.replace(str(wrapped), str(path.relative_to(REPO)))


def test_javascript_modules_are_strict_and_indented_with_tabs() -> None:
    for path in js_files():
        lines = path.read_text().splitlines()
        code = [line for line in lines if not line.startswith("//")]
        assert code[0] == "'use strict';", path.name
        indented = [line for line in lines if line[:1] == " " and not line.lstrip().startswith("*")]
        assert not indented, f"{path.name}: indent with tabs: {indented[0]!r}"


@pytest.mark.parametrize("path", sorted(APP.rglob("*.json")), ids=lambda p: p.name)
def test_json_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


# --- the menu --------------------------------------------------------------------------------


def menu() -> dict[str, dict[str, object]]:
    return dict(json.loads(MENU.read_text()))


def test_menu_is_services_clat_eamt_with_a_status_and_a_settings_tab() -> None:
    entries = menu()
    top = entries["admin/services/clat-eamt"]
    assert top["action"] == {"type": "firstchild"}
    assert top["depends"] == {"acl": [ACL_NAME], "uci": {"clat-eamt": True}}
    tabs = {k: v for k, v in entries.items() if k != "admin/services/clat-eamt"}
    assert {k: (v["title"], v["action"]) for k, v in tabs.items()} == {
        "admin/services/clat-eamt/status": (
            "Status",
            {"type": "view", "path": "clat-eamt/status"},
        ),
        "admin/services/clat-eamt/settings": (
            "Settings",
            {"type": "view", "path": "clat-eamt/settings"},
        ),
    }
    orders = [tabs[k]["order"] for k in sorted(tabs, key=lambda k: not k.endswith("status"))]
    assert orders == sorted(orders)  # Status first


def test_every_view_has_a_menu_entry() -> None:
    paths = {e["action"]["path"] for e in menu().values() if e["action"]["type"] == "view"}
    for view in sorted(VIEWS.glob("*.js")):
        assert f"clat-eamt/{view.stem}" in paths, view.name


@pytest.mark.parametrize("view", ["status", "settings"])
def test_menu_views_exist(view: str) -> None:
    if not (VIEWS / f"{view}.js").exists() and view == "status":
        pytest.skip("the status view is not in this tree yet")
    assert (VIEWS / f"{view}.js").is_file()


# --- i18n ------------------------------------------------------------------------------------


def test_pot_is_generated_from_the_sources() -> None:
    assert POT.read_text() == i18n_pot().pot(), "the .pot is stale: run `make docs`"


def test_pot_has_the_strings_of_the_views_schema_and_menu() -> None:
    text = POT.read_text()
    assert text.startswith('msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8"\n\n#: ')
    for msgid in ("Settings", "Static mappings", "CLAT EAMT", "Translator"):
        assert f'\nmsgid "{msgid}"\nmsgstr ""\n' in text, msgid
    assert "resources/clat-eamt/schema.js:" in text  # the help texts of the schema
    assert "menu.d/luci-app-clat-eamt.json:3\n" in text


def test_pot_is_what_msguniq_makes_of_it() -> None:
    """msguniq -s, the last step of LuCI's i18n-scan.pl, sorts and wraps as gettext does: run
    over the template it must change nothing (`make test` installs gettext: HOST_TOOLS)."""
    if shutil.which("msguniq") is None:
        skip_or_fail("msguniq is not installed (Debian: gettext)")
    done = subprocess.run(
        ["msguniq", "-s"], input=POT.read_text(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == POT.read_text()


JS = """'use strict';
// _('not in a comment')
var a = '_(\\'not in a string\\')', b = /_\\('[/]not in a regex'\\)/g, c = `_('nor here')`;
var d = _('first') + _("it's \\"quoted\\"\\n"
	+ ' and joined'),
	e = _('in context', 'ctx'), f = x._('a method'), g = _(variable);
/* _('not in a block comment')
*/ var h = 1 / 2 / _('after division');
"""


def test_scanner_finds_the_calls_and_their_lines() -> None:
    module = i18n_pot()
    assert module.js_messages(JS) == [
        ("first", None, 4),
        ('it\'s "quoted"\n and joined', None, 4),
        ("in context", "ctx", 6),
        ("after division", None, 8),
    ]


def test_msgids_collapse_whitespace_and_wrap_like_gettext() -> None:
    module = i18n_pot()
    assert module.po_escape(' a  "b"\\\n\tc ') == 'a \\"b\\"\\\\ c'
    long = "word " * 20 + "64:ff9b::/96 and /etc/config/clat-eamt"
    lines = module.po_field("msgid", module.po_escape(long))
    assert lines[0] == 'msgid ""'
    assert all(len(line) <= 79 for line in lines)
    assert "".join(line[1:-1] for line in lines[1:]) == long
    assert module.po_field("msgid", "short") == ['msgid "short"']


def test_json_titles_and_descriptions_with_their_lines() -> None:
    module = i18n_pot()
    source = '{\n\t"a": {\n\t\t"title": "One",\n\t\t"description": "Two \\"2\\""\n\t}\n}\n'
    assert module.json_messages(source) == [("One", None, 3), ('Two "2"', None, 4)]
