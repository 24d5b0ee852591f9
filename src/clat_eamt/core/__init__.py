"""The pure decision core of clat-eamt: no sockets, no subprocesses, no clock reads.

Everything here takes time as an argument (``now``, seconds on any monotonic scale) and returns
plain data, so the shells around it (DNS proxy, nftables, translator, conntrack, ubus) stay thin
and the rules can be tested in memory.  The parts, in reading order:

- ``model``        the vocabulary: origins, states, reasons, entries, observations, operations.
- ``counters``     every counter and entry event kind, named once; the status summary.
- ``addresses``    IANA special-purpose registries and the address policy (what may be mapped).
- ``pref64``       RFC 6052 embedding at every prefix length, known Pref64s, synthesized AAAA test.
- ``ra``           the PREF64 option of router advertisements (RFC 8781) and its lifetimes.
- ``names``        DNS name normalisation and suffix-matching allow/deny lists.
- ``hosts``        IPv4-only / dual-stack hosts from neighbour entries, and their memory (SPEC 3).
- ``lifecycle``    the Valid / Stale / Invalid state machine of one entry (SPEC section 3).
- ``pool``         the private mapping pool: one pool address per IPv6 target.
- ``limits``       token buckets for the creation rate, global and per host.
- ``table``        the mapping table: entries, indexes and the invariants between them.
- ``decide``       the decision function: one DNS observation -> table changes and refusals.
- ``ipv6only``     IPv6-only names: an A answered with a pool address, and its quarantine.
- ``seen``         the answers seen: every A answer for its TTL, against hostile names.
- ``repeat``       decisions on repeated answers, given again while nothing they read changed.
- ``refresh``      TTL ceilings of answers; which used mappings to refresh before their end.
- ``dataplane``    desired dataplane state of a table and the diff between two of them.
- ``translation``  T(P): a pool address as the CLAT writes it in IPv6.
- ``provider``     the operator's table: its format and checks, when to fetch it again.
- ``safety``       the safety net: verdicts per target and /64, rescue deadlines, the brake.
- ``suspend``      static and provider destinations not steered while their target is broken.
- ``unguarded``    IPv6 legs the safety net leaves alone: those of IPv6-only entries.
- ``writer``       the engine's table writes: static / provider / adopted entries, the commit.
- ``engine``       ties them together: observe / tick / static / admin, returning operations.
"""
