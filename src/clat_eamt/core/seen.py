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

from collections import OrderedDict
from ipaddress import IPv4Address, IPv6Address

from clat_eamt.core.model import AaaaStatus, Observation

CAPACITY = 16384  # (IPv4, name) pairs; about 3 MB of Python objects when full
PER_TARGET = 8  # IPv4s one name may map to one IPv6 target
SWEEP = 10.0  # seconds between sweeps of expired pairs
MAX_MEMORY_TTL = 86400  # an answer is remembered at most this long, whatever its TTL
Vouch = frozenset[IPv6Address] | None  # the name's AAAA set; None: AAAA unknown


class AnswersSeen:
    def __init__(self, capacity: int = CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the memory of answers needs room for one")
        self.capacity = capacity
        # (D, name) -> (expires, vouch); oldest remembered first.
        self._pairs: OrderedDict[tuple[IPv4Address, str], tuple[float, Vouch]] = OrderedDict()
        self._names: dict[IPv4Address, set[str]] = {}  # D -> the names remembered with it
        self.forgotten = 0  # pushed out before their TTL ended (status: memory too small)
        self._sweep = float("-inf")

    def __len__(self) -> int:
        return len(self._pairs)

    def remember(self, obs: Observation, now: float) -> int:
        """Note the answer ``obs`` for its A TTL (after the decision on it); returns how many
        unexpired pairs had to be forgotten to make room."""
        vouch: Vouch
        if obs.aaaa_status is AaaaStatus.ANSWER:
            vouch = frozenset(obs.aaaa)
        elif obs.aaaa_status in (AaaaStatus.NODATA, AaaaStatus.NXDOMAIN):
            vouch = frozenset()
        else:
            vouch = None
        expires = now + min(max(obs.a_ttl, 0), MAX_MEMORY_TTL)
        for ipv4 in set(obs.a):
            key = (ipv4, obs.name)
            self._pairs.pop(key, None)
            self._pairs[key] = (expires, vouch)
            self._names.setdefault(ipv4, set()).add(obs.name)
        forgotten = 0
        while len(self._pairs) > self.capacity:
            (ipv4, name), (until, _) = self._pairs.popitem(last=False)
            self._unindex(ipv4, name)
            forgotten += until > now
        self.forgotten += forgotten
        return forgotten

    def objection(
        self, name: str, ipv4: IPv4Address, target: IPv6Address, now: float
    ) -> str | None:
        """Why D -> X may not be made for ``name`` now: another name's unexpired answer holds
        D without X (its own AAAA set, or none).  None when nothing objects."""
        for other in sorted(self._names.get(ipv4, ())):
            if other == name:
                continue
            expires, vouch = self._pairs[(ipv4, other)]
            if expires <= now or vouch is None or target in vouch:
                continue
            says = ", ".join(map(str, sorted(vouch))) if vouch else "no IPv6"
            left = expires - now
            return f"{other} answered {ipv4} with {says} ({left:.0f} s of its TTL left)"
        return None

    def expire(self, now: float) -> int:
        """Drop the pairs whose TTL ended, at most every ``SWEEP`` seconds (``objection``
        skips expired ones meanwhile); how many went."""
        if now < self._sweep + SWEEP:
            return 0
        self._sweep = now
        gone = [key for key, (expires, _) in self._pairs.items() if expires <= now]
        for key in gone:
            del self._pairs[key]
            self._unindex(*key)
        return len(gone)

    def _unindex(self, ipv4: IPv4Address, name: str) -> None:
        names = self._names.get(ipv4)
        if names is not None:
            names.discard(name)
            if not names:
                del self._names[ipv4]
