"""The runtime under random sequences of everything that reaches it (issue 16, "what it must
show"): DNS answers, ticks with flows, batches and starts the kernel refuses, a translator that
dies, reloads, crashes and restarts over what the kernel still holds, the operator's add, del and
flush, Pref64 found by discovery, refresh-ahead answers; time is a number the test moves.

Its commands are carried out against ``runtimekit.ModelKernel`` (the nft table and translator as
data, with the engine's ordering rules), and after every step:

- the table's own invariants hold;
- whenever the runtime believes the dataplane is healthy (started, no failed batch since), the
  kernel holds exactly the desired state of the table: the commands, replayed, give it;
- every counter shown is one ``core.counters`` names, every entry event one ``EntryKind``;
- the snapshot agrees with the table; ``restart_needed`` names only options a running
  component cannot change.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from clat_eamt.config import StaticEntry, load_text, schema
from clat_eamt.core import counters
from clat_eamt.core.counters import EntryKind
from clat_eamt.core.dataplane import desired_state
from clat_eamt.core.model import AaaaStatus, Host, HostClass, Observation
from clat_eamt.core.pref64 import DNS
from clat_eamt.runtime import events as e
from clat_eamt.runtime.runtime import Runtime
from clat_eamt.runtime.settings import fixed_options
from tests.unit.runtimekit import ModelDriver, ModelKernel
from tests.unit.standins import loopback_config

NAMES = [f"n{i}.example" for i in range(4)]
A = [IPv4Address(f"192.0.2.{i}") for i in (1, 2, 3, 100)]
AAAA = [IPv6Address("2001:db8:1::1"), IPv6Address("2001:db8:1::2"), None]
HOSTS = [Host(f"02:00:00:00:00:0{i}", HostClass.IPV4_ONLY) for i in range(2)]
STATIC = {
    "a": ("192.0.2.100", "2001:db8:5::100"),
    "b": ("192.0.2.101", "2001:db8:5::101"),
}
OPERATOR = [("192.0.2.102", "2001:db8:5::102"), ("192.0.2.100", "2001:db8:5::100")]
LAB_PREF64 = IPv6Network("2001:db8:64::/96")


def config_text(ttl_min: int, enabled: bool, statics: tuple[str, ...], pref64: bool) -> str:
    static = "".join(
        f"config static '{name}'\n\toption ipv4 '{STATIC[name][0]}'\n"
        f"\toption ipv6 '{STATIC[name][1]}'\n"
        for name in statics
    )
    extra = (
        f"\toption host_mode 'all'\n\toption ttl_min '{ttl_min}'\n"
        f"\toption enabled '{int(enabled)}'\n\toption stale_linger '5'\n"
    )
    text = loopback_config(5353, "/nonexistent/control.sock", extra, static)
    return text if pref64 else text.replace("\tlist pref64 '2001:db8:64::/96'\n", "")


class RuntimeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.text = config_text(30, True, ("a",), True)
        self.added: dict[IPv4Network, StaticEntry] = {}  # the operator's adds, as a model
        self.kernel = ModelKernel()
        self.now = 1000.0
        self.driver = self._boot()

    def _boot(self) -> ModelDriver:
        runtime = Runtime(load_text(self.text), self.now, "model")
        driver = ModelDriver(runtime, self.kernel, self.now)
        driver.start()
        return driver

    @property
    def runtime(self) -> Runtime:
        return self.driver.runtime

    # --- DNS --------------------------------------------------------------------------------

    @rule(
        name=st.sampled_from(NAMES),
        a=st.lists(st.sampled_from(A), min_size=1, max_size=2, unique=True),
        aaaa=st.sampled_from(AAAA),
        ttl=st.sampled_from([5, 60, 600]),
        host=st.sampled_from(HOSTS),
    )
    def answer(self, name: str, a: list[IPv4Address], aaaa, ttl: int, host: Host) -> None:
        status = AaaaStatus.ANSWER if aaaa else AaaaStatus.NODATA
        obs = Observation(
            name, tuple(a), ttl, status, (aaaa,) if aaaa else (), ttl, host=host
        )  # fmt: skip
        life, _ = self.driver.handle(e.AnswerObserved(obs))
        assert life is None or life >= 0

    @precondition(lambda self: bool(self.driver.asks))
    @rule(ok=st.booleans(), data=st.data())
    def refresh_answered(self, ok: bool, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.driver.asks)))
        self.driver.asks.discard(name)
        self.driver.handle(e.RefreshDone(name, ok))
        assert name not in self.runtime.asking

    @rule()
    def pref64_discovered(self) -> None:
        self.driver.handle(e.Pref64Found(DNS, (LAB_PREF64,)))

    # --- time and flows -----------------------------------------------------------------------

    @rule(dt=st.sampled_from([0.5, 1.0, 5.0, 30.0, 400.0]), unknown_flows=st.booleans())
    def tick(self, dt: float, unknown_flows: bool) -> None:
        self.now += dt
        self.driver.now = self.now
        flows = None if unknown_flows else self.kernel.live()
        if flows is None:
            if not self.runtime.dataplane_error and self.kernel.dead:
                self.driver.handle(e.DataplaneDied(self.kernel.dead))
            self.driver.handle(e.Tick(None, ()))
        else:
            self.driver.tick()

    @precondition(lambda self: bool(self.kernel.dnat))
    @rule(data=st.data())
    def connect(self, data: st.DataObject) -> None:
        d, p = data.draw(st.sampled_from(sorted(self.kernel.dnat.items())))
        self.kernel.flows.add((d.network_address, p.network_address))

    @precondition(lambda self: bool(self.kernel.flows))
    @rule()
    def flows_end(self) -> None:
        self.kernel.flows.clear()

    # --- the kernel misbehaving ---------------------------------------------------------------

    @rule(n=st.integers(1, 3))
    def kernel_refuses_batches(self, n: int) -> None:
        self.kernel.refuse_batches = n

    @rule(n=st.integers(1, 2))
    def kernel_refuses_starts(self, n: int) -> None:
        self.kernel.refuse_starts = n

    @rule()
    def translator_dies(self) -> None:
        self.kernel.dead = "model: tayga is not running"

    # --- configuration, restarts, the operator ------------------------------------------------

    @rule(
        ttl_min=st.sampled_from([0, 30, 120]),
        enabled=st.booleans(),
        statics=st.sampled_from([(), ("a",), ("b",), ("a", "b")]),
        pref64=st.booleans(),
    )
    def reload(self, ttl_min: int, enabled: bool, statics: tuple[str, ...], pref64: bool) -> None:
        self.text = config_text(ttl_min, enabled, statics, pref64)
        self.driver.handle(e.Reconfigured(load_text(self.text)))
        assert self.runtime.cfg[schema.TTL_MIN] == ttl_min
        # the file's entries, and the operator's adds for prefixes the file does not list (a
        # reload comes with every WAN event: an add lasts until its del or a restart)
        listed = set(load_text(self.text).static)
        kept = {a for a in self.added.values() if all(a.ipv4 != s.ipv4 for s in listed)}
        assert set(self.runtime.cfg.static) == listed | kept
        self.added = {a.ipv4: a for a in kept}

    @rule()
    def crash_and_restart(self) -> None:
        """A new process over what the kernel holds (SIGKILL, OOM): adoption, reconciliation."""
        self.kernel.dead = None
        self.driver = self._boot()
        self.added.clear()  # run-time adds end with the process

    @rule(which=st.sampled_from(OPERATOR), comment=st.sampled_from(["", "tv"]))
    def operator_add(self, which: tuple[str, str], comment: str) -> None:
        entry = StaticEntry(IPv4Network(which[0]), IPv6Network(which[1]), comment)
        before = len(self.runtime.cfg.static)
        result, error = self.driver.handle(e.OperatorAdd(entry))[1]
        if error is None:
            assert len(self.runtime.cfg.static) == before + 1 and result["added"]
            self.added[entry.ipv4] = entry
        else:
            assert len(self.runtime.cfg.static) == before  # a refusal changes nothing

    @rule(ipv4=st.sampled_from([s[0] for s in STATIC.values()] + [OPERATOR[0][0]]))
    def operator_del(self, ipv4: str) -> None:
        result, error = self.driver.handle(e.OperatorDelete(IPv4Network(ipv4)))[1]
        assert (error is None) == ("deleted" in result)
        assert all(s.ipv4 != IPv4Network(ipv4) for s in self.runtime.cfg.static)
        self.added.pop(IPv4Network(ipv4), None)

    @rule()
    def operator_flush(self) -> None:
        result, error = self.driver.handle(e.OperatorFlush())[1]
        assert error is None and result["flushed"] >= 0

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def table_invariants_hold(self) -> None:
        self.runtime.engine.table.check_invariants()

    @invariant()
    def a_healthy_dataplane_holds_exactly_the_desired_state(self) -> None:
        if self.runtime.dataplane_error or self.runtime.unreconciled:
            return  # the runtime knows: a start will reconcile (the next invariant)
        want = desired_state(self.runtime.engine.table)
        assert self.kernel.dnat == dict(want.dnat)
        assert self.kernel.translator == dict(want.translator)

    @invariant()
    def a_broken_dataplane_is_repaired_at_its_time(self) -> None:
        if self.runtime.dataplane_error or self.runtime.unreconciled:
            assert self.runtime.repair_at <= self.now + 300.0  # REPAIR_MAX ahead at most

    @invariant()
    def names_are_the_ones_named_once(self) -> None:
        snap = self.runtime.snapshot(self.now)
        unknown = [name for name in snap.counters if not counters.known(name)]
        assert not unknown, unknown
        assert all(event.kind in EntryKind.__members__.values() for event in self.driver.published)

    @invariant()
    def the_snapshot_agrees_with_the_table(self) -> None:
        snap = self.runtime.snapshot(self.now, entries=True)
        assert snap.table_size == len(self.runtime.engine.table) == len(snap.entries or ())
        assert set(snap.restart_needed) <= fixed_options(snap.config)
        assert snap.summary["mappings"]["created"] >= 0


RuntimeMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_runtime_machine = RuntimeMachine.TestCase
