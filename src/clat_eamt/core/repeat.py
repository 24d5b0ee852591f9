"""Decisions on repeated answers, remembered while nothing they depend on changed; pure.

A home asks the same names over and over, and with dnsmasq's cache off (per-client options)
every answer reaches the proxy: most answers say what the last one for the name said, and
``decide`` then finds the same thing again (refresh the name's Valid mappings, or nothing for
a name without IPv6), at most of the proxy's cost per answer (README, Benchmarks).  So the
decision on an answer is remembered, by name, and given again for an answer of the same shape
(the same A and AAAA records, status, DNSSEC flag, host and chain; TTLs may differ) while

- the table has not changed in a way a decision can see (``MappingTable.generation``: an
  entry added, deleted, changing state, origin or names; the quarantine);
- the policy is the same object (every reload, Pref64 change or host census that changes it
  makes a new one).

Only decisions that depend on nothing else are remembered, the two kinds repeated answers make:

- every A record's address refreshed a Valid dns entry whose IPv6 is the answer's only AAAA
  (one target: no choice among targets, which the answers seen could sway with time);
- no change at all and no target: a gate refused the answer, the AAAA taught nothing, or the
  name has no usable IPv6 and vouches for no entry and conflicts with none.

Decisions that read the clock (quarantine, the memory of answers seen, rate limits) or change
what the table holds are never remembered.  What is given again is the same decision with the
expiry the new answer's TTLs give (``Policy.expiry``), so the table, counters and log come out
exactly as ``decide`` would make them (tests/unit/test_repeat.py compares the two on random
histories).  At most ``CAPACITY`` names, the oldest forgotten first, and bounded in bytes
(issue 26): an answer of more than ``limits.MAX_ADDRESSES`` records of a family is never
remembered (``Decision.skipped``), nor a decision whose texts (refusals, notes, the CNAME chain)
exceed ``MAX_TEXT`` characters; a name so costs at most about 6 KB, 6 MB for ``CAPACITY``.
"""

from __future__ import annotations

from dataclasses import dataclass

from clat_eamt.core.decide import Decision, Policy, Refresh
from clat_eamt.core.model import EntryKey, Observation, Reason

CAPACITY = 1024  # names; about 250 to 600 bytes each (a refusal's text), tests/unit/test_repeat.py
MAX_TEXT = 2048  # characters of a remembered decision's texts and chain (module doc)
# Refusals that depend on the clock or the limiter (never in the two kinds above; a safeguard).
_TIMED = frozenset({Reason.CONFLICT, Reason.UNVOUCHED, Reason.RATE_LIMITED,
                    Reason.HOST_RATE_LIMITED, Reason.TARGET_BROKEN})  # fmt: skip


def _shape(obs: Observation) -> tuple[object, ...]:
    """What the decision reads of an answer, but its TTLs."""
    return (
        obs.a, obs.aaaa, obs.aaaa_status, obs.authenticated, obs.host, obs.qtype, obs.chain
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Remembered:
    shape: tuple[object, ...]
    generation: int
    policy: Policy
    decision: Decision  # its Refresh changes' keys, refusals, notes and target
    keys: tuple[EntryKey, ...]


def _text_size(obs: Observation, decision: Decision) -> int:
    texts = [r.detail for r in decision.refusals] + list(decision.notes) + list(obs.chain)
    return sum(len(text) for text in texts)


class Repeats:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._by_name: dict[str, _Remembered] = {}
        self.hits = 0

    def __len__(self) -> int:
        return len(self._by_name)

    def recall(
        self, obs: Observation, generation: int, policy: Policy, now: float
    ) -> Decision | None:
        """The decision ``decide`` would make on ``obs`` now, if a remembered one still holds."""
        kept = self._by_name.get(obs.name)
        if (
            kept is None
            or kept.generation != generation
            or kept.policy is not policy
            or kept.shape != _shape(obs)
        ):
            return None
        self.hits += 1
        decision = kept.decision
        if not kept.keys:
            return decision  # nothing changes: the same decision, as plain data
        expires = policy.expiry(now, min(obs.a_ttl, obs.aaaa_ttl))  # as decide's plan sets it
        name = decision.name
        changes = tuple(Refresh(key, expires, name) for key in kept.keys)
        return Decision(name, decision.target, changes, decision.refusals, decision.notes)

    def learn(
        self, obs: Observation, decision: Decision, all_valid: bool, generation: int,
        policy: Policy,
    ) -> None:  # fmt: skip
        """Remember ``decision`` on ``obs`` if it is of a kind the module doc names, as of the
        table's ``generation`` after its commit.  ``all_valid``: every entry it refreshes was
        Valid before."""
        if (
            decision.skipped
            or any(r.reason in _TIMED for r in decision.refusals)
            or _text_size(obs, decision) > MAX_TEXT
        ):
            self._by_name.pop(obs.name, None)
            return
        changes = decision.changes
        if changes:
            keys = tuple(c.key for c in changes if isinstance(c, Refresh))
            one_target = len(set(obs.aaaa)) == 1 and decision.target is not None
            if not (all_valid and one_target and len(keys) == len(changes) == len(set(obs.a))):
                self._by_name.pop(obs.name, None)
                return
        elif decision.target is not None:  # every address refused: the refusals read the clock
            self._by_name.pop(obs.name, None)
            return
        else:
            keys = ()
        self._by_name.pop(obs.name, None)  # re-inserted: the newest
        self._by_name[obs.name] = _Remembered(_shape(obs), generation, policy, decision, keys)
        while len(self._by_name) > self.capacity:
            del self._by_name[next(iter(self._by_name))]
