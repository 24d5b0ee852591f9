"""IPv6-only names through the runtime and a model of the kernel (issue 27): the option reaches
the engine from the config (and a reload), the A the proxy gets, the IPv6 leg only."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from clat_eamt.config import load_text
from clat_eamt.core.ipv6only import SyntheticA
from clat_eamt.core.model import AaaaStatus, Observation, Origin
from clat_eamt.runtime import events as e
from clat_eamt.runtime.runtime import Runtime
from tests.unit.runtimekit import ModelDriver, ModelKernel
from tests.unit.standins import loopback_config
from tests.unit.test_runtime import TV

ON = "\toption ipv6_only '1'\n\tlist ipv6_only_placeholder '192.0.2.99'\n"
ON += "\toption ipv6_only_quarantine '120'\n"


def booted(extra: str = "") -> ModelDriver:
    text = loopback_config(5353, "/nonexistent.sock", "\toption host_mode 'all'\n" + extra, "")
    driver = ModelDriver(Runtime(load_text(text), 1000.0, "model"), ModelKernel(), 1000.0)
    driver.start()
    return driver


def v6only(name: str, aaaa: str, a: tuple[str, ...] = ()) -> Observation:
    return Observation(
        name, tuple(IPv4Address(x) for x in a), 300, AaaaStatus.ANSWER, (IPv6Address(aaaa),),
        300, host=TV,
    )  # fmt: skip


def test_off_by_default_nothing_is_mapped_and_the_answer_is_untouched() -> None:
    driver = booted()
    life, _ = driver.handle(e.AnswerObserved(v6only("v6.example", "2001:db8:6::1")))
    assert life is None and len(driver.runtime.engine.table) == 0
    assert driver.kernel.translator == {} and driver.kernel.dnat == {}


def test_on_the_proxy_gets_p_and_the_kernel_holds_only_the_ipv6_leg() -> None:
    driver = booted(ON)
    life, _ = driver.handle(e.AnswerObserved(v6only("v6.example", "2001:db8:6::1")))
    assert isinstance(life, SyntheticA) and life.ttl == 300
    p = IPv4Network(life.address)
    assert driver.kernel.translator == {p: IPv6Network("2001:db8:6::1")}
    assert driver.kernel.dnat == {}  # no IPv4 destination D to DNAT
    (entry,) = driver.runtime.engine.table
    assert entry.origin is Origin.IPV6_ONLY


def test_two_names_on_one_placeholder_get_their_own_p() -> None:
    driver = booted(ON)
    one, _ = driver.handle(
        e.AnswerObserved(v6only("one.example", "2001:db8:6::1", ("192.0.2.99",)))
    )
    two, _ = driver.handle(
        e.AnswerObserved(v6only("two.example", "2001:db8:6::2", ("192.0.2.99",)))
    )
    assert isinstance(one, SyntheticA) and isinstance(two, SyntheticA)
    assert one.address != two.address
    assert set(driver.kernel.translator.values()) == {
        IPv6Network("2001:db8:6::1"), IPv6Network("2001:db8:6::2"),
    }  # fmt: skip
    assert driver.kernel.dnat == {}  # the placeholder is nobody's destination


def test_a_reload_switches_it() -> None:
    driver = booted()
    text = loopback_config(5353, "/nonexistent.sock", "\toption host_mode 'all'\n" + ON, "")
    driver.handle(e.Reconfigured(load_text(text)))
    assert driver.runtime.engine.ipv6_only.enabled
    assert driver.runtime.engine.ipv6_only.quarantine == 120
    life, _ = driver.handle(e.AnswerObserved(v6only("v6.example", "2001:db8:6::1")))
    assert isinstance(life, SyntheticA)
