"""Every counter and every entry event kind, named once.

The counters are what ``clat-eamt status`` shows under "counters" (raw) and "summary" (what
status promises); the LuCI status page and ``ubus call clat-eamt status`` get the same JSON.
The entry event kinds are what the engine reports per entry, what the decision log writes and
what the ubus ``clat-eamt.mapping`` events carry (``UBUS_EVENT``).  The string values are part
of the interface (the LuCI page, scripts and the benches read them): change a name here and
everywhere follows, change a value and a reader breaks.

Counters by who counts them:

- the proxy (``dns.proxy``, ``dns.upstream``): queries, replies, AAAA side queries, upstream;
- the engine (``core.engine``): observations, entry changes, refusals per ``Reason``, entries
  gone Stale per ``StaleReason``, adoption after a restart;
- the runtime (``runtime``): answers released after the dataplane (per apply result), dataplane
  starts that failed, reloads, refresh ahead;
- the applier (``apply``): dataplane batches done and failed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from clat_eamt.core.model import Reason, StaleReason


class EntryKind(enum.StrEnum):
    """What happened to one entry (``core.model.EntryEvent.kind``)."""

    ADDED = "added"
    REFRESHED = "refreshed"
    REVIVED = "revived"  # a Stale entry proved again by DNS (or taken over by the operator)
    STALE = "stale"
    REMOVED = "removed"


# The ubus event ("clat-eamt.mapping", {"event": ...}) of each entry event kind; a refresh sends
# none (it would be one event per DNS answer), a revival reads as a new mapping to a listener.
UBUS_EVENT: Mapping[str, str] = {
    EntryKind.ADDED: "added",
    EntryKind.REVIVED: "added",
    EntryKind.STALE: "stale",
    EntryKind.REMOVED: "removed",
}


class SafetyEvent(enum.StrEnum):
    """What the safety net did (``rescue``): its log lines and the ubus ``clat-eamt.safety``
    events ({"event": ..., ...})."""

    RESCUED = "rescued"  # a target's flows got no reply: un-steered, the target broken
    BRAKE_ENGAGED = "brake-engaged"  # steering suspended router-wide
    BRAKE_TRIAL = "brake-trial"  # back-off over: steering on trial
    BRAKE_RELEASED = "brake-released"  # a trial flow got a reply
    SUSPENDED = "suspended"  # static/provider destinations not steered: their target broken
    RESUMED = "resumed"  # steered again on trial (their verdict expired)


class Count(enum.StrEnum):
    """A counter's name.  Families with a suffix (``refused_``, ``stale_``, ``applied``) are
    built by the functions below, never by formatting a string at the call site."""

    # the proxy
    QUERIES_UDP = "queries.udp"
    QUERIES_TCP = "queries.tcp"
    QUERIES_A = "queries.a"
    REPLIES_NOTIMP = "replies.notimp"
    REPLIES_SERVFAIL = "replies.servfail"
    REPLIES_FORMERR = "replies.formerr"
    MALFORMED_QUERIES = "malformed.queries"
    MALFORMED_ANSWERS = "malformed.answers"
    ANSWERS_UNUSABLE = "answers.unusable"  # passed unread and unmapped (records.Unusable)
    ERRORS_INTERNAL = "errors.internal"
    ERRORS_MAPPER = "errors.mapper"
    TTL_CLAMPED = "answers.ttl_clamped"
    AAAA_ADDITIONAL = "aaaa.additional"
    AAAA_ASKED = "aaaa.asked"
    AAAA_REMEMBERED = "aaaa.remembered"  # taken from the AAAA answers kept for their TTL
    AAAA_TIMEOUT = "aaaa.timeout"
    AAAA_FAILED = "aaaa.failed"
    REFRESH_ASKED = "refresh.asked"
    UPSTREAM_COALESCED = "upstream.coalesced"
    UPSTREAM_EXCHANGES = "upstream.exchanges"
    # the engine
    OBSERVED = "observed"
    OBSERVED_WITH_AAAA = "observed.with_aaaa"  # A answers whose AAAA had records
    SEEN_REFUSED = "seen.refused"  # answers' pairs the full memory of answers could not keep
    ADDRESSES_SKIPPED = "addresses.skipped"
    CREATED = "created"
    IPV6_ONLY_ANSWERS = "ipv6_only.answers"  # A answers the router made for IPv6-only names
    ADDED = "added"  # an operator or provider entry took over one of another origin
    REFRESHED = "refreshed"
    REVIVED = "revived"
    WITHDRAWN = "withdrawn"
    DELETED = "deleted"
    ADOPTED = "adopted"
    ADOPTED_VALID = "adopted.valid"
    # the runtime
    DATAPLANE_START_FAILED = "dataplane.start_failed"
    RELOAD_DONE = "reload.done"
    RELOAD_REFUSED = "reload.refused"
    REFRESH_AHEAD = "refresh.ahead"
    REFRESH_FAILED = "refresh.failed"
    PROVIDER_TAKEN = "provider.taken"  # an operator's table taken whole
    PROVIDER_REFUSED = "provider.refused"  # refused whole (or not fetched, or badly signed)
    # the safety net (``core.safety``, ``rescue``: issue 25)
    SAFETY_WATCHED = "safety.watched"  # steered flows (legs) watched in their first window
    SAFETY_UNWATCHED = "safety.unwatched"  # not watched: too many at once (core.safety)
    SAFETY_RESCUED = "safety.rescued"  # targets whose flows got no reply: un-steered
    SAFETY_FLOWS_DELETED = "safety.flows_deleted"  # conntrack entries deleted by rescues
    VERDICT_WORKING = "verdict.working"  # targets that became working
    VERDICT_BROKEN = "verdict.broken"  # targets that became broken
    VERDICT_RETRIED = "verdict.retried"  # broken verdicts expired and tried by a real flow
    BRAKE_ENGAGED = "brake.engaged"
    BRAKE_RELEASED = "brake.released"
    SUSPENDED = "safety.suspended"  # static/provider destinations suspended: target broken
    RESUMED = "safety.resumed"  # and resumed (their verdict expired, or the entry went)
    # the applier
    BATCHES_DONE = "dataplane.batches_done"
    BATCHES_FAILED = "dataplane.batches_failed"


class ApplyResult(enum.StrEnum):
    """How an A answer's wait for the dataplane ended (``apply.Applier.apply``)."""

    DONE = "done"
    LATE = "late"  # the deadline passed: released unmapped
    FAILED = "failed"  # the batch failed: released unmapped
    NONE = "none"  # nothing to install and nothing pending


