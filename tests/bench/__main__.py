"""`make bench`: every part, each in its own process, also after one failed.

Each part's output goes through as it comes; a part that fails is named with its exit code and
its last line of error output (its cause), and the last line lists the parts that failed (exit
1 if any did), so one broken part costs only its own lines.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import deque
from typing import IO

# tests.bench.<part>, in the order they run.
PARTS = (
    "footprint",
    "dns_bench",
    "dataplane_bench",
    "scale_bench",
    "hostile_bench",
    "provider_bench",
    "safety_bench",
)


def _relay(stream: IO[str], tail: deque[str]) -> None:
    for line in stream:
        sys.stderr.write(line)
        sys.stderr.flush()
        if line.strip():
            tail.append(line.rstrip())


def run_part(part: str) -> tuple[int, str]:
    """Run one part; its exit code and the last line of its error output."""
    tail: deque[str] = deque(maxlen=1)
    argv = [sys.executable, "-m", f"tests.bench.{part}"]
    with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        relay = threading.Thread(target=_relay, args=(proc.stderr, tail))
        relay.start()
        code = proc.wait()
        relay.join()
    return code, tail[0] if tail else ""


def main(parts: list[str]) -> int:
    failed: list[str] = []
    for part in parts:
        began = time.monotonic()
        sys.stdout.flush()
        code, last = run_part(part)
        took = time.monotonic() - began
        if code == 0:
            print(f"bench: {part} done in {took:.0f} s", flush=True)
        else:
            print(f"bench: {part} FAILED (exit {code}) after {took:.0f} s: {last}", flush=True)
            failed.append(part)
    if failed:
        print(f"bench: {len(failed)} of {len(parts)} parts failed: {', '.join(failed)}")
        return 1
    print(f"bench: all {len(parts)} parts ran")
    return 0


if __name__ == "__main__":
    unknown = sorted(set(sys.argv[1:]) - set(PARTS))
    if unknown:
        sys.exit(f"bench: no such part: {', '.join(unknown)} (parts: {', '.join(PARTS)})")
    sys.exit(main(sys.argv[1:] or list(PARTS)))
