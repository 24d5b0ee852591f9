"""Artefacts derived from the schema: the README options table and the default UCI file.

Both are committed and a test fails when either is stale, so the schema stays the only place
where an option is described.
"""

from __future__ import annotations

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
from clat_eamt.config.uci import quote

WIDTH = 78  # comment lines of the default config, counting a tab as 8 columns
_TAB = 8
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
