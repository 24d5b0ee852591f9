"""The life of one mapping entry: every rule that changes an entry's state lives here.

SPEC section 3 (draft-ietf-v6ops-464xlat-optimization, restated): an entry is Valid while DNS
vouches for it and is used for new flows; it goes Stale when its TTL runs out or its conditions
no longer hold (conflict, withdrawn AAAA, outranked, operator action); a Stale entry serves only
the flows that started on it and becomes Invalid when its last flow ends; Invalid entries are
deleted.  Static entries are never changed automatically.

The rules are data (``TRANSITIONS``, ``EVENTS_ALLOWED``, ``REVIVABLE``), in the manner of h11's
state machine, so a reader can check them against the SPEC in one screen.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from clat_eamt.core.model import Entry, Origin, StaleReason, State

MAX_FQDNS = 8  # names remembered per entry (display only); CDNs put hundreds behind one address


class Event(enum.StrEnum):
    REFRESH = "refresh"  # an answer with the same IPv4 and IPv6 (or a provider refresh)
    EXPIRE = "expire"  # TTL ran out
    CONFLICT = "conflict"  # another name maps the IPv4 to another IPv6
    WITHDRAW = "withdraw"  # the last name vouching for it no longer has a usable AAAA
    OUTRANK = "outrank"  # a higher-origin entry now covers the IPv4
    FLUSH = "flush"  # operator flushed dns entries
    DELETE = "delete"  # operator deleted the entry
    BROKEN = "broken"  # the target's native path failed a steered flow (core.safety)
    FLOWS_GONE = "flows-gone"  # flow oracle: no live flow uses it and the linger time passed


VALID, STALE, INVALID = State.VALID, State.STALE, State.INVALID

TRANSITIONS: Mapping[tuple[State, Event], State] = {
    (VALID, Event.REFRESH): VALID,
    (VALID, Event.EXPIRE): STALE,
    (VALID, Event.CONFLICT): STALE,
    (VALID, Event.WITHDRAW): STALE,
    (VALID, Event.OUTRANK): STALE,
    (VALID, Event.FLUSH): STALE,
    (VALID, Event.DELETE): STALE,
    (VALID, Event.BROKEN): STALE,
    (STALE, Event.REFRESH): VALID,  # only from a REVIVABLE stale reason, see below
    (STALE, Event.FLOWS_GONE): INVALID,
}

STALE_REASON: Mapping[Event, StaleReason] = {
    Event.EXPIRE: StaleReason.EXPIRED,
    Event.CONFLICT: StaleReason.CONFLICT,
    Event.WITHDRAW: StaleReason.WITHDRAWN,
    Event.OUTRANK: StaleReason.OUTRANKED,
    Event.FLUSH: StaleReason.FLUSHED,
    Event.DELETE: StaleReason.DELETED,
    Event.BROKEN: StaleReason.BROKEN,
}

# Static entries change only by the operator; provider entries follow the provider's TTL but no
# DNS answer ever touches them (SPEC section 3: provider outranks dns, dns overrides nothing).
EVENTS_ALLOWED: Mapping[Origin, frozenset[Event]] = {
    Origin.STATIC: frozenset({Event.DELETE, Event.FLOWS_GONE}),
    Origin.PROVIDER: frozenset(
        {Event.REFRESH, Event.EXPIRE, Event.OUTRANK, Event.DELETE, Event.FLOWS_GONE}
    ),  # a broken target suspends static and provider entries instead (``core.suspend``)
    Origin.DNS: frozenset(Event),
    Origin.IPV6_ONLY: frozenset(Event),
}

# A matching answer brings a Stale entry back to Valid only when DNS itself made it stale for a
# reason a new answer cures.  A conflict is not cured by one side answering again, and an
# operator's delete is final.
REVIVABLE: frozenset[StaleReason] = frozenset(
    {
        StaleReason.EXPIRED,
        StaleReason.WITHDRAWN,
        StaleReason.FLUSHED,
        StaleReason.OUTRANKED,
        StaleReason.RESTARTED,  # the same answer again proves it, as before the restart
        StaleReason.BROKEN,  # decide refuses a broken target: revived only once it expired
    }
)


class LifecycleError(ValueError):
    """An event that the rules above do not allow for this entry."""


def allowed(entry: Entry, event: Event) -> bool:
    if event not in EVENTS_ALLOWED[entry.origin]:
        return False
    if (entry.state, event) not in TRANSITIONS:
        return False
    if entry.state is State.STALE and event is Event.REFRESH:
        return entry.stale_reason in REVIVABLE
    return True


def transition(
    entry: Entry, event: Event, now: float, *, expires: float | None = None, fqdn: str = ""
) -> Entry:
    """The entry after ``event`` at ``now``; raises LifecycleError if the rules forbid it.

    REFRESH takes the new expiry (an entry shared by several names lives as long as the longest
    of their answers) and the name that vouched for it.
    """
    if not allowed(entry, event):
        raise LifecycleError(
            f"{event} is not allowed for a {entry.state} {entry.origin} entry "
            f"{entry.ipv4} -> {entry.ipv6} (stale reason: {entry.stale_reason})"
        )
    state = TRANSITIONS[(entry.state, event)]
    if event is Event.REFRESH:
        if entry.state is State.STALE:  # revived: the new answer alone sets the expiry
            return entry.with_refresh(now, expires, with_fqdn(entry.fqdns, fqdn))
        return refresh_valid(entry, now, expires, fqdn)
    if state is State.STALE:
        return entry.replace(state=state, stale_reason=STALE_REASON[event], stale_since=now)
    return entry.replace(state=state)


def refresh_valid(entry: Entry, now: float, expires: float | None, fqdn: str) -> Entry:
    """REFRESH of a Valid entry, which every rule allows (``transition`` for one whose state the
    caller knows: an A answer for a mapped name makes one).  The later expiry wins: an entry
    shared by several names lives as long as the longest of their answers."""
    if entry.expires is not None and expires is not None:
        expires = max(entry.expires, expires)
    return entry.with_refresh(now, expires, with_fqdn(entry.fqdns, fqdn))


def take_over(
    entry: Entry, origin: Origin, now: float, *, expires: float | None, comment: str = ""
) -> Entry:
    """An operator (static) or the provider installs exactly this mapping over an existing entry
    of the same IPv4 and IPv6: the entry changes owner and is Valid again, keeping its pool block
    and so every flow on it.  Only an equal or higher origin may take over (SPEC section 3)."""
    if origin.rank < entry.origin.rank:
        raise LifecycleError(f"a {origin} entry cannot take over a {entry.origin} entry")
    return entry.replace(
        origin=origin,
        state=State.VALID,
        expires=expires,
        refreshed=now,
        comment=comment or entry.comment,
        stale_reason=None,
        stale_since=None,
    )


def with_fqdn(fqdns: tuple[str, ...], fqdn: str) -> tuple[str, ...]:
    """Most recent name last, at most MAX_FQDNS names."""
    if not fqdn:
        return fqdns
    kept = (*without_fqdn(fqdns, fqdn), fqdn)
    return kept[-MAX_FQDNS:]


def without_fqdn(fqdns: tuple[str, ...], fqdn: str) -> tuple[str, ...]:
    return tuple(n for n in fqdns if n != fqdn)
