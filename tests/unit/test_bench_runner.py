"""`make bench` (tests/bench/__main__.py): every part runs after one failed, a failed part is
named with its cause, and the last line lists the failed parts with a non-zero exit."""

from __future__ import annotations

import pytest

from tests.bench import __main__ as bench


def test_a_failed_part_shows_its_cause_and_the_rest_still_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = bench.main(["no_such_part", "another_missing_part"])
    out = capsys.readouterr()
    assert code == 1
    lines = out.out.splitlines()
    assert lines[0].startswith("bench: no_such_part FAILED (exit 1) after ")
    assert lines[0].endswith(": No module named tests.bench.no_such_part")
    assert lines[1].startswith("bench: another_missing_part FAILED (exit 1)")
    assert lines[-1] == "bench: 2 of 2 parts failed: no_such_part, another_missing_part"
    assert "No module named tests.bench.another_missing_part" in out.err  # relayed as it came


def test_every_part_is_a_bench_module() -> None:
    import importlib.util  # noqa: PLC0415

    for part in bench.PARTS:
        assert importlib.util.find_spec(f"tests.bench.{part}") is not None, part
