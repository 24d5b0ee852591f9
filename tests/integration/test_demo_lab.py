"""`make demo` in small: the same code path (tests/demo/run.py `demo`) with fewer names and
clients; its report's last line must parse and meet the demo's requirements, and nothing of the
lab may remain afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.demo.plan import Plan
from tests.demo.report import parse_last_line
from tests.demo.run import demo
from tests.labkit.netns import list_lab_namespaces
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS, require_root, require_tools
from tests.labkit.xlat import XLAT_TOOLS


@pytest.mark.lab
def test_a_reduced_demo_goes_native_where_it_should_and_leaves_nothing(tmp_path: Path) -> None:
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS, *XLAT_TOOLS)
    lines, ok = demo(tmp_path / "demo", Plan(clients=3, every=4, visits=1, threads=6))
    report = "\n".join(lines)
    numbers = parse_last_line(lines[-1])
    assert ok, report
    assert numbers["failed"] == 0, report
    assert numbers["v4only_ok"] == numbers["v4only"] > 0, report
    # The planned exceptions (pinned flow, conflict, reuse after expiry) take the NAT64, every
    # other eligible flow goes native.
    assert 0 < numbers["native"] < numbers["eligible"], report
    assert "UNEXPECTED" not in report and "STEERED" not in report
    # ipv6_only on: every client reached each IPv6-only name's own server natively (part 6)
    [part6] = [line for line in lines if line.startswith("-- 6. IPv6-only names")]
    assert (
        "own server 9/9;" in part6
        and "over IPv6 3/3, to the pool address (native too) 3/3" in part6
    )
    assert "NOT OK" not in report
    mine = f"clatlab-{os.getpid()}-"
    assert not [n for n in list_lab_namespaces() if n.startswith(mine)]
