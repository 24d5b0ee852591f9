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

Memory is bounded: at most ``capacity`` (D, name) pairs, the oldest forgotten first, and
expired ones dropped by ``expire``.  A flood of answers can push an honest one out early; the
README's security section says what that and the other gaps leave open.

A name also brings at most ``PER_TARGET`` IPv4s to one IPv6 target (``decide`` counts them):
one hostile answer with 40 A records must not steer 40 destinations to one host.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from clat_eamt.core.model import AaaaStatus, Observation
from clat_eamt.core.names import normalize

# (IPv4, name) pairs: about 150 bytes each (tracemalloc at 10,000, issue 15), plus the name's
# string and its AAAA where no entry shares them
CAPACITY = 16384
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


class AnswersSeen:
    def __init__(self, capacity: int = CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the memory of answers needs room for one")
        self.capacity = capacity
        # (D, name) -> expires; a plain dict keeps insertion order: oldest first.
        self._pairs: dict[tuple[int, str], float] = {}
        # name -> its AAAA set in its latest answer (one per name, not per pair)
        self._vouch: dict[str, Vouch] = {}
        # D -> the names remembered with it (one name, the usual case, without a set)
        self._names: dict[int, str | set[str]] = {}
        self.forgotten = 0  # pushed out before their TTL ended (status: memory too small)
        self._sweep = float("-inf")

    def __len__(self) -> int:
        return len(self._pairs)

    def remember(self, obs: Observation, now: float, name: str | None = None) -> int:
        """Note the answer ``obs`` for its A TTL (after the decision on it); returns how many
        unexpired pairs had to be forgotten to make room.  ``name``: the name as decide
        normalized it (the same string then)."""
        vouch: Vouch
        if obs.aaaa_status is AaaaStatus.ANSWER:
            if len(obs.aaaa) == 1:  # the usual answer
                vouch = int(obs.aaaa[0])
            else:
                found = sorted({int(x) for x in obs.aaaa})
                vouch = found[0] if len(found) == 1 else tuple(found)
        elif obs.aaaa_status in (AaaaStatus.NODATA, AaaaStatus.NXDOMAIN):
            vouch = ()
        else:
            vouch = None
        expires = now + min(max(obs.a_ttl, 0), MAX_MEMORY_TTL)
        name = normalize(obs.name) if name is None else name  # as decide compares names
        self._vouch[name] = vouch
        for ipv4 in (int(obs.a[0]),) if len(obs.a) == 1 else {int(a) for a in obs.a}:
            key = (ipv4, name)
            if self._pairs.pop(key, None) is None:  # a repeated pair is indexed already
                self._index(ipv4, name)
            self._pairs[key] = expires  # re-inserted: the newest
        forgotten = 0
        while len(self._pairs) > self.capacity:
            oldest = next(iter(self._pairs))
            until = self._pairs.pop(oldest)
            self._unindex(*oldest)
            forgotten += until > now
        if len(self._vouch) > 2 * self.capacity:  # a flood of names: prune before the sweep
            self._prune_vouch()
        self.forgotten += forgotten
        return forgotten

    def objection(
        self, name: str, ipv4: IPv4Address, target: IPv6Address, now: float
    ) -> str | None:
        """Why D -> X may not be made for ``name`` now: another name's unexpired answer holds
        D without X (its own AAAA set, or none).  None when nothing objects."""
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
            self._prune_vouch()
        return len(gone)

    def _prune_vouch(self) -> None:
        named = {name for _, name in self._pairs}
        self._vouch = {n: v for n, v in self._vouch.items() if n in named}

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
