"""`make screenshots`: the LuCI status and settings pages rendered in headless Chromium against
the daemon on the lab's home router (tests.browser.scene; needs root), written as status.png and
settings.png to the folder given (the README shows luci-app/screenshots/status.png).  The
settings page shows the config file the lab's daemon runs with, read-only (the stand-in's form
does not edit).  The page around the view is the
browser test's stand-in for LuCI (tests/browser/standin/), not a LuCI theme.

It waits for a few flow-history samples (one every 30 s) so the chart has a line to draw.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.browser.chromium import screenshot
from tests.browser.scene import OVERVIEW_WIDGET, SETTINGS_VIEW, STATUS_VIEW, live_scene


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for status.png, settings.png")
    parser.add_argument("--samples", type=int, default=3, help="flow-history samples to wait for")
    parser.add_argument("--all", action="store_true", help="also overview.png (the widget)")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="clat-eamt-shots-") as workdir,
        live_scene(Path(workdir), samples=args.samples) as scene,
    ):
        url = scene.bridge.url(STATUS_VIEW)
        shots = [screenshot(url, args.out / "status.png", size="1280,1300")]
        url = scene.bridge.url(SETTINGS_VIEW)
        shots.append(screenshot(url, args.out / "settings.png", size="1280,1000"))
        if args.all:
            url = scene.bridge.url(OVERVIEW_WIDGET)
            shots.append(screenshot(url, args.out / "overview.png", size="1280,400"))
    for shot in shots:
        print(f"{shot} ({shot.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
