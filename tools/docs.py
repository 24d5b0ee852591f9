"""`make docs`: rewrite the files derived from the config schema in this checkout.

README.md's options table, the default files/etc/config/clat-eamt and the LuCI form's
schema.js (``clat_eamt.config.render`` builds each of them).  A development tool: it is not
installed, so no command on a router can rewrite a checkout's files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from clat_eamt.config import render

ROOT = Path(__file__).resolve().parent.parent


def write(root: Path = ROOT) -> list[Path]:
    readme = root / "README.md"
    uci = root / "files" / "etc" / "config" / "clat-eamt"
    luci = root / render.LUCI_SCHEMA_JS
    readme.write_text(render.readme_with_options(readme.read_text()))
    uci.write_text(render.uci_defaults())
    luci.parent.mkdir(parents=True, exist_ok=True)
    luci.write_text(render.luci_schema_js())
    return [readme, uci, luci]


def main() -> int:
    written = write()
    print("wrote " + ", ".join(str(p.relative_to(ROOT)) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
