"""Artefacts derived from the schema: the README table, the default UCI file, LuCI datatypes."""

import re
from pathlib import Path

import pytest

from clat_eamt.config import defaults, load_text, schema
from clat_eamt.config.render import WIDTH, options_markdown, readme_with_options, uci_defaults

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "files" / "etc" / "config" / "clat-eamt"
README = REPO / "README.md"
ALL_OPTIONS = schema.GLOBAL_OPTIONS + schema.STATIC_OPTIONS
# Datatype functions of LuCI's validation.js (luci-base) that the schema may use.
LUCI_DATATYPES = {"and", "or", "uinteger", "integer", "range", "ip4addr", "ip6addr", "ipaddr"}
LUCI_DATATYPES |= {"hostname", "string"}
# maxlength(n): luci-base htdocs/luci-static/resources/validation.js, "maxlength: function(max)"
LUCI_DATATYPES |= {"maxlength"}


# --- the committed files are not stale -------------------------------------------------------


def test_default_config_file_is_generated_from_the_schema() -> None:
    assert DEFAULT_CONFIG.read_text() == uci_defaults(), (
        "files/etc/config/clat-eamt is stale: write it with render.uci_defaults()"
    )


def test_default_config_file_parses_to_exactly_the_defaults() -> None:
    assert load_text(DEFAULT_CONFIG.read_text(), str(DEFAULT_CONFIG)) == defaults()


def test_readme_options_table_is_generated_from_the_schema() -> None:
    text = README.read_text()
    assert readme_with_options(text) == text, (
        "README.md options table is stale: rewrite it with render.readme_with_options()"
    )


# --- the default UCI file --------------------------------------------------------------------


def test_uci_defaults_shows_every_globals_option_with_its_help() -> None:
    text = uci_defaults()
    for option in schema.GLOBAL_OPTIONS:
        keyword = "list" if option.is_list else "option"
        assert re.search(rf"^\t(# )?{keyword} {option.name} '", text, re.M), option.name
        assert option.help.split()[0] in text


def test_uci_defaults_comment_lines_fit_the_width() -> None:
    for line in uci_defaults().splitlines():
        assert len(line.expandtabs(8)) <= WIDTH, line


def test_uncommented_examples_of_the_default_file_load_in_a_lab() -> None:
    """The commented list examples and the example static section are valid configuration."""
    text = uci_defaults().replace("allow_documentation '0'", "allow_documentation '1'")
    text = text.replace("\t# list ", "\tlist ").replace("\n#config ", "\nconfig ")
    cfg = load_text(text.replace("\n#\t", "\n\t"))
    for option in schema.GLOBAL_OPTIONS:
        if option.is_list:
            assert option.example is not None
            assert cfg[option] == (option.type.parse(option.example),)
    (entry,) = cfg.static
    assert entry.name == "example"
    assert entry.comment == schema.STATIC_COMMENT.example


# --- the Markdown table and the README -------------------------------------------------------


def test_options_markdown_has_one_row_per_option_in_schema_order() -> None:
    rows = [line for line in options_markdown().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [option.name for option in ALL_OPTIONS]
    assert "| `ttl_min` | integer 0..86400 (seconds) | `30` |" in options_markdown()
    assert "| `ipv4` | IPv4 prefix | *(required)* |" in options_markdown()
    assert "| `pref64` | list of NAT64 prefixes | *(empty)* |" in options_markdown()


def test_readme_with_options_replaces_only_the_text_between_the_markers() -> None:
    text = (
        "# Title\n<!-- BEGIN options (generated) -->\nSTALE\ntable\n<!-- END options -->\nafter\n"
    )
    result = readme_with_options(text)
    assert result.startswith("# Title\n<!-- BEGIN options (generated) -->\n\n")
    assert result.endswith("\n" + options_markdown() + "\n<!-- END options -->\nafter\n")
    assert "STALE" not in result
    assert readme_with_options(result) == result


def test_readme_with_options_accepts_a_begin_marker_over_several_lines() -> None:
    text = "<!-- BEGIN options\n  generated; do not edit -->\n<!-- END options -->\n"
    assert options_markdown() in readme_with_options(text)


@pytest.mark.parametrize(
    "text",
    [
        "# no markers\n",
        "<!-- BEGIN options -->\nno end\n",
        "<!-- END options -->\n<!-- BEGIN options -->\n",
    ],
)
def test_readme_with_options_refuses_text_without_the_markers(text: str) -> None:
    with pytest.raises(ValueError, match="marker"):
        readme_with_options(text)


# --- schema invariants the derived artefacts rely on -----------------------------------------


def test_option_names_are_unique_uci_names_and_flags_derive_from_them() -> None:
    names = [option.name for option in ALL_OPTIONS]
    assert len(names) == len(set(names))
    for option in ALL_OPTIONS:
        assert re.fullmatch(r"[a-z0-9_]+", option.name)
        assert option.flag == "--" + option.name.replace("_", "-")


def test_help_texts_are_sentences() -> None:
    for option in ALL_OPTIONS:
        assert option.help[0].isupper() and option.help.endswith("."), option.name


def test_list_defaults_are_empty_and_have_a_valid_example() -> None:
    # UCI cannot express "empty list" to override a non-empty default.
    for option in ALL_OPTIONS:
        if option.is_list:
            assert option.default == ()
            assert option.example is not None
            option.type.parse(option.example)


def test_defaults_render_and_parse_back_to_themselves() -> None:
    for option in ALL_OPTIONS:
        if not option.required and not option.is_list:
            (word,) = option.words(option.default)
            assert option.type.parse(word) == option.default


def test_luci_datatypes_use_only_functions_luci_has() -> None:
    for option in ALL_OPTIONS:
        unquoted = re.sub(r'"[^"]*"', "", option.luci_datatype)
        used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", unquoted))
        assert used and used <= LUCI_DATATYPES, (option.name, option.luci_datatype)
    assert schema.TTL_MIN.luci_datatype == "and(uinteger,range(0,86400))"
    assert schema.HOST_MODE.luci_datatype == 'or("ipv4-only","all")'
    assert schema.POOL.luci_datatype == "ip4addr"
    assert schema.PREF64.luci_datatype == "ip6addr"
    assert schema.DENY_PREFIX.luci_datatype == "ipaddr"
    assert schema.ALLOW_NAME.luci_datatype == "hostname"
    assert schema.STATIC_COMMENT.luci_datatype == "maxlength(200)"
