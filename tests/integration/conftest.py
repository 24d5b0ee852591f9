"""Fixtures that start real DNS servers (tests/labkit); logs join the report of a failed test.

- `dns_chain`: knot + knot-slow + unbound DNS64 on 127.0.0.1, no namespace, no root needed;
  one per session (read-only use: do not change its state).
- `lab_ns`: an empty namespace with `lo` up (lab).
- `lab_chain`: a chain inside its own namespace, one per module (lab).
- `lab_lan`: a router namespace running a chain, a client namespace behind a veth (lab):
  what dnsmasq needs to see a client MAC.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.labkit import DnsChain, Netns
from tests.labkit.lan import Lan, lan
from tests.labkit.procs import live_groups
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS, require_root, require_tools


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report shows the tail of every server log still running."""
    report = yield
    if report.failed:
        for i, group in enumerate(live_groups()):
            if group.procs:
                report.sections.append((f"labkit server logs [{i}] ({report.when})", group.logs()))
    return report


@pytest.fixture(scope="session")
def dns_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsChain]:
    require_tools(*SERVER_TOOLS)
    with DnsChain(tmp_path_factory.mktemp("dns_chain")) as chain:
        yield chain


@pytest.fixture
def lab_ns() -> Iterator[Netns]:
    require_root()
    require_tools(*LAB_TOOLS)
    with Netns("lab") as ns:
        yield ns


@pytest.fixture(scope="module")
def lab_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsChain]:
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    with (
        Netns("chain") as ns,
        DnsChain(tmp_path_factory.mktemp("lab_chain"), netns=ns) as chain,
    ):
        yield chain


@pytest.fixture
def lab_lan(tmp_path: Path) -> Iterator[Lan]:
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS)
    with lan(tmp_path / "lan") as the_lan:
        yield the_lan