def refused(reason: Reason) -> str:
    """Observations (or operator actions) not mapped, per reason."""
    return f"refused.{reason}"


def stale(reason: StaleReason | None) -> str:
    """Entries gone Stale, per reason (an entry going Stale always has one)."""
    return f"stale.{reason}"


def applied(result: ApplyResult) -> str:
    """A answers by how their wait for the dataplane ended (batches count apart)."""
    return _APPLIED[result]


_APPLIED = {result: f"answers.apply_{result}" for result in ApplyResult}  # not built per answer


def summary(counters: Mapping[str, int]) -> dict[str, Any]:
    """The counters status promises (the "summary" object: the CLI's status, the LuCI page)."""

    def get(name: str) -> int:
        return counters.get(name, 0)

    stale_total = sum(get(stale(r)) for r in StaleReason)
    refusals = {str(r): get(refused(r)) for r in sorted(Reason) if get(refused(r))}
    return {
        "queries": get(Count.QUERIES_UDP) + get(Count.QUERIES_TCP),
        "a_queries": get(Count.QUERIES_A),
        "a_with_aaaa": get(Count.OBSERVED_WITH_AAAA),
        "mappings": {
            "created": get(Count.CREATED),
            "refreshed": get(Count.REFRESHED) + get(Count.REVIVED),
            "stale": stale_total,
            "expired": get(stale(StaleReason.EXPIRED)),
            "deleted": get(Count.DELETED),
            "refused": refusals,
        },
        "safety": {
            "rescued": get(Count.SAFETY_RESCUED),
            "flows_deleted": get(Count.SAFETY_FLOWS_DELETED),
            "stale_by_broken": get(stale(StaleReason.BROKEN)),
            "verdicts_working": get(Count.VERDICT_WORKING),
            "verdicts_broken": get(Count.VERDICT_BROKEN),
            "probes": get(Count.VERDICT_RETRIED),
            "brake_engaged": get(Count.BRAKE_ENGAGED),
            "brake_released": get(Count.BRAKE_RELEASED),
            "suspended": get(Count.SUSPENDED),
        },
        "apply_failures": get(Count.BATCHES_FAILED),
        "released_unmapped": get(applied(ApplyResult.LATE)) + get(applied(ApplyResult.FAILED)),
    }


def known(name: str) -> bool:
    """A counter name defined here (tests check every counter a daemon shows against it)."""
    families = [refused(r) for r in Reason] + [stale(r) for r in StaleReason]
    families += [applied(r) for r in ApplyResult]
    return name in Count.__members__.values() or name in families
