"""SPEC section 5: the dataplane is applied as diffs in a safe order, never flushed."""

from clat_eamt.core.dataplane import DataplaneState, desired_state, diff
from clat_eamt.core.model import (
    EnsureDnat,
    EnsureTranslator,
    LiveFlows,
    RemoveDnat,
    RemoveTranslator,
)

from .corekit import engine, obs, v4, v6

P1, P2 = v4("198.51.100.1/32"), v4("198.51.100.2/32")
D1, D2 = v4("192.0.2.1/32"), v4("192.0.2.2/32")
X1, X2 = v6("2001:db8:1::1/128"), v6("2001:db8:1::2/128")


def test_no_change_no_operation():
    state = DataplaneState({D1: P1}, {P1: X1})
    assert diff(state, state) == ()


def test_translator_is_ensured_before_the_dnat_that_points_at_it():
    ops = diff(DataplaneState(), DataplaneState({D1: P1}, {P1: X1}))
    assert ops == (EnsureTranslator(P1, X1), EnsureDnat(D1, P1))


def test_dnat_is_removed_before_the_translator_entry_it_used():
    ops = diff(DataplaneState({D1: P1}, {P1: X1}), DataplaneState())
    assert ops == (RemoveDnat(D1), RemoveTranslator(P1, X1))


def test_retargeted_dnat_is_one_ensure():
    before = DataplaneState({D1: P1}, {P1: X1, P2: X2})
    after = DataplaneState({D1: P2}, {P1: X1, P2: X2})
    assert diff(before, after) == (EnsureDnat(D1, P2),)


def test_reused_pool_block_is_replaced_remove_first():
    ops = diff(DataplaneState({}, {P1: X1}), DataplaneState({D2: P1}, {P1: X2}))
    assert ops == (RemoveTranslator(P1, X1), EnsureTranslator(P1, X2), EnsureDnat(D2, P1))


def test_desired_state_follows_the_table():
    eng = engine()
    eng.observe(obs("a.example", "192.0.2.1", "2001:db8:1::1", ttl=60), 0)
    eng.observe(obs("b.example", "192.0.2.2", "2001:db8:1::2", ttl=600), 0)
    eng.tick(61, live=None)
    state = desired_state(eng.table)
    assert set(state.dnat) == {D2}  # the stale entry has no DNAT element
    assert set(state.translator.values()) == {X1, X2}  # but keeps its translator entry


def test_incremental_operations_add_up_to_the_desired_state():
    """Replaying every outcome's ops from empty gives exactly desired_state (no drift)."""
    eng = engine(stale_linger=0)
    dnat, translator = {}, {}

    def apply(ops):
        for op in ops:
            match op:
                case EnsureTranslator(p, x):
                    translator[p] = x
                case RemoveTranslator(p, _):
                    del translator[p]
                case EnsureDnat(d, p):
                    assert p in translator
                    dnat[d] = p
                case RemoveDnat(d):
                    del dnat[d]

    steps = [
        lambda: eng.observe(
            obs("a.example", ["192.0.2.1", "192.0.2.2"], "2001:db8:1::1", ttl=60), 0
        ),
        lambda: eng.observe(obs("b.example", "192.0.2.3", "2001:db8:1::2", ttl=120), 1),
        lambda: eng.observe(obs("c.example", "192.0.2.3", "2001:db8:1::3"), 2),
        lambda: eng.tick(61, None),
        lambda: eng.tick(62, LiveFlows()),
        lambda: eng.observe(obs("d.example", "192.0.2.9", "2001:db8:1::9"), 63),
    ]
    for step in steps:
        apply(step().ops)
        want = desired_state(eng.table)
        assert dnat == dict(want.dnat) and translator == dict(want.translator)


def test_a_block_that_changes_target_loses_its_dnat_elements_first():
    """Found by tests/unit/test_runtime_machine: a start reconciling with what a crashed run
    left can find a pool block the table now gives another target, with an element still on
    it.  The element comes off before the block's IPv6 leg changes, and back after."""
    d1, d2, p = v4("192.0.2.1/32"), v4("192.0.2.2/32"), v4("198.51.100.1/32")
    x1, x2 = v6("2001:db8:1::1/128"), v6("2001:db8:1::2/128")
    for after_dnat in ({d1: p}, {d2: p}):
        ops = diff(DataplaneState({d1: p}, {p: x1}), DataplaneState(after_dnat, {p: x2}))
        (ipv4,) = after_dnat
        assert ops == (
            RemoveDnat(d1), RemoveTranslator(p, x1), EnsureTranslator(p, x2), EnsureDnat(ipv4, p)
        )  # fmt: skip
