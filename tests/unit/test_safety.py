"""The safety net's pure core (issue 25): verdicts, rescue deadlines, the brake."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from clat_eamt.control.views import safety_text
from clat_eamt.core.addresses import AddressPolicy
from clat_eamt.core.counters import Count
from clat_eamt.core.decide import HostMode, Policy
from clat_eamt.core.engine import Engine
from clat_eamt.core.limits import CreationLimiter
from clat_eamt.core.model import AaaaStatus, Observation, Origin, Reason, StaleReason, State
from clat_eamt.core.pool import Pool
from clat_eamt.core.safety import BrakeState, Safety, SafetyPolicy, Verdict, covering

X = IPv6Address("2001:db8:1::10")
X_SAME_64 = IPv6Address("2001:db8:1::20")
X_OTHER_64 = IPv6Address("2001:db8:2::10")
POLICY = SafetyPolicy(window=0.7, backoff=10, backoff_max=100, brake_failures=3, brake_window=30)


def test_no_reply_within_the_window_rescues_every_flow_to_the_target():
    s = Safety(POLICY)
    s.steered("v4", X, 0.0)
    s.steered("v6", X, 0.01)
    s.steered("other", X_OTHER_64, 0.5)
    assert s.next_deadline() == 0.7
    assert s.due(0.69) == ([], [])
    rescues, brake = s.due(0.7)
    assert [(r.target, set(r.flows), r.newly_broken) for r in rescues] == [(X, {"v4", "v6"}, True)]
    assert brake == []
    assert s.broken(X, 0.7) and s.broken(X_SAME_64, 0.7)  # the /64 shares it
    assert not s.broken(X_OTHER_64, 0.7)
    assert s.next_deadline() == 1.2  # the other flow's window
    assert s.counters[Count.SAFETY_RESCUED] == 1


def test_a_reply_makes_the_target_working_and_ends_its_window():
    s = Safety(POLICY)
    s.steered("f", X, 0.0)
    s.replied("f", X, 0.05)
    assert s.due(5.0) == ([], [])
    assert s.verdict(X, 5.0) == (Verdict.WORKING, 4.95)
    assert s.verdict(X_SAME_64, 5.0)[0] is Verdict.WORKING  # learnt for its /64 too


def test_a_target_s_own_working_verdict_wins_over_its_broken_64():
    s = Safety(POLICY)
    s.steered("ok", X_SAME_64, 0.0)
    s.replied("ok", X_SAME_64, 0.01)
    s.steered("bad", X, 1.0)
    s.due(2.0)
    assert s.broken(X, 2.0) and s.broken(IPv6Address("2001:db8:1::99"), 2.0)
    assert not s.broken(X_SAME_64, 2.0)


def test_a_broken_verdict_expires_with_exponential_back_off():
    s = Safety(POLICY)
    t = 0.0
    for life in (10, 20, 40, 80, 100, 100):  # doubled, capped at backoff_max
        s.steered(("f", t), X, t)
        s.due(t + 0.7)
        broke = t + 0.7
        assert s.broken(X, broke + life - 0.01)
        assert not s.broken(X, broke + life)
        t = broke + life  # tried again by a real connection at once
    assert s.counters[Count.VERDICT_RETRIED] == 5
    s.steered("good", X, t)
    s.replied("good", X, t + 0.01)
    s.steered("bad", X, t + 1)
    s.due(t + 1.7)
    assert not s.broken(X, t + 1.7 + 10)  # a success reset the exponent


def test_the_brake_engages_on_distinct_targets_and_resumes_on_trial():
    s = Safety(POLICY)
    targets = [IPv6Address(f"2001:db8:{i}::1") for i in range(1, 4)]
    changes = []
    for i, target in enumerate(targets):
        s.steered(i, target, float(i))
        changes += s.due(i + 0.7)[1]
    assert [c.state for c in changes] == [BrakeState.ENGAGED]
    assert not s.steering and s.next_deadline() == 2.7 + 10
    assert s.due(12.6)[1] == []
    [trial] = s.due(12.7)[1]
    assert trial.state is BrakeState.TRIAL and s.steering
    s.steered("t", IPv6Address("2001:db8:9::1"), 13.0)  # a trial flow fails: at once again
    [again] = s.due(13.7)[1]
    assert again.state is BrakeState.ENGAGED and s.brake_until == 13.7 + 20  # doubled
    [trial] = s.due(33.7)[1]
    s.steered("u", IPv6Address("2001:db8:a::1"), 34.0)
    released = s.replied("u", IPv6Address("2001:db8:a::1"), 34.02)
    assert released is not None and released.state is BrakeState.RELEASED
    assert s.counters[Count.BRAKE_ENGAGED] == 2 and s.counters[Count.BRAKE_RELEASED] == 1


def test_one_target_failing_again_and_again_does_not_brake():
    s = Safety(POLICY)
    for i in range(5):
        s.steered(i, X, i * 20.0)
        assert s.due(i * 20.0 + 0.7)[1] == []
    assert s.brake is BrakeState.RELEASED


def test_the_brake_can_be_switched_off():
    s = Safety(SafetyPolicy(brake_failures=0))
    for i in range(10):
        s.steered(i, IPv6Address(f"2001:db8:{i + 1}::1"), 0.0)
    assert s.due(1.0)[1] == []


def test_watched_flows_are_bounded(monkeypatch):
    monkeypatch.setattr("clat_eamt.core.safety.MAX_PENDING", 3)
    s = Safety(POLICY)
    for i in range(5):
        s.steered(i, X, 0.0)
    assert s.counters[Count.SAFETY_UNWATCHED] == 2
    [rescue] = s.due(1.0)[0]
    assert len(rescue.flows) == 3


def test_covering_is_the_64():
    assert covering(IPv6Address("2001:db8:1:2:3:4:5:6")) == IPv6Network("2001:db8:1:2::/64")


# --- the engine: broken targets are not mapped, their mappings go Stale ----------------------


def _engine(safety: Safety) -> Engine:
    policy = Policy(
        addresses=AddressPolicy(allow_documentation=True), ttl_min=0, host_mode=HostMode.ALL
    )
    limiter = CreationLimiter(1000, 1000, 1000, 1000)
    engine = Engine(policy, Pool(IPv4Network("100.127.0.0/24")), limiter)
    engine.broken = safety.broken
    return engine


def _answer(name: str, a: str, aaaa: str) -> Observation:
    return Observation(name, (IPv4Address(a),), 60, AaaaStatus.ANSWER, (IPv6Address(aaaa),), 60)


def test_a_broken_target_goes_stale_at_once_is_not_mapped_and_comes_back_after_back_off():
    safety = Safety(POLICY)
    engine = _engine(safety)
    engine.observe(_answer("a.example", "192.0.2.1", str(X)), 0.0)
    engine.observe(_answer("b.example", "192.0.2.2", str(X_SAME_64)), 0.0)
    engine.observe(_answer("c.example", "192.0.2.3", str(X_OTHER_64)), 0.0)
    engine.add_static(IPv4Network("192.0.2.4/32"), IPv6Network("2001:db8:1::40/128"), 0.0)
    safety.steered("f", X, 1.0)
    safety.due(1.7)
    outcome = engine.stale_broken(1.7)
    stale = {name for e in outcome.events for name in e.entry.fqdns}
    assert stale == {"a.example", "b.example"}  # its /64's mappings too
    states = {e.ipv4.network_address: (e.state, e.stale_reason) for e in engine.table}
    assert states[IPv4Address("192.0.2.1")] == (State.STALE, StaleReason.BROKEN)
    assert states[IPv4Address("192.0.2.3")][0] is State.VALID
    assert states[IPv4Address("192.0.2.4")][0] is State.VALID  # static: the operator's
    again = engine.observe(_answer("a.example", "192.0.2.1", str(X)), 2.0)
    assert [r.reason for r in again.refusals] == [Reason.TARGET_BROKEN]
    assert again.ops == ()
    later = engine.observe(_answer("a.example", "192.0.2.1", str(X)), 1.7 + 10)
    assert later.ops and {e.kind for e in later.events} == {"revived"}
    assert engine.table.get((IPv4Network("192.0.2.1/32"), IPv6Network(f"{X}/128"))).origin is (
        Origin.DNS
    )


def test_a_refusal_for_a_broken_target_is_not_remembered():
    safety = Safety(POLICY)
    engine = _engine(safety)
    safety.steered("f", X, 0.0)
    safety.due(0.7)
    for t in (1.0, 2.0):  # repeated answers while broken: refused each time
        refused = engine.observe(_answer("a.example", "192.0.2.1", str(X)), t)
        assert [r.reason for r in refused.refusals] == [Reason.TARGET_BROKEN]
    assert engine.observe(_answer("a.example", "192.0.2.1", str(X)), 11.0).ops


# --- the state machine ---------------------------------------------------------------------------

TARGETS = [X, X_SAME_64, X_OTHER_64, IPv6Address("2001:db8:3::1"), IPv6Address("2001:db8:4::1")]


class SafetyMachine(RuleBasedStateMachine):
    """Random flows, replies, ends and time against a model of the rules."""

    def __init__(self) -> None:
        super().__init__()
        self.s = Safety(POLICY)
        self.now = 0.0
        self.n = 0
        self.open: dict[int, tuple[IPv6Address, float]] = {}  # flow -> (target, deadline)

    @rule(to=st.sampled_from(TARGETS))
    def steer(self, to: IPv6Address) -> None:
        self.n += 1
        self.s.steered(self.n, to, self.now)
        self.open[self.n] = (to, self.now + POLICY.window)

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def reply(self, data: st.DataObject) -> None:
        flow = data.draw(st.sampled_from(sorted(self.open)))
        target, _ = self.open.pop(flow)
        self.s.replied(flow, target, self.now)
        assert self.s.verdict(target, self.now)[0] is Verdict.WORKING

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def end(self, data: st.DataObject) -> None:
        flow = data.draw(st.sampled_from(sorted(self.open)))
        self.open.pop(flow)
        self.s.ended(flow)

    @rule(step=st.floats(0.0, 15.0))
    def wait(self, step: float) -> None:
        self.now += step
        engaged_before = self.s.brake is BrakeState.ENGAGED
        rescues, _ = self.s.due(self.now)
        late = {t for t, deadline in self.open.values() if deadline <= self.now}
        rescued = {r.target for r in rescues}
        assert rescued == late  # exactly the targets with a flow past its window
        for r in rescues:
            for flow in r.flows:
                assert self.open.pop(flow)[0] == r.target  # every flow to it goes with it
            assert self.s.broken(r.target, self.now)
        if engaged_before and self.now < self.s.brake_until:
            assert self.s.brake is BrakeState.ENGAGED

    @invariant()
    def deadlines(self) -> None:
        pending = [d for _, d in self.open.values()]
        when = self.s.next_deadline()
        if pending:
            assert when is not None and when <= min(pending)
        assert self.s.steering == (self.s.brake is not BrakeState.ENGAGED)

    @invariant()
    def verdicts_bounded_by_back_off(self) -> None:
        for record in self.s.records.values():
            if record.verdict is Verdict.BROKEN:
                assert 0 < record.until - record.since <= POLICY.backoff_max + 1e-9


TestSafetyMachine = SafetyMachine.TestCase
TestSafetyMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def test_status_shows_the_brake_and_the_broken_verdicts_with_their_age():
    s = Safety(POLICY)
    s.steered("ok", X_OTHER_64, 0.0)
    s.replied("ok", X_OTHER_64, 0.1)
    s.steered("bad", X, 1.0)
    s.due(1.7)
    view = s.view(4.7)
    assert view["brake"] == {"state": "released", "since_s": 4.7}
    by_target = {v["target"]: v for v in view["verdicts"]}  # type: ignore[union-attr]
    assert by_target[str(X)] == {
        "target": str(X), "verdict": "broken", "age_s": 3.0, "retry_in_s": 7.0
    }  # fmt: skip
    assert by_target["2001:db8:1::/64"]["verdict"] == "broken"
    assert by_target[str(X_OTHER_64)] == {
        "target": str(X_OTHER_64), "verdict": "working", "age_s": 4.6
    }  # fmt: skip
    text = safety_text({"enabled": True, **view}, {"rescued": 1})
    assert text.startswith("brake released; rescued 1 ")
    assert "; broken now: 2001:db8:1::/64 (for 3.0 s, retry in 7.0 s), " in text
    assert f"{X} (for 3.0 s, retry in 7.0 s)" in text
    assert str(X_OTHER_64) not in text  # working ones are counted, not listed
    assert s.view(11.7)["verdicts"][0]["verdict"] != "broken"  # type: ignore[index]
