"""Name normalisation and suffix allow/deny lists (SPEC section 4, limits)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clat_eamt.core.names import (
    NameFilter,
    escape,
    is_subdomain,
    labels,
    name_problem,
    normalize,
    presentation,
)


def test_names_compare_case_insensitively_without_trailing_dot():
    assert normalize("WWW.Example.COM.") == "www.example.com"


@pytest.mark.parametrize(
    ("name", "suffix", "expected"),
    [
        ("example.com", "example.com", True),
        ("cdn.example.com", "example.com", True),
        ("badexample.com", "example.com", False),
        ("example.com", "cdn.example.com", False),
    ],
)
def test_suffix_match_is_on_label_boundaries(name, suffix, expected):
    assert is_subdomain(name, suffix) is expected


def test_deny_wins_over_allow():
    names = NameFilter.of(allow=["example.com"], deny=["ads.example.com"])
    assert names.admits("video.example.com") and names.denied_by("video.example.com") is None
    assert names.denied_by("x.ads.example.com") == "ads.example.com"
    assert not names.admits("example.net")


def test_empty_allow_list_admits_everything():
    assert NameFilter().admits("anything.example")


@pytest.mark.parametrize("bad", ["", "-lead.example", "sp ace.example", "a" * 64 + ".example"])
def test_bad_names_are_explained(bad):
    assert name_problem(bad) is not None


def test_good_names_pass():
    assert name_problem("_dmarc.example.com.") is None


@given(st.lists(st.binary(min_size=1, max_size=63), max_size=8))
def test_a_wire_name_is_one_printable_line_and_reads_back(raw: list[bytes]) -> None:
    """Issue 26: every byte a label may hold is escaped (RFC 1035 section 5.1), so a name never
    splits a log line; ``labels`` reads the text back to the same labels."""
    shown = presentation(raw)
    assert shown.isprintable() and shown.isascii() and " " not in shown
    assert labels(shown) == tuple(raw)


def test_escapes_are_those_of_rfc_1035() -> None:
    assert presentation([b"x\ny", b"a.b", b"c\\d", b"\xe9", b"www"]) == (
        "x\\010y.a\\.b.c\\\\d.\\233.www"
    )
    assert escape(b"plain-label_1") == "plain-label_1"
