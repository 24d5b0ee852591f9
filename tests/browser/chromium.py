"""Headless Chromium (Debian's `chromium`, installed by `make test`): a page's DOM after its
scripts ran, and screenshots.

Virtual time lets the page's timers (the view's 5 s poll) run without waiting in real time.  The
flags keep Chromium off the network (the test machine has none): no QUIC, no background
connections, component updates or sync, and a throw-away profile.  --no-sandbox because tests
run as root, where Chromium's sandbox refuses to start.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from tests.labkit.require import skip_or_fail

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium() -> str:
    """The binary, or a skip (a failure in CI) saying how to get it."""
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        skip_or_fail("chromium is not installed (Debian: chromium; `make test` installs it)")
    return found


def _run(url: str, budget_ms: int, *extra: str) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        argv = [
            chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            *extra,
            url,
        ]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise AssertionError(f"chromium exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def dump_dom(url: str, budget_ms: int = 7000) -> str:
    """The page's DOM as HTML once `budget_ms` of virtual time has passed."""
    return _run(url, budget_ms, "--dump-dom")


def screenshot(url: str, path: Path, size: str = "1280,1600", budget_ms: int = 7000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(url, budget_ms, f"--screenshot={path}", f"--window-size={size}")
    if not path.is_file() or path.stat().st_size == 0:
        raise AssertionError(f"chromium wrote no screenshot to {path}")
    return path


class Node:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[Node] = []
        self.texts: list[str] = []

    def text(self) -> str:
        return "".join(self.texts) + "".join(c.text() for c in self.children)

    def iter(self) -> list[Node]:
        return [self, *(n for c in self.children for n in c.iter())]

    def find(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Descendants (and self) with `tag` and these attribute values ("" = present)."""

        def matches(n: Node) -> bool:
            if tag is not None and n.tag != tag:
                return False
            return all(k in n.attrs and (v == "" or n.attrs[k] == v) for k, v in attrs.items())

        return [n for n in self.iter() if matches(n)]


VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr", "source"}


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k.replace("-", "_"): v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k.replace("-", "_"): v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].texts.append(data)


def parse(html: str) -> Node:
    """A small tree of the dumped DOM (attribute names with '_' for '-': data_ipv4)."""
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.root


def rendered(html: str) -> Node:
    """The page's tree, once the stand-in says the view rendered and nothing failed."""
    page = parse(html)
    [root] = page.find("html")
    [errors] = page.find("pre", id="standin-errors")
    assert root.attrs.get("data_standin") == "rendered", errors.text()
    assert not errors.text().strip()
    return page
