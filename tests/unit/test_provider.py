"""The operator's table (issue 28): its format (``core.provider``), and what the runtime does
with a table offered to it (``runtime.provider``): taken whole or refused whole, a serial that
only grows, entries for their TTL, fetched at start and at the table's refresh time with
back-off, a DNS answer never touching a provider entry, static over provider."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from clat_eamt.config import ConfigError, load_text, schema
from clat_eamt.control import views
from clat_eamt.core.model import Origin, State
from clat_eamt.core.provider import (
    MAX_TABLE_BYTES,
    RETRY_FIRST,
    TableError,
    key_number,
    parse_table,
    public_key_problem,
    url_problem,
)
from clat_eamt.runtime import commands as c
from clat_eamt.runtime import events as e
from clat_eamt.runtime.provider import CHECK_SLICE, SLICE
from clat_eamt.runtime.runtime import Runtime
from tests.unit.runtimekit import ModelDriver, ModelKernel
from tests.unit.standins import loopback_config
from tests.unit.test_runtime import answer, at, in_step

WALL = 1_800_000_000.0  # the time of day the tests' tables are offered at
TABLE = b"""# a table like the README example
serial 2026120701
refresh 3600
192.0.2.0/28    2001:db8:cafe::/124   ttl=86400   # video CDN
198.51.100.7    2001:db8:1::7         expires=2027-01-31T00:00:00Z
"""


def table(serial: int, *entries: str, refresh: int = 600) -> bytes:
    return "\n".join([f"serial {serial}", f"refresh {refresh}", *entries]).encode() + b"\n"


# --- the format ---------------------------------------------------------------------------------


def test_the_readmes_example_is_a_valid_table():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## The operator's table", 1)[1]
    example = section.split("```\n", 2)[1]
    parsed = parse_table(example.encode(), 100)
    assert parsed.serial == 2026120701 and len(parsed.entries) == 2
    assert parsed.entries[0].comment == "video CDN"


def test_a_table_parses_into_its_entries():
    parsed = parse_table(TABLE, 100)
    assert (parsed.serial, parsed.refresh, len(parsed.entries)) == (2026120701, 3600, 2)
    cdn, one = parsed.entries
    assert (str(cdn.ipv4), str(cdn.ipv6), cdn.ttl, cdn.comment) == (
        "192.0.2.0/28", "2001:db8:cafe::/124", 86400, "video CDN",
    )  # fmt: skip
    assert str(one.ipv4) == "198.51.100.7/32" and one.expires_at == 1801353600.0
    assert one.ends(now=10.0, wall=1801353000.0) == 610.0  # absolute, on the monotonic clock


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b"refresh 60\n192.0.2.1 2001:db8::1 ttl=5\n", "no 'serial' line"),
        (b"serial 1\n192.0.2.1 2001:db8::1 ttl=5\n", "no 'refresh' line"),
        (b"serial 1\nserial 2\nrefresh 60\n", "line 2: a second 'serial'"),
        (b"serial 0\nrefresh 60\n", "line 1: serial must be a whole number from 1"),
        (b"serial 1\nrefresh 5\n", "line 2: refresh must be a whole number from 60"),
        (table(1, "192.0.2.1 2001:db8::1"), "line 3: an entry is"),
        (table(1, "192.0.2.1 2001:db8::1 ttl=0"), "ttl must be a whole number from 1"),
        (table(1, "192.0.2.1 2001:db8::1 ttl=\u00b2"), "ttl must be a whole number"),
        (table(1, "192.0.2.1 2001:db8::1 expires=2027-01-31"), "the lifetime is ttl="),
        (table(1, "192.0.2.1 2001:db8::1 expires=2027-02-30T00:00:00Z"), "no such date"),
        (table(1, "192.0.2.0/24 2001:db8::/64 ttl=5"), "leaves 64 host bits but 192.0.2.0/24"),
        (table(1, "192.0.2.1/24 2001:db8::/120 ttl=5"), "has host bits set"),
        (table(1, "2001:db8::1 192.0.2.1 ttl=5"), "is not an IPv4 address"),
        (table(1, "192.0.2.1 192.0.2.2 ttl=5"), "is not an IPv6 address"),
        (table(1, "192.0.2.0/30 2001:db8::/126 ttl=5", "192.0.2.2 2001:db8:1::2 ttl=5"),
         "192.0.2.2 overlaps 192.0.2.0/30"),
        (table(1, "192.0.2.1 2001:db8::1 ttl=5 # " + "x" * 201), "comment longer than 200"),
        (b"serial 1\nrefresh 60\n\xff\n", "not UTF-8"),
        (b"#" * (MAX_TABLE_BYTES + 1), "at most"),
    ],
)  # fmt: skip
def test_a_bad_table_is_refused_with_what_to_change(text, why):
    with pytest.raises(TableError, match=None) as raised:
        parse_table(text, 100)
    assert why in str(raised.value)


def test_more_entries_than_allowed_refuse_the_table():
    entries = [f"192.0.2.{i} 2001:db8::{i:x} ttl=60" for i in range(1, 12)]
    with pytest.raises(TableError, match="more than 10 entries"):
        parse_table(table(1, *entries), 10)


def test_urls_and_keys_as_the_schema_checks_them():
    assert url_problem("") is None and url_problem("https://isp.example/t") is None
    assert "https://" in (url_problem("ftp://isp.example/t") or "")
    assert "spaces" in (url_problem("https://isp.example/a b") or "")
    key = "RWRjZjh3Z1lYN2JuTn+C4bMuTtEZF7tl9yDK8Wr3+6nNSHrYSNS1DYgB"
    assert public_key_problem(key) is None and key_number(key) == "6366387767595837"
    assert public_key_problem("RWRj") is not None and public_key_problem("not base64!") is not None


def test_plain_http_needs_a_signing_key():
    base = loopback_config(5353, "/nonexistent.sock")
    with pytest.raises(ConfigError, match="plain http://"):
        load_text(base + "\toption provider_url 'http://isp.example/t'\n")
    key = "\toption provider_key 'RWRjZjh3Z1lYN2JuTn+C4bMuTtEZF7tl9yDK8Wr3+6nNSHrYSNS1DYgB'\n"
    extra = "\toption provider_url 'http://isp.example/t'\n" + key
    cfg = load_text(loopback_config(5353, "/nonexistent.sock", extra))
    assert cfg[schema.PROVIDER_URL] == "http://isp.example/t"


# --- the runtime ----------------------------------------------------------------------------------


def booted(url: str = "https://isp.example/t", now: float = 1000.0) -> ModelDriver:
    extra = "\toption host_mode 'all'\n" + (f"\toption provider_url '{url}'\n" if url else "")
    cfg = load_text(loopback_config(5353, "/nonexistent.sock", extra))
    driver = ModelDriver(Runtime(cfg, now, "model"), ModelKernel(), now)
    driver.start()
    return driver


def offer(driver: ModelDriver, data: bytes | None, via="fetch", problem=None, wall=WALL):
    """What the driver does: the table read (``provider.read_table``), or why not."""
    read = None
    if data is not None:
        try:
            read = parse_table(data, 20000)
        except TableError as error:
            problem = str(error)
    return driver.handle(e.ProviderOffered(read, via, problem, wall))


def provider_entries(driver: ModelDriver) -> dict[str, tuple[str, State]]:
    return {
        str(x.ipv4): (str(x.ipv6), x.state)
        for x in driver.runtime.engine.table
        if x.origin is Origin.PROVIDER
    }


def status(driver: ModelDriver) -> dict:
    return driver.runtime.provider.status(driver.runtime.engine, driver.now)


def test_fetched_at_start_then_at_the_tables_refresh_time():
    driver = booted()
    driver.tick()
    assert [f.url for f in driver.fetches] == ["https://isp.example/t"]
    driver.tick()  # one fetch at a time
    assert len(driver.fetches) == 1
    _, (result, error) = offer(driver, table(5, "192.0.2.1 2001:db8:1::1 ttl=3600"))
    assert error is None and result["provider"]["serial"] == 5
    assert provider_entries(driver) == {"192.0.2.1/32": ("2001:db8:1::1/128", State.VALID)}
    assert in_step(driver)  # installed in the dataplane
    assert status(driver)["next_fetch_in"] == 600.0
    at(driver, 1599).tick()
    assert len(driver.fetches) == 1
    at(driver, 1600).tick()
    assert len(driver.fetches) == 2


def test_a_failed_fetch_is_retried_with_a_doubling_back_off():
    driver = booted()
    driver.tick()
    offer(driver, None, problem="uclient-fetch: Connection refused")
    assert status(driver)["last"]["result"] == "refused"
    assert "Connection refused" in status(driver)["last"]["error"]
    assert status(driver)["next_fetch_in"] == RETRY_FIRST
    at(driver, 1000 + RETRY_FIRST).tick()
    offer(driver, None, problem="again")
    assert status(driver)["next_fetch_in"] == 2 * RETRY_FIRST


def test_refused_whole_the_entries_in_place_stay_until_their_ttl():
    driver = booted()
    offer(driver, table(5, "192.0.2.1 2001:db8:1::1 ttl=100"))
    before = provider_entries(driver)
    for bad, why in [
        (table(6, "192.0.2.2 2001:db8:1::2 ttl=100", "192.0.2.3 2001:db8::/64 ttl=1"),
         "host bits"),
        (table(4, "192.0.2.2 2001:db8:1::2 ttl=100"), "lower than 5"),
        (table(5, "192.0.2.2 2001:db8:1::2 ttl=100"), "the one in place, with other contents"),
        (None, "signature: verification failed"),
        (table(7, "10.0.0.1 2001:db8:1::2 ttl=100"), "10.0.0.1"),
        (table(7, "192.0.2.2 2001:db8:64::1 ttl=100"), "inside the NAT64 prefix"),
        (table(7, "198.51.100.130 2001:db8:1::2 ttl=100"), "overlaps the mapping pool"),
    ]:  # fmt: skip
        problem = why if bad is None else None
        _, (_, error) = offer(driver, bad, via="push", problem=problem)
        assert error is not None and why in error, (why, error)
        assert provider_entries(driver) == before
        assert status(driver)["serial"] == 5 and why in status(driver)["last"]["error"]
    at(driver, 1101).tick()
    assert provider_entries(driver) == {"192.0.2.1/32": ("2001:db8:1::1/128", State.STALE)}


def test_the_same_table_again_restarts_its_entries_lifetimes():
    driver = booted()
    offer(driver, table(5, "192.0.2.1 2001:db8:1::1 ttl=100"))
    at(driver, 1090)
    _, (_, error) = offer(driver, table(5, "192.0.2.1 2001:db8:1::1 ttl=100"))
    assert error is None
    at(driver, 1101).tick()
    assert provider_entries(driver)["192.0.2.1/32"][1] is State.VALID


def test_a_newer_table_replaces_the_entries_it_no_longer_lists():
    driver = booted()
    offer(driver, table(5, "192.0.2.1 2001:db8:1::1 ttl=100", "192.0.2.2 2001:db8:1::2 ttl=100"))
    offer(driver, table(6, "192.0.2.2 2001:db8:1::2 ttl=100", "192.0.2.3 2001:db8:1::3 ttl=100"))
    entries = provider_entries(driver)
    assert entries["192.0.2.1/32"][1] is State.STALE  # flows kept, no new ones
    assert entries["192.0.2.2/32"][1] is State.VALID and entries["192.0.2.3/32"][1] is State.VALID
    assert in_step(driver)


def test_an_expired_entry_is_left_out_and_an_absolute_one_ends_on_time():
    driver = booted()
    offer(
        driver,
        table(5, "192.0.2.1 2001:db8:1::1 expires=2020-01-01T00:00:00Z",
              "192.0.2.2 2001:db8:1::2 expires=2027-01-15T08:00:50Z"),  # WALL + 50 s
    )  # fmt: skip
    assert list(provider_entries(driver)) == ["192.0.2.2/32"]
    assert next(iter(driver.runtime.engine.table)).expires == 1000 + 50


def test_a_dns_answer_never_changes_a_provider_entry_and_static_wins():
    static = "config static\n\toption ipv4 '192.0.2.9'\n\toption ipv6 '2001:db8:5::9'\n"
    cfg = load_text(loopback_config(5353, "/nonexistent.sock", "\toption host_mode 'all'\n",
                                    static))  # fmt: skip
    driver = ModelDriver(Runtime(cfg, 1000.0, "model"), ModelKernel(), 1000.0)
    driver.start()
    answer(driver, "www.example", "192.0.2.1", "2001:db8:9::1")  # a dns entry first
    _, (result, error) = offer(
        driver, table(5, "192.0.2.1 2001:db8:1::1 ttl=100", "192.0.2.9 2001:db8:1::9 ttl=100")
    )
    assert error is None and result["provider"]["installed"] == 1
    last = result["provider"]["last"]
    assert last["not_installed"] == 1 and "overlaps static entry 192.0.2.9" in last["error"]
    entries = provider_entries(driver)
    assert entries == {"192.0.2.1/32": ("2001:db8:1::1/128", State.VALID)}
    answer(driver, "www.example", "192.0.2.1", "2001:db8:9::1")  # DNS says otherwise
    answer(driver, "other.example", "192.0.2.1", "2001:db8:9::2")
    assert provider_entries(driver) == entries
    assert in_step(driver)


def test_a_large_table_goes_in_slices_with_answers_between_them():
    driver = booted()
    entries = [f"192.0.2.{i} 2001:db8:1::{i:x} ttl=600" for i in range(1, 101)]  # pool: 125
    runtime = driver.runtime
    commands = runtime.handle(e.ProviderOffered(parse_table(table(5, *entries), 500), "push",
                                                None, WALL), driver.now)  # fmt: skip
    assert isinstance(commands[-1], c.ProviderMore) and not any(
        isinstance(x, c.Reply) for x in commands
    )
    assert status(driver)["last"]["result"] == "taking"
    answer(driver, "www.example", "198.51.100.20", "2001:db8:9::1")  # DNS goes on meanwhile
    slices = 1
    while isinstance(commands[-1], c.ProviderMore):
        driver.run([x for x in commands if not isinstance(x, c.ProviderMore)])
        commands = runtime.handle(e.ProviderContinue(), driver.now)
        slices += 1
    driver.run(commands)
    assert slices == 1 + -(-100 // SLICE) > 2  # the retiring step, then the slices
    assert status(driver)["last"]["result"] == "taken" and status(driver)["installed"] == 100
    assert isinstance(commands[-1], c.Reply) and in_step(driver)


def test_a_bad_entry_past_the_first_slice_still_refuses_the_table_whole():
    driver = booted()
    offer(driver, table(5, "192.0.2.1 2001:db8:1::1 ttl=600"))
    before = provider_entries(driver)
    addresses = [f"192.0.2.{i}" for i in range(256)] + [f"203.0.113.{i}" for i in range(256)]
    addresses += [f"198.51.100.{i}" for i in range(88)] + ["198.51.100.200"]  # in the pool
    assert len(addresses) > CHECK_SLICE + 1
    entries = [f"{a} 2001:db8:2::{n:x} ttl=600" for n, a in enumerate(addresses)]
    _, (_, error) = offer(driver, table(6, *entries))
    assert error is not None and "198.51.100.200 overlaps the mapping pool" in error
    assert provider_entries(driver) == before and in_step(driver)
    assert status(driver)["serial"] == 5 and not status(driver)["busy"]


def test_clat_eamt_status_says_where_the_table_comes_from_and_how_it_went():
    driver = booted()
    driver.tick()
    offer(driver, table(5, "192.0.2.1 2001:db8:1::1 ttl=600"))
    offer(driver, table(4, "192.0.2.1 2001:db8:1::1 ttl=600"), via="push")
    line = views.provider_text(status(driver))
    assert line.startswith("https://isp.example/t: serial 5, 1 entries (1 installed)"), line
    assert "last push refused: serial 4 is lower than 5" in line and "next fetch in 10m" in line
    pushed_only = views.provider_text(status(booted(url="")))
    assert pushed_only.startswith("pushed only: no table yet; not fetched yet")


def test_switched_off_the_operators_entries_retire_and_no_table_is_taken():
    driver = booted()
    offer(driver, table(5, "192.0.2.1 2001:db8:1::1 ttl=600"))
    extra = "\toption host_mode 'all'\n\toption provider_url 'https://isp.example/t'\n"
    off = load_text(loopback_config(5353, "/nonexistent.sock", extra + "\toption enabled '0'\n"))
    driver.handle(e.Reconfigured(off))
    assert provider_entries(driver) == {"192.0.2.1/32": ("2001:db8:1::1/128", State.STALE)}
    assert in_step(driver) and not driver.runtime.engine.table.valid_covering(
        IPv4Address("192.0.2.1")
    )
    _, (_, error) = offer(driver, table(6, "192.0.2.2 2001:db8:1::2 ttl=600"), via="push")
    assert error is not None and "the optimization is off" in error
    fetches = len(driver.fetches)
    at(driver, 5000).tick()
    assert len(driver.fetches) == fetches  # nothing is fetched while off
    driver.handle(e.Reconfigured(load_text(loopback_config(5353, "/nonexistent.sock", extra))))
    driver.tick()
    assert len(driver.fetches) == fetches + 1  # on again: fetched at once
    _, (_, error) = offer(driver, table(3, "192.0.2.1 2001:db8:1::1 ttl=600"))
    assert error is not None and "lower than 5, the last one taken" in error
    _, (_, error) = offer(driver, table(5, "192.0.2.1 2001:db8:1::1 ttl=600"))
    assert error is None  # the entries in place went: the same serial is taken again


def test_the_serial_taken_last_outlives_a_restart():
    driver = booted()
    offer(driver, table(5, "192.0.2.1 2001:db8:1::1 ttl=600"))
    assert driver.remembered == [5]  # the driver keeps it (state_dir)
    restarted = booted()
    restarted.handle(e.ProviderRemembered(5))
    _, (_, error) = offer(restarted, table(4, "192.0.2.1 2001:db8:1::1 ttl=600"))
    assert error is not None and "lower than 5, the last one taken" in error
    _, (_, error) = offer(restarted, table(5, "192.0.2.1 2001:db8:1::1 ttl=600"))
    assert error is None and provider_entries(restarted)
