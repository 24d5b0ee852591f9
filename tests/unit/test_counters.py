"""Counters and entry event kinds are named once (``core.counters``, issue 16): the status
summary is built from the names, not by parsing them, and the readers - the CLI's status view,
the LuCI status page, ubus events - read only what it defines."""

from __future__ import annotations

import re
from pathlib import Path

from clat_eamt.control import views
from clat_eamt.control.ubus_object import UbusObject
from clat_eamt.core import counters
from clat_eamt.core.counters import (
    UBUS_EVENT,
    ApplyResult,
    Count,
    EntryKind,
    SafetyEvent,
    summary,
)
from clat_eamt.core.model import Reason, StaleReason

ROOT = Path(__file__).resolve().parents[2]
STATUS_JS = ROOT / "luci-app/htdocs/luci-static/resources/view/clat-eamt/status.js"


def every_counter_once() -> dict[str, int]:
    names = [*Count, *(counters.refused(r) for r in Reason)]
    names += [counters.stale(r) for r in StaleReason] + [counters.applied(r) for r in ApplyResult]
    return {str(name): i + 1 for i, name in enumerate(names)}


def test_the_summary_adds_the_families_by_their_enums_not_by_prefix():
    raw = every_counter_once()
    made = summary(raw)
    assert made["mappings"]["stale"] == sum(raw[counters.stale(r)] for r in StaleReason)
    assert made["mappings"]["refused"] == {str(r): raw[counters.refused(r)] for r in sorted(Reason)}
    assert made["released_unmapped"] == raw["answers.apply_late"] + raw["answers.apply_failed"]
    assert made["queries"] == raw["queries.udp"] + raw["queries.tcp"]
    assert summary({"refused.nonsense": 3, "stale.nonsense": 4})["mappings"]["stale"] == 0


def test_the_string_values_the_page_tests_and_benches_read_are_unchanged():
    named = (Count.QUERIES_UDP, Count.OBSERVED_WITH_AAAA, Count.BATCHES_FAILED)
    assert [str(c) for c in named] == [
        "queries.udp",
        "observed.with_aaaa",
        "dataplane.batches_failed",
    ]
    assert counters.applied(ApplyResult.DONE) == "answers.apply_done"
    assert counters.refused(Reason.NO_AAAA) == "refused.no-aaaa"
    assert counters.stale(StaleReason.EXPIRED) == "stale.expired"


def summary_paths(value: object, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if not isinstance(value, dict) or prefix[-1:] == ("refused",):
        return {prefix}
    return {p for key, v in value.items() for p in summary_paths(v, (*prefix, key))}


def test_the_luci_page_reads_only_what_the_summary_defines():
    text = STATUS_JS.read_text()
    body = text.split("renderCounters: function(st) {", 1)[1].split("\n\t},", 1)[0]
    read = {("summary", k) for k in re.findall(r"\bsum\.(\w+)", body)}
    read |= {("summary", "mappings", k) for k in re.findall(r"\bmaps\.(\w+)", body)}
    read.add(("summary", "mappings", "refused"))  # field(maps, [ 'refused' ])
    defined = summary_paths({"summary": summary({})})
    assert read and read <= defined, read - defined


def test_the_cli_status_view_shows_every_summary_number():
    made = summary(every_counter_once())
    status = {
        "version": "0", "uptime": 1, "listen": "127.0.0.1#53", "enabled": True,
        "dataplane": {"name": "x", "error": None, "last_error": None, "install": None},
        "pref64": {"prefixes": [], "source": "none"},
        "upstreams": {"servers": [], "source": "config", "problem": None},
        "hosts": {"ipv4_only": 0, "dual_stack": 0, "unsure": False, "error": None},
        "mappings": 0, "summary": made, "flows": None, "control": {"error": None},
    }  # fmt: skip
    text = views.status_text(status)
    for path in summary_paths(made):
        value = made
        for key in path:
            value = value[key]
        shown = (
            ", ".join(f"{k} {n}" for k, n in value.items())
            if isinstance(value, dict)
            else str(value)
        )
        assert shown in text, path


def test_ubus_events_are_the_entry_kinds_of_the_table(tmp_path):
    assert set(UBUS_EVENT) <= set(EntryKind.__members__.values())
    assert EntryKind.REFRESHED not in UBUS_EVENT  # one per DNS answer: not an event

    class Loop:  # publish only queues; nothing runs on the loop
        pass

    obj = UbusObject(None, Loop(), bus=object())  # type: ignore[arg-type]
    obj._thread = object()  # type: ignore[assignment]  # as if serving
    for kind in EntryKind:
        obj.publish(kind, {"ipv4": "192.0.2.1"})
    assert [e["event"] for _, e in obj._events] == ["added", "added", "stale", "removed"]
    assert {name for name, _ in obj._events} == {"clat-eamt.mapping"}
    obj._events.clear()
    for safety in SafetyEvent:  # the safety net's own events, under their own name
        obj.publish_safety(safety, {"why": "test"})
    assert [(n, e["event"]) for n, e in obj._events] == [
        ("clat-eamt.safety", str(kind)) for kind in SafetyEvent
    ]
