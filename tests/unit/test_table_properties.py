"""Property tests of the table invariants (issue 2, "what it must show"), driving the engine with
random sequences of answers, time, flows and operator actions:

- never two Valid dns entries for one IPv4 with different IPv6;
- static entries are never modified by dns answers;
- no entry ever holds a special-purpose, excluded or synthesized address;
- pool addresses are unique per IPv6 target and never leaked (after all entries die, the pool is
  whole again);
- the operations returned, replayed from empty, always equal the desired dataplane state.
"""

from ipaddress import IPv4Address, IPv4Network, IPv6Address

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from clat_eamt.core.addresses import AddressPolicy
from clat_eamt.core.dataplane import desired_state
from clat_eamt.core.engine import StaticSpec
from clat_eamt.core.limits import CreationLimiter
from clat_eamt.core.model import (
    AaaaStatus,
    EnsureDnat,
    EnsureTranslator,
    Host,
    HostClass,
    LiveFlows,
    Observation,
    Origin,
    RemoveDnat,
    RemoveTranslator,
    State,
)

from .corekit import engine, v4, v6

NAMES = [f"n{i}.example" for i in range(5)]
IPV4 = [IPv4Address(f"192.0.2.{i}") for i in (1, 2, 3, 17, 18)] + [
    IPv4Address("10.0.0.1"),  # special-purpose
    IPv4Address("203.0.113.1"),  # excluded below
]
IPV6 = [IPv6Address(f"2001:db8:1::{i}") for i in range(1, 5)] + [
    IPv6Address("2001:db8:64::c000:201"),  # inside the lab Pref64
    IPv6Address("64:ff9b::1"),  # well-known prefix
    IPv6Address("fe80::1"),  # special-purpose
    IPv6Address("2001:db8:9::c000:202"),  # embeds 192.0.2.2 at /96
]
STATICS = [
    StaticSpec(v4("192.0.2.16/30"), v6("2001:db8:5::/126"), "cdn"),
    StaticSpec(v4("192.0.2.3/32"), v6("2001:db8:6::3/128"), "one"),
    StaticSpec(v4("192.0.2.1/32"), v6("2001:db8:1::1/128"), "same as a dns answer"),
]
PROVIDED = [
    (v4("192.0.2.1/32"), v6("2001:db8:7::1/128")),
    (v4("192.0.2.2/32"), v6("2001:db8:1::2/128")),
    (v4("192.0.2.1/32"), v6("2001:db8:1::1/128")),
]
PROVIDED_PREFIX = (v4("192.0.2.0/30"), v6("2001:db8:7::/126"))  # covers dns and static ones
EXCLUDED = (v4("203.0.113.0/24"),)
HOSTS = [
    Host("tv", HostClass.IPV4_ONLY),
    Host("laptop", HostClass.DUAL_STACK),
    Host("new", HostClass.UNKNOWN),
    None,
]


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = engine(
            pool=IPv4Network("198.51.100.0/29"),  # 6 usable: exhaustion happens
            limiter=CreationLimiter(rate=2, burst=4, host_rate=1, host_burst=3),
            addresses=AddressPolicy(allow_documentation=True, excluded=EXCLUDED),
            max_entries=6,
            stale_linger=5,
        )
        self.now = 0.0
        self.dnat: dict = {}
        self.translator: dict = {}

    def _apply(self, ops) -> None:
        for op in ops:
            match op:
                case EnsureTranslator(pool, ipv6):
                    self.translator[pool] = ipv6
                case RemoveTranslator(pool, _):
                    del self.translator[pool]
                case EnsureDnat(ipv4, pool):
                    assert pool in self.translator, "DNAT before its translator entry"
                    self.dnat[ipv4] = pool
                case RemoveDnat(ipv4):
                    del self.dnat[ipv4]

    def _statics(self):
        return {e.key: e for e in self.engine.table if e.origin is Origin.STATIC}

    @rule(
        name=st.sampled_from(NAMES),
        a=st.lists(st.sampled_from(IPV4), max_size=3),
        aaaa=st.lists(st.sampled_from(IPV6), max_size=3),
        status=st.sampled_from(list(AaaaStatus)),
        ttl=st.integers(0, 400),
        host=st.sampled_from(HOSTS),
        dt=st.floats(0, 50),
    )
    def observe(self, name, a, aaaa, status, ttl, host, dt) -> None:
        self.now += dt
        statics = self._statics()
        obs = Observation(
            name,
            tuple(a),
            ttl,
            status,
            tuple(aaaa) if status is AaaaStatus.ANSWER else (),
            ttl,
            host=host,
        )
        self._apply(self.engine.observe(obs, self.now).ops)
        assert self._statics() == statics, "a dns answer modified a static entry"

    @rule(dt=st.floats(0, 500), keep=st.lists(st.booleans(), max_size=10), oracle=st.booleans())
    def tick(self, dt, keep, oracle) -> None:
        self.now += dt
        pairs = sorted(
            {(e.ipv4.network_address, e.pool.network_address) for e in self.engine.table}
        )
        live = frozenset(p for p, k in zip(pairs, keep, strict=False) if k)
        self._apply(self.engine.tick(self.now, LiveFlows(live) if oracle else None).ops)

    @rule(spec=st.sampled_from(STATICS))
    def add_static(self, spec) -> None:
        self._apply(self.engine.add_static(spec.ipv4, spec.ipv6, self.now, spec.comment).ops)

    @rule(spec=st.sampled_from(STATICS))
    def delete_static(self, spec) -> None:
        self._apply(self.engine.delete(spec.ipv4, self.now, Origin.STATIC).ops)

    @rule(pair=st.sampled_from(PROVIDED), ttl=st.integers(1, 300))
    def upsert_provider(self, pair, ttl) -> None:
        statics = self._statics()
        self._apply(self.engine.upsert_provider(*pair, ttl=ttl, now=self.now).ops)
        assert self._statics() == statics, "a provider entry modified a static entry"

    @rule(
        table=st.lists(st.sampled_from([*PROVIDED[:2], PROVIDED_PREFIX]), unique=True),
        ttl=st.integers(1, 300),
    )
    def sync_provider(self, table, ttl) -> None:
        """A whole operator's table taken (issue 28): the entries it lists installed, the
        provider entries it does not list retired; static entries untouched."""
        statics = self._statics()
        entries = [(v4, v6, self.now + ttl, "") for v4, v6 in table]
        self._apply(self.engine.sync_provider(entries, self.now).ops)
        assert self._statics() == statics, "a provider table modified a static entry"
        valid = {e.key for e in self.engine.table if e.origin is Origin.PROVIDER
                 and e.state is State.VALID}  # fmt: skip
        assert valid <= set(table), f"a provider entry the table does not list is Valid: {valid}"

    @rule()
    def flush(self) -> None:
        self._apply(self.engine.flush(self.now).ops)

    @invariant()
    def table_invariants_hold(self) -> None:
        self.engine.table.check_invariants()

    @invariant()
    def never_two_valid_dns_entries_for_one_ipv4(self) -> None:
        seen: dict = {}
        for e in self.engine.table:
            if e.origin is Origin.DNS and e.state is State.VALID:
                assert seen.setdefault(e.ipv4, e.ipv6) == e.ipv6

    @invariant()
    def no_entry_holds_a_special_excluded_or_synthesized_address(self) -> None:
        policy = self.engine.policy
        for e in self.engine.table:
            assert policy.addresses.refusal(e.ipv4) is None, e
            assert policy.addresses.refusal(e.ipv6) is None, e
            if e.origin is Origin.DNS:
                ipv6, ipv4 = e.ipv6.network_address, e.ipv4.network_address
                assert policy.pref64.synthesized_reason(ipv6, [ipv4]) is None, e

    @invariant()
    def replayed_operations_equal_the_desired_state(self) -> None:
        want = desired_state(self.engine.table)
        assert self.dnat == dict(want.dnat)
        assert self.translator == dict(want.translator)

    def teardown(self) -> None:
        """After every entry dies, the pool is whole again and the dataplane empty."""
        for spec in STATICS:
            self._apply(self.engine.delete(spec.ipv4, self.now, Origin.STATIC).ops)
        for ipv4, _ in PROVIDED:
            self._apply(self.engine.delete(ipv4, self.now, Origin.PROVIDER).ops)
        self._apply(self.engine.flush(self.now).ops)
        for later in (10_000.0, 20_000.0):
            self._apply(self.engine.tick(self.now + later, LiveFlows()).ops)
        pool = self.engine.table.pool
        assert len(self.engine.table) == 0
        assert pool.free == pool.size and pool.leases() == ()
        assert self.dnat == {} and self.translator == {}


EngineMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
TestEngineMachine = EngineMachine.TestCase
