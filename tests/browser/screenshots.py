"""`make screenshots`: the LuCI status and settings pages rendered in headless Chromium against
the daemon on the lab's home router (tests.browser.scene; needs root), written as status.png and
settings.png to the folder given (the README shows luci-app/screenshots/status.png).  The
settings page shows a router's config file (SETTINGS below: the packaged paths, not the lab's
temporary ones), read-only (the stand-in's form does not edit).  The page around the view is
the browser test's stand-in for LuCI (tests/browser/standin/), not a LuCI theme.

It waits for a few flow-history samples (one every 30 s) so the chart has a line to draw.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.browser.bridge import Bridge
from tests.browser.chromium import screenshot
from tests.browser.scene import OVERVIEW_WIDGET, SETTINGS_VIEW, STATUS_VIEW, live_scene

# A config as a router owner would have it after setting up tayga and one static entry.
SETTINGS = """\
config globals 'globals'
\toption enabled '1'
\toption translator 'tayga'
\toption clat_ipv6 '2001:db8:ce:c1a7::66'
\tlist pref64 '2001:db8:64::/96'

config static 'nas'
\toption ipv4 '192.0.2.99'
\toption ipv6 '2001:db8:1::99'
\toption comment 'office NAS'
"""


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
        if args.all:
            url = scene.bridge.url(OVERVIEW_WIDGET)
            shots.append(screenshot(url, args.out / "overview.png", size="1280,400"))
        config = Path(workdir) / "clat-eamt"
        config.write_text(SETTINGS)
        with Bridge(str(Path(workdir) / "no-daemon.sock"), uci_file=config).serving() as bridge:
            url = bridge.url(SETTINGS_VIEW)
            shots.append(screenshot(url, args.out / "settings.png", size="1280,1000"))
    for shot in shots:
        print(f"{shot} ({shot.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
