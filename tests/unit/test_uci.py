"""The UCI file syntax parser (clat_eamt.config.uci): every form `uci import` accepts."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clat_eamt.config.uci import UciSyntaxError, parse_uci, quote, split_words


def words(line: str) -> list[str]:
    return split_words(line, 1)


def test_blank_lines_and_comments_produce_no_sections() -> None:
    assert parse_uci("\n   \n# a comment\n\t# indented comment\n") == ()


def test_package_line_is_accepted_and_ignored() -> None:
    sections = parse_uci("package clat-eamt\n\nconfig globals 'globals'\n")
    assert [(s.type, s.name, s.line) for s in sections] == [("globals", "globals", 3)]


def test_named_and_anonymous_sections_keep_their_line() -> None:
    sections = parse_uci("config static 'web'\nconfig static\n")
    assert [(s.type, s.name, s.line) for s in sections] == [
        ("static", "web", 1),
        ("static", None, 2),
    ]


def test_options_keep_order_and_line_numbers() -> None:
    (section,) = parse_uci("config globals 'globals'\n\toption b '1'\n\toption a '2'\n")
    assert [(o.name, o.values[0].text, o.line, o.is_list) for o in section.options] == [
        ("b", "1", 2, False),
        ("a", "2", 3, False),
    ]


def test_list_values_are_collected_with_their_lines() -> None:
    text = "config globals 'globals'\n\tlist pref64 'a'\n\toption x 'y'\n\tlist pref64 'b'\n"
    (section,) = parse_uci(text)
    pref64 = section.get("pref64")
    assert pref64 is not None and pref64.is_list
    assert [(v.text, v.line) for v in pref64.values] == [("a", 2), ("b", 4)]


def test_second_option_replaces_the_first() -> None:
    (section,) = parse_uci("config s\n\toption a '1'\n\toption a '2'\n")
    option = section.get("a")
    assert option is not None
    assert [(v.text, v.line) for v in option.values] == [("2", 3)]


def test_list_after_option_turns_it_into_a_list_as_libuci_does() -> None:
    (section,) = parse_uci("config s\n\toption a '1'\n\tlist a '2'\n")
    option = section.get("a")
    assert option is not None and option.is_list
    assert [v.text for v in option.values] == ["1", "2"]


def test_option_after_list_replaces_the_whole_list() -> None:
    (section,) = parse_uci("config s\n\tlist a '1'\n\tlist a '2'\n\toption a '3'\n")
    option = section.get("a")
    assert option is not None and not option.is_list
    assert [v.text for v in option.values] == ["3"]


def test_unquoted_single_and_double_quoted_words() -> None:
    assert words("option a plain") == ["option", "a", "plain"]
    assert words("option a 'two words'") == ["option", "a", "two words"]
    assert words('option a "two words"') == ["option", "a", "two words"]


def test_single_quotes_are_literal() -> None:
    assert words(r"option a 'back\slash \"x\" #not-a-comment'") == [
        "option",
        "a",
        r"back\slash \"x\" #not-a-comment",
    ]


def test_double_quotes_take_backslash_as_next_character_literally() -> None:
    assert words(r'option a "say \"hi\" \\ \n #x"') == ["option", "a", 'say "hi" \\ n #x']


def test_unquoted_backslash_escapes_the_next_character() -> None:
    assert words(r"option a two\ words\#") == ["option", "a", "two words#"]


def test_adjacent_pieces_are_concatenated_like_in_a_shell() -> None:
    assert words("""option a 'it'\\''s'""") == ["option", "a", "it's"]
    assert words("""option a pre'mid dle'"post"fix""") == ["option", "a", "premid dlepostfix"]


def test_empty_quoted_word_is_a_word() -> None:
    (section,) = parse_uci("config s\n\toption a ''\n")
    option = section.get("a")
    assert option is not None and option.values[0].text == ""


def test_unquoted_hash_ends_the_line_even_inside_a_word() -> None:
    assert words("option a value # comment") == ["option", "a", "value"]
    assert words("option a value#comment") == ["option", "a", "value"]


def test_tabs_and_crlf_line_endings() -> None:
    (section,) = parse_uci("config\ts\t'n'\r\n\toption\ta\t'1'\r\n")
    assert section.name == "n"
    option = section.get("a")
    assert option is not None and option.values[0].text == "1"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("config s\n\toption a 'open\n", 2, "unterminated single quote"),
        ('config s\n\n\toption a "open\n', 3, "unterminated double quote"),
        ('config s\n\toption a "ends with \\', 2, "unterminated double quote"),
        ("config s\n\toption a value\\", 2, "backslash at end of line"),
        ("option a '1'\n", 1, "before the first 'config' line"),
        ("config s\n\tfrobnicate a '1'\n", 2, "unknown keyword 'frobnicate'"),
        ("config s\n\toption a\n", 2, "'option' takes two words, got 1"),
        ("config s\n\toption a b c\n", 2, "'option' takes two words, got 3"),
        ("config s\n\tlist a\n", 2, "'list' takes two words"),
        ("config\n", 1, "'config' takes 1 or 2 words, got 0"),
        ("config s n extra\n", 1, "'config' takes 1 or 2 words, got 3"),
        ("package\n", 1, "'package' takes one word"),
        ("config s 'bad name'\n", 1, "invalid section name 'bad name'"),
        ("config 'bad type'\n", 1, "invalid section type"),
        ("config s\n\toption 'bad-name' 1\n", 2, "invalid option name 'bad-name'"),
        ("config s ''\n", 1, "invalid section name ''"),
    ],
)
def test_syntax_errors_name_their_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(UciSyntaxError) as caught:
        parse_uci(text)
    assert caught.value.line == line
    assert fragment in caught.value.message
    assert str(caught.value).startswith(f"line {line}: ")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"))))
def test_quote_round_trips_any_single_line_text(value: str) -> None:
    assert words(f"option a {quote(value)}") == ["option", "a", value]
