"""Artefacts derived from the schema: the README options table, the default UCI file and the
data module of the LuCI settings form.

All are committed and a test fails when one is stale, so the schema stays the only place where
an option is described.
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

from clat_eamt.config.schema import (
    CONFIG_PATH,
    GLOBAL_OPTIONS,
    GLOBALS,
    SECTION_HELP,
    SECTION_SYNTAX,
    STATIC,
    STATIC_OPTIONS,
    Option,
)
from clat_eamt.config.types import Bool, Choice
from clat_eamt.config.uci import quote

WIDTH = 78  # comment lines of the default config, counting a tab as 8 columns
_TAB = 8
# The settings form's data module, relative to the repository (LuCI loads it as clat-eamt.schema).
LUCI_SCHEMA_JS = "luci-app/htdocs/luci-static/resources/clat-eamt/schema.js"
_MARKERS = re.compile(r"(^<!-- BEGIN options.*?-->\n)(.*?)(^<!-- END options -->)", re.M | re.S)


def _default_cell(option: Option[Any]) -> str:
    if option.required:
        return "*(required)*"
    words = option.words(option.default)
    if not words or words == ("",):
        return "*(empty)*"
    return " ".join(f"`{word}`" for word in words)


def _table(options: tuple[Option[Any], ...]) -> list[str]:
    rows = ["| option | type | default | description |", "|---|---|---|---|"]
    for option in options:
        cells = (f"`{option.name}`", option.type_name, _default_cell(option), option.full_help)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return rows


def options_markdown() -> str:
    """The options of both section types as Markdown (for the README)."""
    lines: list[str] = []
    for section, options in ((GLOBALS, GLOBAL_OPTIONS), (STATIC, STATIC_OPTIONS)):
        heading = f"Section `{SECTION_SYNTAX[section]}`. {SECTION_HELP[section]}"
        lines += ["", heading, "", *_table(options)]
    return "\n".join(lines[1:]) + "\n"


def readme_with_options(readme_text: str) -> str:
    """``readme_text`` with the table between the options markers replaced (markers kept)."""
    match = _MARKERS.search(readme_text)
    if match is None:
        raise ValueError(
            "README has no '<!-- BEGIN options ... -->' / '<!-- END options -->' marker lines"
        )
    body = "\n" + options_markdown() + "\n"
    return readme_text[: match.start(2)] + body + readme_text[match.end(2) :]


def _comment(text: str, indent: str = "", hanging: str = "") -> list[str]:
    """``text`` as '# ' comment lines wrapped to WIDTH columns."""
    used = len(indent.expandtabs(_TAB)) + 2
    wrapped = textwrap.wrap(text, WIDTH - used, subsequent_indent=hanging, break_on_hyphens=False)
    return [f"{indent}# {line}" for line in wrapped]


def uci_defaults() -> str:
    """The default /etc/config/clat-eamt: every globals option at its default, commented."""
    lines = _comment(
        f"{CONFIG_PATH}: clat-eamt, the 464XLAT CLAT optimization that maps the IPv4 "
        "destinations of IPv4-only LAN hosts to their real IPv6 addresses (RFC 7757 EAM, "
        "learned from DNS)."
    )
    lines += ["#"]
    lines += _comment(
        "Generated from the option schema (src/clat_eamt/config/schema.py). Every option is "
        "shown at its default, so deleting an option line changes nothing."
    )
    lines += ["#", *_comment(SECTION_HELP[GLOBALS]), "", f"config {GLOBALS} {quote(GLOBALS)}"]
    for index, option in enumerate(GLOBAL_OPTIONS):
        if index:
            lines.append("")
        lines += _comment(option.full_help, "\t")
        statements = option.uci_lines(option.default)
        if not statements and option.example is not None:
            statements = [f"# {option.uci_lines((option.type.parse(option.example),))[0]}"]
        lines += ["\t" + statement for statement in statements]
    lines += ["", *_comment(SECTION_HELP[STATIC])]
    lines += _comment("Replace the example addresses with real ones before enabling it.")
    for option in STATIC_OPTIONS:
        note = " (required)" if option.required else ""
        lines += _comment(f"{option.name}{note}: {option.full_help}", hanging="  ")
    lines.append(f"#config {STATIC} 'example'")
    for option in STATIC_OPTIONS:
        if option.example is not None:
            example = option.type.parse(option.example)
            lines += [f"#\t{statement}" for statement in option.uci_lines(example)]
    return "\n".join(lines) + "\n"


# --- the LuCI settings form ------------------------------------------------------------------


def luci_widget(option: Option[Any]) -> str:
    """How the form edits it: flag (form.Flag), choice (ListValue), list (DynamicList), value."""
    if option.is_list:
        return "list"
    if isinstance(option.type, Bool):
        return "flag"
    return "choice" if isinstance(option.type, Choice) else "value"


def luci_options() -> list[dict[str, Any]]:
    """Every option as the settings form needs it, in schema order (what schema.js holds)."""
    rows: list[dict[str, Any]] = []
    for option in GLOBAL_OPTIONS + STATIC_OPTIONS:
        scalar_default = not option.required and not option.is_list
        choices = option.type.choices if isinstance(option.type, Choice) else ()
        rows.append(
            {
                "name": option.name,
                "section": option.section,
                "widget": luci_widget(option),
                "values": list(choices),
                "datatype": option.luci_datatype,
                # the daemon's check as data, for clat-eamt/validate.js
                "rule": option.luci_rule,
                # the UCI word, as the form shows and writes it; lists start empty
                "default": option.words(option.default)[0] if scalar_default else "",
                "example": option.example or "",
                "required": option.required,
                "restart": option.restart,
                "help": option.full_help,
            }
        )
    return rows


def js_string(text: str) -> str:
    """``text`` as a single-quoted JavaScript literal (LuCI's style); the file is UTF-8."""
    out = []
    for char in text:
        if char in "\\'":
            out.append("\\" + char)
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "'" + "".join(out) + "'"


def _js_value(key: str, value: Any) -> str:
    if key in ("help", "section_help"):
        return f"_({js_string(value)})"  # a literal _() call, so that the .pot picks it up
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[ " + ", ".join(js_string(v) for v in value) + " ]" if value else "[]"
    return js_string(str(value))


def luci_schema_js() -> str:
    """The LuCI class module the settings view loads: the sections' help and every option's
    name, section, widget, choices, datatype, default, example, required and restart flags and
    help.  Help texts are literal ``_('...')`` calls, so that they are translated like the
    view's own strings."""
    lines = [
        "// Generated from src/clat_eamt/config/schema.py by `make docs`; do not edit.",
        "'use strict';",
        "'require baseclass';",
        "",
        "return baseclass.extend({",
        "\tsections: {",
    ]
    sections = [(GLOBALS, SECTION_HELP[GLOBALS]), (STATIC, SECTION_HELP[STATIC])]
    lines += [
        f"\t\t{name}: {_js_value('section_help', text)}" + ("," if i < len(sections) - 1 else "")
        for i, (name, text) in enumerate(sections)
    ]
    lines += ["\t},", "\toptions: ["]
    rows = luci_options()
    for i, row in enumerate(rows):
        # two lines an option: its data, then its help (the one long field)
        data = ", ".join(
            f"{key}: {_js_value(key, value)}" for key, value in row.items() if key != "help"
        )
        end = "," if i < len(rows) - 1 else ""
        lines += [f"\t\t{{ {data},", f"\t\t  help: {_js_value('help', row['help'])} }}{end}"]
    lines += ["\t]", "});"]
    return "\n".join(lines) + "\n"
