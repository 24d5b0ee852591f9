"""openwrt/ipkg.py where a user runs `make ipk` or `make bench`: a release tarball (no .git), a
checkout on a machine without git, a host without make; the time stamps it chooses and says.

The tree without git is a copy of the files the packages are built from (what a release
tarball unpacks), so these tests hold on a machine without git too.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "openwrt" / "ipkg.py"
T0 = 1700000000


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ipkg_under_test", BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def release_tree(dest: Path) -> Path:
    """The package sources as a release tarball unpacks them, every file dated T0."""
    ipkg = load_builder()
    for top in ipkg.SOURCES:
        if (REPO / top).is_dir():
            shutil.copytree(REPO / top, dest / top, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / top, dest / top)
    for path in dest.rglob("*"):
        os.utime(path, (T0, T0), follow_symlinks=False)
    return dest


def run(tree: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(tree / "openwrt" / "ipkg.py"), "--out", str(out), "clat-eamt"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


def without_epoch() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}


def test_release_tarball_takes_the_newest_source_files_time(tmp_path: Path) -> None:
    tree = release_tree(tmp_path / "clat-eamt-release")
    newest = tree / "src" / "clat_eamt" / "cli.py"
    os.utime(newest, (T0 + 1000, T0 + 1000))
    done = run(tree, tmp_path / "out", without_epoch())
    assert done.returncode == 0, done.stderr
    said = done.stdout.splitlines()[0]
    assert said == (
        f"ipkg: time stamps 2023-11-14 22:30:00 UTC ({T0 + 1000}) "
        "from the newest file's time (src/clat_eamt/cli.py)"
    )
    ipk = next((tmp_path / "out").glob("clat-eamt_*.ipk"))
    with tarfile.open(ipk, "r:gz") as outer:
        assert {m.mtime for m in outer.getmembers()} == {T0 + 1000}
        part = outer.extractfile("./data.tar.gz")
        assert part is not None
        with tarfile.open(fileobj=io.BytesIO(part.read()), mode="r:gz") as data:
            assert {m.mtime for m in data.getmembers()} == {T0 + 1000}


def test_checkout_without_git_takes_the_newest_files_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = release_tree(tmp_path / "checkout")
    (tree / ".git").mkdir()
    os.utime(tree / "openwrt" / "clat-eamt" / "Makefile", (T0 + 5, T0 + 5))
    ipkg = load_builder()
    monkeypatch.setattr(ipkg, "REPO", tree)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.setattr(ipkg.shutil, "which", lambda name: None)  # no git on this machine
    assert ipkg.source_date() == (T0 + 5, "the newest file's time (openwrt/clat-eamt/Makefile)")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234")
    assert ipkg.source_date() == (1234, "SOURCE_DATE_EPOCH")
    assert ipkg.source_date_epoch() == 1234


def test_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last commit's time where git is installed, else the newest source file's."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    epoch, origin = load_builder().source_date()
    if shutil.which("git") and (REPO / ".git").exists():
        argv = ["git", "-C", str(REPO), "log", "-1", "--format=%ct"]
        commit = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        assert (epoch, origin) == (int(commit), "the last commit (git log)")
    else:
        assert origin.startswith("the newest file's time (")
        newest = REPO / origin.removeprefix("the newest file's time (").removesuffix(")")
        assert epoch == int(newest.stat().st_mtime)


def test_checkout_with_git_asks_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Which question goes to git, and that its answer wins over the files' times (a stand-in
    for git answers here, so this holds on a machine without git too)."""
    tree = release_tree(tmp_path / "checkout")
    (tree / ".git").mkdir()
    ipkg = load_builder()
    asked: list[list[str]] = []

    def git(argv: list[str]) -> subprocess.CompletedProcess[str]:
        asked.append(argv)
        return subprocess.CompletedProcess(argv, 0, f"{T0 - 99}\n", "")

    monkeypatch.setattr(ipkg, "REPO", tree)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.setattr(ipkg.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(ipkg, "run_tool", git)
    assert ipkg.source_date() == (T0 - 99, "the last commit (git log)")
    assert asked == [["git", "-C", str(tree), "log", "-1", "--format=%ct"]]


def test_bad_source_date_epoch_is_a_message(tmp_path: Path) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "yesterday"}
    done = run(REPO, tmp_path / "out", env)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "ipkg: SOURCE_DATE_EPOCH='yesterday' is not a number of seconds\n"


def test_missing_make_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # python3.11 but no make (nor git) on PATH
    bin_dir.mkdir()
    python = shutil.which("python3.11")
    assert python is not None
    (bin_dir / "python3.11").symlink_to(python)
    env = {**os.environ, "PATH": str(bin_dir), "SOURCE_DATE_EPOCH": str(T0)}
    done = run(REPO, tmp_path / "out", env)
    assert done.returncode == 1
    assert done.stderr == (
        "ipkg: make is not installed (Debian: apt-get install make): "
        "it runs the packages' Makefiles\n"
    )


def test_bytecode_compiled_by_the_python_running_the_builder(tmp_path: Path) -> None:
    """Not by whatever python3.11 comes first on PATH (a pyenv's on the development machine):
    the Makefile runs the builder under Debian's, and that one compiles."""
    decoy = tmp_path / "bin" / "python3.11"
    decoy.parent.mkdir()
    decoy.write_text("#!/bin/sh\necho 'not this python3.11' >&2\nexit 9\n")
    decoy.chmod(0o755)
    env = {**os.environ, "PATH": f"{decoy.parent}:{os.environ['PATH']}", "SOURCE_DATE_EPOCH": "1"}
    done = run(REPO, tmp_path / "out", env)
    assert done.returncode == 0, done.stderr
    assert next((tmp_path / "out").glob("clat-eamt_*.ipk")).stat().st_size > 0
