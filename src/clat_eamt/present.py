"""How entries, decisions and operations look to people (tables) and programs (JSON).

Shared by ``clat-eamt explain``, the daemon's decision log, the control API and the ubus object,
so every surface shows an entry with the same fields: ipv4, ipv6, pool, fqdn, origin, state,
expires_in.  The counters' summary is ``core.counters.summary``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from ipaddress import IPv4Network
from typing import Any

from clat_eamt.core.decide import Decision
from clat_eamt.core.engine import Outcome
from clat_eamt.core.model import (
    DataplaneOp,
    EnsureDnat,
    EnsureTranslator,
    Entry,
    EntryEvent,
    Observation,
    RemoveDnat,
    RemoveTranslator,
    State,
    show,
)

JSON = dict[str, Any]
# Log lines stay small whatever an answer holds (issue 15: one answer of 3,000 A records wrote
# 200 KB of log): at most this many addresses and parts per line, then a count of the rest.
LOG_ITEMS = 8
LOG_PARTS = 16


def _few(items: Sequence[object], limit: int = LOG_ITEMS, sep: str = ",") -> str:
    """The first ``limit`` items joined, then how many more there are."""
    shown = sep.join(str(x) for x in items[:limit])
    return f"{shown}{sep}... ({len(items) - limit} more)" if len(items) > limit else shown


def entry_json(
    entry: Entry, now: float, suspended: Callable[[IPv4Network], bool] | None = None
) -> JSON:
    """``suspended``: whether the safety net steers nothing new to a D now (``core.suspend``,
    ``suspended_in``)."""
    held = entry.state is State.VALID and suspended is not None and suspended(entry.ipv4)
    return {
        "ipv4": show(entry.ipv4),
        "ipv6": show(entry.ipv6),
        "pool": show(entry.pool),
        "fqdn": entry.fqdns[0] if entry.fqdns else "",
        "fqdns": list(entry.fqdns),
        "cnames": list(entry.cnames),
        "origin": str(entry.origin),
        "state": str(entry.state),
        "stale_reason": str(entry.stale_reason) if entry.stale_reason else None,
        "suspended": "target broken" if held else None,
        "expires_in": None if entry.expires is None else round(entry.expires - now, 1),
        "host": entry.host,
        "comment": entry.comment,
        "refreshes": entry.refreshes,
    }


def op_text(op: DataplaneOp) -> str:
    """One line per operation, in the words of SPEC section 5 (dataplane v2: the IPv4 leg
    D -> P and the IPv6 leg P -> X of a mapping)."""
    match op:
        case EnsureTranslator(pool, ipv6):
            return f"ipv6 leg add {show(pool)} -> {show(ipv6)}"
        case EnsureDnat(ipv4, pool):
            return f"ipv4 leg add {show(ipv4)} -> {show(pool)}"
        case RemoveDnat(ipv4):
            return f"ipv4 leg del {show(ipv4)}"
        case RemoveTranslator(pool, ipv6):
            return f"ipv6 leg del {show(pool)} -> {show(ipv6)}"
    raise TypeError(op)  # pragma: no cover - the match is exhaustive


def outcome_lines(outcome: Outcome) -> list[str]:
    """What one observation did, a line per entry event, refusal and note."""
    lines = [event_text(e) for e in outcome.events]
    decision = outcome.decision
    if decision is not None:
        lines += [f"not mapped ({r.reason}): {r.detail}" for r in decision.refusals]
        lines += [f"note: {n}" for n in decision.notes]
    return lines or ["no change"]


def outcome_text(outcome: Outcome) -> str:
    """One log line: the entry events, refusals and notes, then the dataplane operations."""
    parts = outcome_lines(outcome) + [f"dataplane: {op_text(op)}" for op in outcome.ops[:LOG_PARTS]]
    if len(outcome.ops) > LOG_PARTS:
        parts.append(f"dataplane: {len(outcome.ops) - LOG_PARTS} more operations")
    return _few(parts, LOG_PARTS, "; ")


def observation_text(obs: Observation) -> str:
    a = _few(obs.a) or "-"
    aaaa = _few(obs.aaaa) or str(obs.aaaa_status)
    via = f" (via {_few(obs.chain, sep=' -> ')})" if obs.chain else ""
    host = f"{obs.host.key} {obs.host.klass}" if obs.host else "unknown client"
    return f"{obs.name}{via} A {a} AAAA {aaaa} ({host})"


def observation_json(obs: Observation) -> JSON:
    return {
        "name": obs.name,
        "chain": list(obs.chain),
        "a": [str(x) for x in obs.a[:LOG_ITEMS]],  # the log's copy: the first few
        "a_count": len(obs.a),
        "a_ttl": obs.a_ttl,
        "aaaa_status": str(obs.aaaa_status),
        "aaaa": [str(x) for x in obs.aaaa[:LOG_ITEMS]],
        "aaaa_count": len(obs.aaaa),
        "aaaa_ttl": obs.aaaa_ttl,
        "authenticated": obs.authenticated,
        "host": obs.host.key if obs.host else None,
        "host_class": str(obs.host.klass) if obs.host else None,
    }


def event_text(event: EntryEvent) -> str:
    e = event.entry
    base = f"{event.kind}: {show(e.ipv4)} -> {show(e.ipv6)} via pool {show(e.pool)}"
    if event.kind == "stale" and e.stale_reason:
        return f"{base} ({e.stale_reason})"
    return base


def decision_json(decision: Decision) -> JSON:
    return {
        "name": decision.name,
        "target": str(decision.target) if decision.target else None,
        "refusals": [
            {
                "reason": str(r.reason),
                "detail": r.detail,
                "address": str(r.address) if r.address else None,
            }
            for r in decision.refusals
        ],
        "notes": list(decision.notes),
    }


def outcome_json(outcome: Outcome, now: float) -> JSON:
    return {
        "events": [{"kind": e.kind, "entry": entry_json(e.entry, now)} for e in outcome.events],
        "ops": [op_text(op) for op in outcome.ops],
        "decision": decision_json(outcome.decision) if outcome.decision else None,
    }


def table_text(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """A plain aligned text table (no colour, no box drawing: routers have small terminals)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def mappings_table(rows: Sequence[JSON], flows: bool = False) -> str:
    """The mapping table as people read it, from ``entry_json`` rows (with their "flows" when
    ``flows``): the CLI's ``mappings``, ``explain`` and the SIGUSR1 dump all print this one."""
    if not rows:
        return "(no mappings)"
    table = []
    for r in rows:
        state = f"{r['state']}({r['stale_reason']})" if r["stale_reason"] else r["state"]
        if r.get("suspended"):
            state = f"{r['state']}(suspended: {r['suspended']})"
        expires = "-" if r["expires_in"] is None else f"{r['expires_in']:.0f}s"
        name = ",".join(r["fqdns"]) or r["comment"]
        row = [r["ipv4"], r["ipv6"], r["pool"], state, r["origin"], expires]
        table.append([*row, str(r["flows"]), name] if flows else [*row, name])
    headers = ["ipv4", "ipv6", "pool", "state", "origin", "expires"]
    return table_text(table, [*headers, "flows", "fqdn"] if flows else [*headers, "fqdn"])


def entries_text(entries: Iterable[Entry], now: float) -> str:
    ordered = sorted(entries, key=lambda e: (e.ipv4, e.ipv6))
    return mappings_table([entry_json(e, now) for e in ordered])


def suspended_in(shells: Any) -> Callable[[IPv4Network], bool]:
    """Whether a D overlaps the suspended destinations in a snapshot's shells (the safety
    net's status): a set lookup for a /32 D and /32 elements (nearly all), a scan only of the
    other elements, and of every element for a prefix D (a static or provider prefix)."""
    safety = shells.get("safety") if isinstance(shells, dict) else None
    rows = safety.get("suspended") if isinstance(safety, dict) else None
    held = {IPv4Network(r["ipv4"]) for r in rows or ()}
    wide = [d for d in held if d.prefixlen < 32]

    def covers(ipv4: IPv4Network) -> bool:
        if ipv4.prefixlen < 32:
            return any(d.overlaps(ipv4) for d in held)
        return ipv4 in held or any(ipv4.subnet_of(d) for d in wide)

    return covers
