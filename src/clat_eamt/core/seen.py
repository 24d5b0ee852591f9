"""The answers seen: every A answer that passed the proxy, remembered for its TTL; pure.

The attack (SPEC section 4, raised on the OpenWrt list): anyone can publish a name whose A is a
victim's IPv4 D and whose AAAA is their own IPv6 X.  The conflict rule only sees the victim's
answer if it passes the proxy at the right time; with dnsmasq's cache on, an honest answer for
the victim's name is served from the cache and never comes back, and an IPv4-only victim name
(no AAAA) gives no mapping the hostile one could conflict with.  So every A answer is
remembered for its TTL, mapped or not: (D, name) -> that name's AAAA set, or none for NODATA /
NXDOMAIN.  A mapping D -> X is refused while another name's unexpired answer holds D without X
(``objection``).  An answer whose AAAA timed out or failed says nothing about X and objects to
nothing.

Only what the decision reads is kept (issue 26): the lowest ``limits.MAX_ADDRESSES`` IPv4s and
IPv6s of an answer, the ones ``decide`` considers.  An answer of 4,000 A records so holds 16
pairs, not 4,000; five of them used to push every other answer out (16,384 pairs) and let a
hostile name map two victims' IPv4s.

Memory is bounded in entries and bytes: at most ``capacity`` (D, name) pairs and
``max_bytes`` of names and AAAA sets (estimated per name as ``NAME_COST`` plus its name's
length and ``ADDRESS_COST`` per IPv6; tracemalloc, tests/unit/test_hostile_names.py).
An unexpired answer is never forgotten to make room: forgetting it is what opened the hijack.
When the memory is full, an answer that does not fit is not kept, and until that answer's TTL
would have ended (``blind_until``) no new mapping is made of an IPv4 the memory cannot vouch
for: any of them may be the one whose answer was not kept.  Refreshes of Valid mappings go on;
new mappings take the plain CLAT path meanwhile, the safe side.  ``status`` says how full it is.

A name also brings at most ``PER_TARGET`` IPv4s to one IPv6 target (``decide`` counts them):
one hostile answer with 40 A records must not steer 40 destinations to one host.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

from clat_eamt.core.limits import MAX_ADDRESSES, lowest
from clat_eamt.core.model import AaaaStatus, Observation
from clat_eamt.core.names import normalize

CAPACITY = 16384  # (IPv4, name) pairs
PAIR_COST = 180  # bytes per pair: its key, IPv4, dict slots and index (tracemalloc, 3 MB full)
MAX_BYTES = 4 << 20  # the names and AAAA sets the pairs refer to (module doc)
NAME_COST = 250  # a name's string object, its dict slots and its AAAA set's container, bytes
ADDRESS_COST = 56  # one IPv6 of an AAAA set: its int (44 bytes for 128 bits) and a tuple slot
_WORST_NAME = NAME_COST + 255 + ADDRESS_COST * MAX_ADDRESSES  # the most one answer's name adds
PER_TARGET = 8  # IPv4s one name may map to one IPv6 target
SWEEP = 10.0  # seconds between sweeps of expired pairs
MAX_MEMORY_TTL = 86400  # an answer is remembered at most this long, whatever its TTL
# The name's AAAA set (one per name, shared by the pairs of its answer): a single IPv6 as its
# integer (the usual answer; a tuple around it would cost 48 bytes more per name), several as a
# sorted tuple of integers, () for no IPv6; None: AAAA unknown.  Integers, not ipaddress objects:
# a router keeps thousands.
Vouch = int | tuple[int, ...] | None


def _addresses(vouch: int | tuple[int, ...]) -> tuple[int, ...]:
    return (vouch,) if isinstance(vouch, int) else vouch


def _vouch_of(obs: Observation) -> Vouch:
    if obs.aaaa_status is AaaaStatus.ANSWER:
        if len(obs.aaaa) == 1:  # the usual answer
            return int(obs.aaaa[0])
        found = [int(x) for x in lowest(obs.aaaa)[0]]  # what decide considers
        return found[0] if len(found) == 1 else tuple(found)
    if obs.aaaa_status in (AaaaStatus.NODATA, AaaaStatus.NXDOMAIN):
        return ()
    return None


def _cost(name: str, vouch: Vouch) -> int:
    size = 0 if vouch is None or isinstance(vouch, int) else len(vouch)
    return NAME_COST + len(name) + ADDRESS_COST * size


class AnswersSeen:
    def __init__(self, capacity: int = CAPACITY, max_bytes: int = MAX_BYTES) -> None:
        if capacity < MAX_ADDRESSES:
            raise ValueError(f"the memory of answers needs room for one ({MAX_ADDRESSES} pairs)")
        self.capacity, self.max_bytes = capacity, max_bytes
        # (D, name) -> expires; a plain dict keeps insertion order: oldest first.
        self._pairs: dict[tuple[int, str], float] = {}
        # name -> its AAAA set in its latest answer (one per name, not per pair)
        self._vouch: dict[str, Vouch] = {}
        # D -> the names remembered with it (one name, the usual case, without a set)
        self._names: dict[int, str | set[str]] = {}
        self.bytes = 0  # estimated size of the names and AAAA sets kept (``_cost``)
        self.refused = 0  # pairs not kept because the memory was full
        self.blind_until = float("-inf")  # the last refused pair's TTL end (module doc)
        self._sweep = float("-inf")

    def __len__(self) -> int:
        return len(self._pairs)

    def full(self) -> bool:
        """No room for the pairs of one more answer."""
        return (
            len(self._pairs) + MAX_ADDRESSES > self.capacity
            or self.bytes + _WORST_NAME > self.max_bytes
        )

    def remember(self, obs: Observation, now: float, name: str | None = None) -> int:
        """Note the answer ``obs`` for its A TTL (after the decision on it); returns how many of
        its pairs did not fit (the memory was full: module doc).  ``name``: the name as decide
        normalized it (the same string then)."""
        expires = now + min(max(obs.a_ttl, 0), MAX_MEMORY_TTL)
        name = normalize(obs.name) if name is None else name  # as decide compares names
        ipv4s = (int(obs.a[0]),) if len(obs.a) == 1 else [int(a) for a in lowest(obs.a)[0]]
        vouch = _vouch_of(obs)
        known = name in self._vouch
        if self.full():  # room is made of expired pairs only, never of unexpired ones
            self.expire(now)  # at most every SWEEP seconds: a full memory costs no sweep per answer
        if not known and self.full():
            return self._refuse(len(ipv4s), expires)
        old = self._vouch.get(name)
        self.bytes += _cost(name, vouch) - (_cost(name, old) if known else 0)
        self._vouch[name] = vouch
        refused = 0
        for ipv4 in ipv4s:
            key = (ipv4, name)
            if self._pairs.pop(key, None) is None:  # a repeated pair is indexed already
                if len(self._pairs) >= self.capacity:
                    refused += 1
                    continue
                self._index(ipv4, name)
            self._pairs[key] = expires  # re-inserted: the newest
        return self._refuse(refused, expires) if refused else 0

    def _refuse(self, count: int, expires: float) -> int:
        self.refused += count
        self.blind_until = max(self.blind_until, expires)
        return count

    def objection(
        self, name: str, ipv4: IPv4Address, target: IPv6Address, now: float
    ) -> str | None:
        """Why D -> X may not be made for ``name`` now: another name's unexpired answer holds
        D without X (its own AAAA set, or none), or the memory was full and D's answer may be
        one it could not keep (module doc).  None when nothing objects."""
        d = int(ipv4)
        names = self._names.get(d, ())
        for other in sorted((names,) if isinstance(names, str) else names):
            if other == name:
                continue
            expires, vouch = self._pairs[(d, other)], self._vouch.get(other)
            if expires <= now or vouch is None or int(target) in _addresses(vouch):
                continue
            ips = _addresses(vouch)
            says = ", ".join(str(IPv6Address(x)) for x in ips) if ips else "no IPv6"
            left = expires - now
            return f"{other} answered {ipv4} with {says} ({left:.0f} s of its TTL left)"
        if now < self.blind_until or ((d, name) not in self._pairs and self.full()):
            return (
                f"the memory of answers is full ({len(self._pairs)} pairs): {ipv4} is not "
                "vouched for, new mappings wait until it has room"
            )
        return None

    def expire(self, now: float) -> int:
        """Drop the pairs whose TTL ended, at most every ``SWEEP`` seconds (``objection``
        skips expired ones meanwhile); how many went."""
        if now < self._sweep + SWEEP:
            return 0
        self._sweep = now
        gone = [key for key, expires in self._pairs.items() if expires <= now]
        for key in gone:
            del self._pairs[key]
            self._unindex(*key)
        if gone or len(self._vouch) > len(self._pairs):  # names with no pair left
            named = {name for _, name in self._pairs}
            for name in [n for n in self._vouch if n not in named]:
                self.bytes -= _cost(name, self._vouch.pop(name))
        return len(gone)

    def status(self, now: float) -> dict[str, Any]:
        """How full the memory is (status; LuCI shows it)."""
        return {
            "pairs": len(self._pairs),
            "capacity": self.capacity,
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "refused": self.refused,
            "blind_for": round(self.blind_until - now) if now < self.blind_until else 0,
        }

    def _index(self, ipv4: int, name: str) -> None:
        names = self._names.get(ipv4)
        if names is None or names == name:
            self._names[ipv4] = name
        elif isinstance(names, str):
            self._names[ipv4] = {names, name}
        else:
            names.add(name)

    def _unindex(self, ipv4: int, name: str) -> None:
        names = self._names.get(ipv4)
        if names is None:
            return
        if isinstance(names, str):
            if names == name:
                del self._names[ipv4]
            return
        names.discard(name)
        if len(names) == 1:
            self._names[ipv4] = next(iter(names))
