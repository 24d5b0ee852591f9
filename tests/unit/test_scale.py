"""Issue 15, hostile and large inputs: bounded work per answer, bounded log lines, refreshes at
debug, the control socket's caps, large control answers built a chunk at a time, the table's
indexes checked by the invariant checker, compact entries that still read as networks."""

from __future__ import annotations

import asyncio
import json
import logging
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from clat_eamt.config import load_text
from clat_eamt.control import server as control_server
from clat_eamt.control.methods import MethodError, dispatch
from clat_eamt.core.decide import MAX_ADDRESSES
from clat_eamt.core.model import AaaaStatus, Entry, Observation, Origin, Reason, State
from clat_eamt.daemon import Daemon
from clat_eamt.present import observation_text
from tests.unit.corekit import TV, engine, obs
from tests.unit.standins import ScriptedDataplane, free_port, loopback_config

# Every documentation IPv4 address (768): the most distinct A records a test may use.
DOC_A = tuple(
    IPv4Address(f"{net}.{i}") for net in ("192.0.2", "198.51.100", "203.0.113") for i in range(256)
)


def big_answer(name: str = "huge.example") -> Observation:
    """768 distinct A records (every documentation IPv4) and 3,000 AAAA: 3,768 records."""
    aaaa = tuple(IPv6Address(int(IPv6Address("2001:db8:1::")) + i) for i in range(3000))
    return Observation(name, DOC_A, 300, AaaaStatus.ANSWER, aaaa, 300, host=TV)


# --- bounded work per answer -----------------------------------------------------------------


def test_an_answer_of_thousands_of_records_considers_a_bounded_number_and_counts_the_rest():
    e = engine(pool=IPv4Network("198.18.0.0/15"), max_entries=100_000)
    outcome = e.observe(big_answer(), 0.0)
    decision = outcome.decision
    assert decision is not None
    assert len(decision.created) <= MAX_ADDRESSES
    per_address = [r for r in decision.refusals if r.address is not None]
    assert len(per_address) + len(decision.created) <= 2 * MAX_ADDRESSES
    assert decision.skipped == (768 - MAX_ADDRESSES) + (3000 - MAX_ADDRESSES)
    assert e.counters["addresses.skipped"] == decision.skipped
    assert e.counters[f"refused.{Reason.TOO_MANY_ADDRESSES}"] == 1
    # deterministic: the lowest records, whatever order the resolver sent them in
    again = engine(pool=IPv4Network("198.18.0.0/15"), max_entries=100_000)
    shuffled = big_answer()
    reversed_obs = Observation(
        shuffled.name, shuffled.a[::-1], 300, AaaaStatus.ANSWER, shuffled.aaaa[::-1], 300, host=TV
    )
    second = again.observe(reversed_obs, 0.0).decision
    assert second is not None
    assert [c.ipv4 for c in second.created] == [c.ipv4 for c in decision.created]
    assert all(c.ipv4.network_address in DOC_A[:MAX_ADDRESSES] for c in decision.created)


def test_the_decision_log_line_of_a_huge_answer_is_small(tmp_path: Path, caplog):
    """One answer of 3,000 records wrote about 200 KB of log; now a few hundred bytes."""

    async def scenario() -> None:
        cfg = load_text(loopback_config(free_port(), f"{tmp_path}/control.sock",
                                        "\toption host_mode 'all'\n"))  # fmt: skip
        daemon = Daemon(cfg, ScriptedDataplane())
        await daemon.map(big_answer())

    with caplog.at_level(logging.DEBUG, logger="clat_eamt.decision"):
        asyncio.run(scenario())
    lines = [r for r in caplog.records if r.name == "clat_eamt.decision"]
    assert lines, "the decision was logged"
    for record in lines:
        assert len(record.getMessage()) < 4000, len(record.getMessage())
        assert len(json.dumps(getattr(record, "data", {}), default=str)) < 12000
    assert "(760 more)" in lines[0].getMessage()  # the A records beyond the first 8, counted


def test_observation_text_is_bounded_and_says_how_many_it_left_out():
    text = observation_text(big_answer())
    assert len(text) < 600 and "(2992 more)" in text and "(760 more)" in text


def test_refreshes_are_logged_at_debug_and_changes_at_info(tmp_path: Path, caplog):
    """3,000 queries for one mapped name wrote 2,999 INFO lines; only changes are info."""

    async def scenario() -> None:
        cfg = load_text(loopback_config(free_port(), f"{tmp_path}/control.sock",
                                        "\toption host_mode 'all'\n"))  # fmt: skip
        daemon = Daemon(cfg, ScriptedDataplane())
        answer = obs("video.example", "192.0.2.10", "2001:db8:1::10")
        for _ in range(3):
            await daemon.map(answer)

    with caplog.at_level(logging.DEBUG, logger="clat_eamt.decision"):
        asyncio.run(scenario())
    levels = [r.levelno for r in caplog.records if r.name == "clat_eamt.decision"]
    assert levels == [logging.INFO, logging.DEBUG, logging.DEBUG]


