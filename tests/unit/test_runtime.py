"""The runtime's timing rules and wiring, with time as a number (issue 16): what tests once
waited for the daemon's one-second tick to see - the repair of a dead translator and its back-off,
reconciliation after a failed batch, adoption after a crash, expiry under a running flow, refresh
ahead, the flow history, reload - runs here in microseconds.  The same rules against real tayga,
nftables and conntrack: tests/integration (test_control_lab, test_dataplane_lab)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

import pytest

from clat_eamt.config import Option, StaticEntry, load_text, schema
from clat_eamt.config.types import Bool, BoundedInt, Choice
from clat_eamt.core.counters import ApplyResult, Count, applied, stale
from clat_eamt.core.dataplane import desired_state
from clat_eamt.core.hosts import Neighbour, Nud
from clat_eamt.core.model import AaaaStatus, Host, HostClass, Observation, StaleReason, State
from clat_eamt.runtime import commands as c
from clat_eamt.runtime import events as e
from clat_eamt.runtime.runtime import REPAIR_FIRST, Runtime
from clat_eamt.runtime.settings import fixed_options
from tests.unit.runtimekit import ModelDriver, ModelKernel
from tests.unit.standins import loopback_config

TV = Host("02:00:00:00:00:01", HostClass.IPV4_ONLY)
TAYGA = (
    "\toption translator 'tayga'\n\toption clat_ipv4 '192.0.0.1'\n"
    "\toption clat_ipv6 '2001:db8:ce::1'\n"
)


def booted(extra: str = "", static: str = "", now: float = 1000.0) -> ModelDriver:
    cfg = load_text(loopback_config(5353, "/nonexistent.sock", "\toption host_mode 'all'\n"
                                    + extra, static))  # fmt: skip
    driver = ModelDriver(Runtime(cfg, now, "model"), ModelKernel(), now)
    driver.start()
    return driver


def answer(driver: ModelDriver, name: str, a: str, aaaa: str, ttl: int = 300) -> float | None:
    obs = Observation(
        name, (IPv4Address(a),), ttl, AaaaStatus.ANSWER, (IPv6Address(aaaa),), ttl, host=TV
    )
    life, _ = driver.handle(e.AnswerObserved(obs))
    return life


def at(driver: ModelDriver, now: float) -> ModelDriver:
    driver.now = now
    return driver


def in_step(driver: ModelDriver) -> bool:
    want = desired_state(driver.runtime.engine.table)
    return driver.kernel.dnat == dict(want.dnat) and driver.kernel.translator == dict(
        want.translator
    )


# --- the dataplane: death, repair, back-off, reconciliation, adoption ----------------------------


def test_a_dead_translator_is_restarted_at_the_next_tick():
    driver = booted()
    assert driver.restarts == 1 and driver.runtime.dataplane_error is None
    driver.kernel.dead = "tayga is not running"
    at(driver, 1001.0).tick()
    assert driver.restarts == 2 and driver.runtime.dataplane_error is None
    assert "dataplane model: tayga is not running; restarting it" in driver.text()


def test_a_failing_start_is_retried_with_a_doubling_back_off_reset_by_success():
    driver = booted()
    driver.kernel.refuse_starts, driver.kernel.dead = 3, "tayga is not running"
    starts = []
    for second in range(1, 40):
        before = driver.restarts
        at(driver, 1000.0 + second).tick()
        if driver.restarts > before:
            starts.append(second)
    assert starts == [1, 1 + 5, 1 + 5 + 10, 1 + 5 + 10 + 20]  # REPAIR_FIRST, doubled
    assert driver.runtime.dataplane_error is None and driver.runtime.repair_delay == REPAIR_FIRST
    assert "(retry in 5 s)" in driver.text() and "(retry in 20 s)" in driver.text()
    assert driver.runtime.counters[Count.DATAPLANE_START_FAILED] == 3


def test_a_failed_batch_is_reconciled_at_the_next_tick_even_after_a_good_one():
    """Batches are diffs: one that failed leaves the kernel short until a start reconciles it."""
    driver = booted()
    driver.kernel.refuse_batches = 1
    assert answer(driver, "a.example", "192.0.2.1", "2001:db8:1::1") is not None
    assert driver.runtime.counters[applied(ApplyResult.FAILED)] == 1
    answer(driver, "b.example", "192.0.2.2", "2001:db8:1::2")
    assert driver.runtime.last_error is None and not in_step(driver)  # a good batch since
    at(driver, 1001.0).tick()
    assert in_step(driver) and not driver.runtime.unreconciled


def test_a_crashed_runs_mapping_is_adopted_stale_and_goes_when_its_flows_end():
    first = booted()
    answer(first, "a.example", "192.0.2.1", "2001:db8:1::1")
    kernel = first.kernel
    (d, p), = kernel.dnat.items()  # fmt: skip
    kernel.flows.add((d.network_address, p.network_address))
    cfg = first.runtime.cfg
    second = ModelDriver(Runtime(cfg, 2000.0, "model"), kernel, 2000.0)  # SIGKILL, respawn
    second.start()
    [entry] = list(second.runtime.engine.table)
    assert entry.state is State.STALE and entry.stale_reason is StaleReason.RESTARTED
    assert in_step(second) and d not in kernel.dnat  # new flows take the NAT64 again
    at(second, 2001.0).tick()
    assert len(second.runtime.engine.table) == 1  # its flow goes on
    kernel.flows.clear()
    at(second, 2100.0).tick()
    assert len(second.runtime.engine.table) == 0 and kernel.translator == {}


def test_an_answer_released_late_is_counted_and_said_as_a_rate_limited_kind():
    driver = booted()
    for _ in range(8):
        driver.handle(e.AnswerReleased("a.example", ApplyResult.LATE))
    driver.handle(e.AnswerReleased("a.example", ApplyResult.DONE))
    counted = driver.runtime.snapshot(driver.now).counters
    assert counted[applied(ApplyResult.LATE)] == 8 and counted[applied(ApplyResult.DONE)] == 1
    said = [s for s in driver.said if s.kind == ApplyResult.LATE]
    assert len(said) == 8 and said[0].text == "a.example released unmapped: dataplane late"
    # (the driver's RateLimitedLog writes at most 5 of one kind a minute: tests/unit/test_logs)


# --- time: expiry, refresh ahead, history --------------------------------------------------------


def test_an_answer_expires_stale_and_its_leg_lives_while_a_flow_does():
    """(A life under refresh ahead's minimum: nothing asks it again.)"""
    driver = booted("\toption stale_linger '0'\n\toption ttl_min '0'\n")
    life = answer(driver, "a.example", "192.0.2.1", "2001:db8:1::1", ttl=5)
    assert life == 5
    (d, p), = driver.kernel.dnat.items()  # fmt: skip
    driver.kernel.flows.add((d.network_address, p.network_address))
    at(driver, 1006.0).tick()
    [entry] = list(driver.runtime.engine.table)
    assert entry.state is State.STALE and driver.kernel.dnat == {}  # new flows: NAT64
    assert driver.kernel.translator  # the running flow keeps its IPv6 leg
    driver.kernel.flows.clear()
    at(driver, 1007.0).tick()
    counters = driver.runtime.snapshot(driver.now).counters
    assert driver.kernel.translator == {} and counters[stale(StaleReason.EXPIRED)] == 1
    assert [ev.kind for ev in driver.published] == ["added", "stale", "removed"]


def test_a_used_name_is_asked_again_ahead_of_its_end_and_held_until_answered():
    driver = booted()
    answer(driver, "a.example", "192.0.2.1", "2001:db8:1::1", ttl=60)
    (d, p), = driver.kernel.dnat.items()  # fmt: skip
    driver.kernel.flows.add((d.network_address, p.network_address))
    at(driver, 1040.0).tick()
    assert driver.asks == set()  # not due yet
    at(driver, 1051.0).tick()
    assert driver.asks == {"a.example"} and driver.runtime.counters[Count.REFRESH_AHEAD] == 1
    at(driver, 1061.0).tick()  # past its end, being asked: still Valid
    assert next(iter(driver.runtime.engine.table)).state is State.VALID
    driver.handle(e.RefreshDone("a.example", False))
    assert driver.runtime.counters[Count.REFRESH_FAILED] == 1 and not driver.runtime.asking


def test_the_flow_history_is_sampled_at_the_first_tick_then_every_interval():
    driver = booted()
    driver.kernel.flows.add((IPv4Address("192.0.2.9"), IPv4Address("198.51.100.129")))
    for second in range(1, 62):
        at(driver, 1000.0 + second).tick()
    points = driver.runtime.history.json()["points"]
    assert [p["time"] for p in points] == [1001, 1031, 1061]  # stamped with the wall time given
    assert points[0]["native"] == 1


def test_unreadable_neighbour_tables_make_every_host_unknown_and_say_so():
    driver = booted()
    mac, v4 = "00:00:5e:00:53:0a", IPv4Address("192.0.2.10")
    seen = (Neighbour(v4, mac, Nud.REACHABLE),)
    driver.tick(neighbours=seen)
    at(driver, 1100.0).tick(neighbours=seen)
    assert driver.runtime.classify(mac, None) == Host(mac, HostClass.IPV4_ONLY)
    assert driver.hosts == c.SetHosts(frozenset(), frozenset({v4}))
    driver.handle(e.Tick(driver.kernel.live(), None, "PermissionError: netlink"))
    assert driver.runtime.classify(mac, None) == Host(mac, HostClass.UNKNOWN)
    assert driver.hosts == c.SetHosts(frozenset(), frozenset())
    assert "neighbour tables unreadable: PermissionError: netlink" in driver.text()


# --- the operator, DNS hooking -------------------------------------------------------------------


def test_operator_actions_reply_with_the_dataplane_result_or_a_refusal():
    driver = booted()
    entry = StaticEntry(IPv4Network("192.0.2.20/32"), IPv6Network("2001:db8:1::20/128"), "tv")
    result, error = driver.handle(e.OperatorAdd(entry))[1]
    assert error is None and result["dataplane"] == "done" and result["added"][0]["comment"] == "tv"
    assert driver.handle(e.OperatorAdd(entry))[1][1]  # the same again: refused, says why
    _, error = driver.handle(e.OperatorDelete(IPv4Network("192.0.2.99/32")))[1]
    assert error == "no static entry for 192.0.2.99/32 (static entries: 192.0.2.20/32)"
    result, error = driver.handle(e.OperatorFlush())[1]
    assert (result, error) == ({"flushed": 0, "dataplane": "none"}, None)


def test_a_reload_keeps_the_operators_adds_until_their_del():
    """procd reloads the service on every event of a WAN interface: an `add` made at run time
    must outlive them (it ends with its `del` or a restart); the file's own entries follow the
    file, and a file that now lists the add's prefix takes it over."""
    static = "config static 'cdn'\n\toption ipv4 '192.0.2.30'\n\toption ipv6 '2001:db8:1::30'\n"
    driver = booted(static=static)
    tv = StaticEntry(IPv4Network("192.0.2.20/32"), IPv6Network("2001:db8:1::20/128"), "tv")
    assert driver.handle(e.OperatorAdd(tv))[1][1] is None

    def reload(static: str) -> set[str]:
        cfg = load_text(loopback_config(5353, "/nonexistent.sock", "", static))
        driver.handle(e.Reconfigured(cfg))
        table = driver.runtime.engine.table
        return {str(m.ipv4) for m in table if m.state is State.VALID}

    assert reload(static) == {"192.0.2.20/32", "192.0.2.30/32"}  # a WAN event: both stay
    assert reload("") == {"192.0.2.20/32"}  # the file's entry went from the file
    assert in_step(driver)
    taken = static.replace("30", "20").replace("cdn", "tv")  # the file lists the add's prefix
    assert reload(taken) == {"192.0.2.20/32"} and driver.runtime.added == ()
    assert reload("") == set()  # now the file's: it goes with the file
    assert driver.handle(e.OperatorAdd(tv))[1][1] is None
    assert driver.handle(e.OperatorDelete(tv.ipv4))[1][1] is None
    assert reload("") == set()  # deleted: the reload does not bring it back
    assert in_step(driver)


def test_listening_hooks_dns_with_the_running_address_and_identity():
    driver = booted("\toption client_identity '1'\n")
    driver.handle(e.Listening(5999))
    assert driver.hooked == [c.RehookDns("127.0.0.1", 5999, True)]


# --- reload: what each component can change live -------------------------------------------------


def test_pref64_changes_live_with_an_external_clat_and_waits_for_a_restart_with_tayga():
    """The defect of issue 16: tayga is started with the Pref64 in its configuration file, so a
    reload that changed the engine's Pref64 had the engine map with a prefix tayga did not use,
    and restart_needed did not say so.  (Fails on the old ``plan_reload``.)"""
    new_prefix = "2001:db8:65::/96"
    for extra, live in (("", True), (TAYGA, False)):
        driver = booted(extra)
        text = loopback_config(5353, "/nonexistent.sock", "\toption host_mode 'all'\n" + extra)
        new = load_text(text.replace("2001:db8:64::/96", new_prefix))
        driver.handle(e.Reconfigured(new))
        pref64 = [str(p) for p in driver.runtime.engine.policy.pref64.extra]
        assert pref64 == ([new_prefix] if live else ["2001:db8:64::/96"])
        assert driver.runtime.restart_needed == (() if live else ("pref64",))


def alternative(option: Option[Any], cfg_value: Any) -> str:
    """Another valid UCI word for ``option`` than its running value, from the schema alone.  A new
    option of a type not handled here fails the test below until it gets a case."""
    kind = option.type
    if option.is_list:  # its example, or no value when the example is what runs
        assert option.example, f"{option.name}: give the list option an example in the schema"
        return "" if [str(v) for v in cfg_value] == [option.example] else option.example
    if isinstance(kind, Bool):
        return "0" if cfg_value else "1"
    if isinstance(kind, BoundedInt):
        return str(cfg_value + 1 if cfg_value < kind.maximum else cfg_value - 1)
    if isinstance(kind, Choice):
        return next(choice for choice in kind.choices if choice != cfg_value)
    if option is schema.RESOLV_FILE:
        return "/tmp/resolv.conf.other"
    if option is schema.PROVIDER_URL:
        return "https://isp.example/clat-eamt.table"
    if option is schema.PROVIDER_KEY:
        return "RWRjZjh3Z1lYN2JuTn+C4bMuTtEZF7tl9yDK8Wr3+6nNSHrYSNS1DYgB"
    if option is schema.PROVIDER_CA:
        return "/etc/ssl/isp-ca.pem"
    raise AssertionError(f"{option.name}: no alternative value for {type(kind).__name__}")


@pytest.mark.parametrize(
    "option", [o for o in schema.GLOBAL_OPTIONS if not o.restart], ids=lambda o: o.name
)
def test_every_live_option_reaches_the_component_that_uses_it(option: Option[Any]):
    """Driven by the schema: each option a reload can change is changed alone, and some
    component's view of the configuration changes with it (the engine's policy or limiter, the
    host memory, the static entries, discovery, the shells' settings)."""
    private_pool = "\toption pool '100.127.0.0/24'\n"  # allow_documentation may go off
    driver = booted(private_pool)
    base = loopback_config(5353, "/nonexistent.sock", "\toption host_mode 'all'\n" + private_pool)
    base = base.replace("\toption pool '198.51.100.128/25'\n", "")
    running = driver.runtime.cfg[option]
    word = alternative(option, running)
    keyword = "list" if option.is_list else "option"
    lines = [
        line for line in base.splitlines()
        if not line.startswith((f"\toption {option.name} ", f"\tlist {option.name} "))
    ]  # fmt: skip
    if word:
        lines.insert(1, f"\t{keyword} {option.name} '{word}'")  # after "config globals"
    text = "\n".join(lines) + "\n"
    new = load_text(text)
    assert new[option] != running, f"{option.name}: the alternative is the running value"
    before = driver.runtime.component_view()
    driver.handle(e.Reconfigured(new))
    after = driver.runtime.component_view()
    assert driver.runtime.cfg[option] == new[option] and option.name not in (
        driver.runtime.restart_needed
    )
    assert option.name not in fixed_options(driver.runtime.cfg)
    changed = [name for name in before if before[name] != after[name]]
    assert changed, f"{option.name} reached no component"
    assert driver.settings[-1].settings == after["shells"]  # the shells were told


def test_the_live_flows_are_read_only_when_a_tick_needs_them():
    # A conntrack dump walks the kernel's whole table: a tick reads the live flows only to
    # delete Stale entries and to tell whether a mapping near its end is in use.
    driver = booted("\toption stale_linger '0'\n")
    start = driver.kernel.dumps  # the start reads them (adoption)
    at(driver, 1001.0).tick()
    assert driver.kernel.dumps - start == 0  # nothing mapped
    answer(driver, "a.example", "192.0.2.1", "2001:db8:1::1", ttl=60)  # ends at 1060
    at(driver, 1040.0).tick()
    assert driver.kernel.dumps - start == 0  # Valid, far from its end
    at(driver, 1049.0).tick()
    assert driver.kernel.dumps - start == 1  # near its end: is it in use? (refresh ahead)
    at(driver, 1070.0).tick()  # expired, now Stale (nobody used it: not asked again)
    [entry] = list(driver.runtime.engine.table)
    assert entry.state is State.STALE and driver.kernel.dumps - start == 2
    at(driver, 1071.0).tick()  # Stale: its flows are read, none, so it goes
    assert not list(driver.runtime.engine.table) and driver.kernel.dumps - start == 3
    at(driver, 1072.0).tick()
    assert driver.kernel.dumps - start == 3
