"""Name normalisation and suffix allow/deny lists (SPEC section 4, limits)."""

import pytest

from clat_eamt.core.names import NameFilter, is_subdomain, name_problem, normalize


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