# --- the control socket ------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [4000, 50_000])
def test_deeply_nested_json_gets_an_error_line_not_an_escaped_exception(depth: int):
    async def ask() -> bytes:
        return await control_server.handle_line(None, b"[" * depth + b"\n")  # type: ignore[arg-type]

    reply = json.loads(asyncio.run(ask()))
    assert reply["error"]["code"] == "bad-request"
    assert "nested deeper" in reply["error"]["message"]


def test_depth_counts_brackets_in_strings_as_text():
    assert not control_server.too_deep(b'{"method": "add", "args": {"comment": "[[[[[[[[["}}')
    assert control_server.too_deep(b'{"a": [[[[1]]]]}')
    assert not control_server.too_deep(b'{"a": "\\"[[[[[[[[[["}')


def test_a_comment_longer_than_the_schema_allows_is_refused_and_changes_nothing():
    class Target:
        added = 0

        async def add_static(self, entry: object) -> dict[str, object]:
            Target.added += 1
            return {}

    async def add(comment: str) -> object:
        args = {"ipv4": "192.0.2.99", "ipv6": "2001:db8:1::99", "comment": comment}
        return await dispatch(Target(), "add", args)  # type: ignore[arg-type]

    with pytest.raises(MethodError, match="at most 200 characters"):
        asyncio.run(add("x" * 60_000))
    assert Target.added == 0
    asyncio.run(add("x" * 200))
    assert Target.added == 1


def test_a_large_result_is_encoded_with_turns_of_the_loop_between_chunks():
    rows = [{"ipv4": f"192.0.2.{i % 256}", "n": i} for i in range(10_000)]
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async def scenario() -> bytes:
        ticker = asyncio.create_task(other())
        await asyncio.sleep(0)
        start = turns
        data = await control_server.encode({"result": rows})
        ticker.cancel()
        assert turns - start >= len(rows) // control_server.CHUNK - 1  # DNS got its turns
        return data

    data = asyncio.run(scenario())
    assert json.loads(data) == {"result": rows}  # the whole table, one line
    assert data.endswith(b"\n") and data.count(b"\n") == 1


def test_mappings_returns_the_whole_table_built_in_chunks(tmp_path: Path, monkeypatch):
    from clat_eamt.control import target  # noqa: PLC0415

    monkeypatch.setattr(target, "ROWS_PER_TURN", 16)  # the loopback pool holds 126 entries

    async def scenario() -> int:
        cfg = load_text(loopback_config(free_port(), f"{tmp_path}/control.sock"))
        daemon = Daemon(cfg, ScriptedDataplane())
        for i, address in enumerate(DOC_A[:120]):
            daemon.runtime.engine.add_static(
                IPv4Network(address), IPv6Network(f"2001:db8:2::{i:x}"), 0.0
            )
        rows = await dispatch(daemon.target, "mappings", None)
        assert [r["ipv4"] for r in rows] == [str(a) for a in DOC_A[:120]]  # all, in order
        return len(rows)

    assert asyncio.run(scenario()) == 120


# --- the table's indexes and compact entries ----------------------------------------------------


def test_the_invariant_checker_catches_a_wrong_index():
    e = engine()
    e.observe(obs("a.example", "192.0.2.1", "2001:db8:1::1"), 0.0)
    e.table.check_invariants()
    e.table._by_name["b.example"] = next(iter(e.table._entries))  # a name that vouches nothing
    with pytest.raises(AssertionError, match="_by_name"):
        e.table.check_invariants()


def test_indexed_questions_answer_as_a_scan_would_after_many_changes():
    e = engine(pool=IPv4Network("198.18.0.0/15"), max_entries=100_000)
    for i, address in enumerate(DOC_A[:300]):
        e.observe(obs(f"n{i % 50}.example", str(address), f"2001:db8:1::{i % 40:x}"), float(i))
    e.tick(400.0, None)  # the first ones expire
    e.table.check_invariants()
    assert e.table.count(Origin.DNS, State.VALID) == sum(
        1 for x in e.table if x.origin is Origin.DNS and x.state is State.VALID
    )


def test_compact_entries_still_read_as_networks_and_behave_as_values():
    e = Entry(IPv4Network("192.0.2.10/32"), IPv6Network("2001:db8:1::10/128"),
              IPv4Network("198.51.100.1/32"), Origin.DNS, State.VALID, 0.0, 0.0, 30.0,
              fqdns=("a.example",))  # fmt: skip
    assert e.ipv4 == IPv4Network("192.0.2.10/32") and isinstance(e.ipv6, IPv6Network)
    assert e.pool == IPv4Network("198.51.100.1/32")
    assert e.key == (e.ipv4, e.ipv6)
    stale = e.replace(state=State.STALE, fqdns=["b.example"])
    assert stale.state is State.STALE and stale.fqdns == ("b.example",) and e.state is State.VALID
    assert stale.replace(state=State.VALID, fqdns=("a.example",)) == e
    assert hash(stale.replace(state=State.VALID, fqdns=("a.example",))) == hash(e)
    with pytest.raises(AttributeError):
        e.state = State.STALE  # type: ignore[misc]
    with pytest.raises(TypeError):
        e.replace(colour="red")
    assert "ipv4=IPv4Network('192.0.2.10/32')" in repr(e)
