"""The layout shows the architecture, and stays true (issue 16):

- no import circle between the modules of src/ (every import counted, also those inside
  functions and under TYPE_CHECKING: a circle there is still two modules that know each other);
- the pure parts (core/, runtime/) import no I/O: no sockets, processes, threads, clocks, and
  none of the shells;
- the README's architecture list names exactly the modules in the tree, under their package;
- every package docstring lists exactly its modules.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "clat_eamt"  # the checkout's (tox installs a copy elsewhere)
PACKAGE = "clat_eamt"
IO_MODULES = {"asyncio", "socket", "subprocess", "threading", "time", "select", "selectors"}
SHELLS = {"dns", "dataplane", "control", "daemon", "hook", "cli", "apply"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def imports(path: Path, name: str) -> set[str]:
    """Every module ``path`` imports, resolved to a module of the tree where it is one."""
    known = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {other for other in imports(path, name) if other in known and other != name}
        for name, path in known.items()
    }


def test_no_import_circle_in_src():
    edges = graph()
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for other in sorted(edges[node]):
            if state.get(other) == 1:
                circle = [*path[path.index(other) :], other]
                pytest.fail("import circle: " + " -> ".join(circle))
            if other not in state:
                visit(other)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_circle_check_finds_a_circle(tmp_path, monkeypatch):
    """The check above can fail: the old daemon <-> control.target pair is a circle to it."""
    edges = graph()
    edges["clat_eamt.control.target"].add("clat_eamt.daemon")
    assert "clat_eamt.control.target" in reach(edges, "clat_eamt.daemon")
    assert "clat_eamt.daemon" in reach(edges, "clat_eamt.control.target")


def reach(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for other in edges[todo.pop()]:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


@pytest.mark.parametrize("part", ["core", "runtime"])
def test_the_pure_parts_import_no_io_and_no_shell(part: str):
    for name, path in modules().items():
        if not name.startswith(f"{PACKAGE}.{part}"):
            continue
        for imported in imports(path, name):
            top = imported.split(".")[0]
            assert top not in IO_MODULES, f"{name} imports {imported}"
            if imported.startswith(f"{PACKAGE}."):
                assert imported.split(".")[1] not in SHELLS, f"{name} imports {imported}"


def readme_tree() -> dict[str, set[str]]:
    """The README's architecture list: package path -> the names listed under it."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Architecture", 1)[1].split("```", 2)[1]
    listed: dict[str, set[str]] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        match = re.match(r"^( *)([\w./]+)(\s|$)", line)
        if not match or not line.strip():
            continue
        indent, word = len(match.group(1)), match.group(2)
        if indent >= 16:  # a continuation of a description
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        if parent.startswith("src/"):
            listed.setdefault(parent, set()).add(word)
        if word.endswith("/"):
            stack.append((indent, parent + word if parent.startswith("src/") else word))
    return listed


def test_the_readme_architecture_lists_exactly_the_tree():
    listed = readme_tree()
    actual: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        folder = "src/" + str(path.parent.relative_to(SRC.parent)) + "/"
        actual.setdefault(folder, set()).add(path.name)
    for folder in sorted({p.parent for p in SRC.rglob("__init__.py")} - {SRC}):
        parent = "src/" + str(folder.parent.relative_to(SRC.parent)) + "/"
        actual.setdefault(parent, set()).add(folder.name + "/")
    assert listed == actual


def docstring_modules(path: Path) -> set[str]:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return set(re.findall(r"^- ``(\w+)``", doc, re.MULTILINE))


@pytest.mark.parametrize(
    "package",
    sorted(p.parent for p in SRC.rglob("__init__.py") if p.parent != SRC),
    ids=lambda p: p.name,
)
def test_every_package_docstring_lists_exactly_its_modules(package: Path):
    have = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    assert docstring_modules(package / "__init__.py") == have


def test_the_top_docstring_lists_every_package():
    have = {p.parent.name for p in SRC.glob("*/__init__.py")}
    assert have <= docstring_modules(SRC / "__init__.py")
