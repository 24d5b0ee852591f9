#!/usr/bin/env python3
"""Build the feed's packages as .ipk files without the OpenWrt SDK (`make ipk`).

Each package's own Makefile is the source of truth: it is run by make with TOPDIR set to
openwrt/ipkg-topdir/, a stand-in for the few parts of the build system it uses, which runs its
Build/Prepare and install recipes into a staging directory and writes out its variables
(version, depends, title, description, conffiles, scripts).  This script then does what
OpenWrt's include/package-pack.mk (ipk branch) and scripts/ipkg-build do with them: the
control file, the postinst/prerm wrappers around default_postinst/default_prerm, conffiles,
and an ipk that is a gzip'ed GNU tar of ./debian-binary, ./data.tar.gz and ./control.tar.gz,
members sorted by name per directory, owned by 0:0 without user names, all with the mtime
``source_date()`` chooses (SOURCE_DATE_EPOCH, else the last commit's time, else the newest
source file's time), which it prints.  The same inputs give the same bytes.

Usage: ipkg.py [--out DIR] [PACKAGE ...]     (exit 3: a source could not be downloaded)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

FEED = Path(__file__).resolve().parent
REPO = FEED.parent
TOPDIR = FEED / "ipkg-topdir"
# The feed name the README's feed line uses; the control file's Source field is the package's
# directory as an SDK with a src-git feed of that name sees it (never a path of this machine).
FEED_NAME = "clat_eamt"
PACKAGES = (
    "clat-eamt",
    "clat-eamt-src",
    "python3-dnslib",
    "python3-dnslib-src",
    "luci-app-clat-eamt",
)
# The release the ipk files are for uses opkg and Python 3.11 (OpenWrt 24.10).  The packages
# carry bytecode (python3-package.mk's Py3Package), valid only for that Python version: the
# host's Python 3.11 compiles it (host_python).
PYTHON3_VERSION = "3.11"
EXIT_DOWNLOAD = 3


class BuildError(Exception):
    pass


class DownloadError(BuildError):
    pass


def run_tool(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a host tool, its output captured; a missing tool is a BuildError saying so."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BuildError(missing_tool(argv[0])) from None


def host_python() -> str:
    """The interpreter that compiles the bytecode: the one running this script when it is the
    release's Python version (the Makefile runs it under Debian's /usr/bin/python3, not
    whatever python3.11 comes first on PATH), else python3.11 from PATH."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == PYTHON3_VERSION:
        return sys.executable
    found = shutil.which(f"python{PYTHON3_VERSION}")
    if found is None:
        raise BuildError(missing_tool(f"python{PYTHON3_VERSION}") + ": it compiles the bytecode")
    return found


def missing_tool(name: str) -> str:
    # make, git and python3.11 are each a Debian package of that name (a bare Debian 12 has
    # neither make nor git)
    return f"{name} is not installed (Debian: apt-get install {name})"


# -- the package's Makefile, run through the stand-in TOPDIR ----------------------------------


@dataclass(frozen=True)
class Meta:
    """A package's variables as its Makefile defines them (expanded, as OpenWrt exports them)."""

    name: str
    feed_dir: str  # its directory in the feed, e.g. "clat-eamt"
    values: dict[str, str]

    def get(self, key: str) -> str:
        return self.values.get(key, "")


def _make(feed_dir: str, work: Path, target: str, extra: tuple[str, ...] = ()) -> None:
    """`extra`: more make variables (NAME=VALUE), after ours so that they win (openwrt/apk.py
    builds for another release's Python with them)."""
    argv = [
        "make",
        "--no-print-directory",
        "-r",
        "-s",
        "-C",
        str(FEED / feed_dir),
        f"TOPDIR={TOPDIR}",
        f"IPKG_WORK={work}",
        f"IPKG_STAGE={work / 'stage'}",
        f"IPKG_META={work / 'meta' / feed_dir}",
        f"PYTHON3_VERSION={PYTHON3_VERSION}",
        f"HOST_PYTHON3_BIN={host_python()}",
        *extra,
        target,
    ]
    done = run_tool(argv)
    if done.returncode != 0:
        raise BuildError(f"make {target} in openwrt/{feed_dir} failed:\n{done.stderr.strip()}")


def read_metas(work: Path, extra: tuple[str, ...] = ()) -> dict[str, Meta]:
    """Every package every Makefile of the feed defines, by package name."""
    metas: dict[str, Meta] = {}
    for makefile in sorted(FEED.glob("*/Makefile")):
        feed_dir = makefile.parent.name
        if "call BuildPackage" not in makefile.read_text():  # the SDK's scan.mk looks for it
            continue
        shutil.rmtree(work / "meta" / feed_dir, ignore_errors=True)
        _make(feed_dir, work, "ipkg-meta", extra)
        for pkg_dir in sorted((work / "meta" / feed_dir).iterdir()):
            values = {}
            for var in pkg_dir.iterdir():
                text = var.read_text()
                values[var.name] = text[:-1] if text.endswith("\n") else text
            metas[pkg_dir.name] = Meta(pkg_dir.name, feed_dir, values)
    return metas


def fetch_source(meta: Meta, work: Path) -> None:
    """The PyPI sdist of a pypi.mk package into DL_DIR, checked against PKG_HASH."""
    source, pypi = meta.get("PKG_SOURCE"), meta.get("PYPI_NAME")
    if not source:
        return
    target = work / "dl" / source
    want = meta.get("PKG_HASH")
    if not (target.exists() and _sha256(target) == want):
        if not pypi:
            raise BuildError(f"{meta.name}: {source} must be downloaded, but not from PyPI")
        target.parent.mkdir(parents=True, exist_ok=True)
        spec = f"{pypi}=={meta.get('PKG_VERSION')}"
        argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        argv += ["--no-deps", "--no-binary", ":all:", "--dest", str(target.parent), spec]
        done = run_tool(argv)
        if done.returncode != 0 or not target.exists():
            raise DownloadError(f"cannot download {spec} from PyPI: {done.stderr.strip()[-400:]}")
    got = _sha256(target)
    if got != want:
        raise BuildError(f"{meta.name}: {source} has sha256 {got}, the Makefile's PKG_HASH {want}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- control files, as include/package-pack.mk writes them ------------------------------------


def choices(config: str) -> list[set[str]]:
    """The config symbols of each `choice` block of a package's menuconfig text."""
    blocks = re.findall(r"^\s*choice\b(.*?)^\s*endchoice\b", config, re.M | re.S)
    return [set(re.findall(r"^\s*config\s+(\S+)", block, re.M)) for block in blocks]


def depends(meta: Meta) -> str:
    """The Depends field: libc first (PKG_FIXUP_DEPENDS), menu-only @deps dropped, and the
    conditional dependencies of one menuconfig choice as one opkg alternative (a | b), since
    nothing chooses here; any other condition cannot be decided without menuconfig."""
    groups = choices(meta.get("config"))
    words = ["+libc", *(w for w in meta.get("DEPENDS").split() if w != "+libc")]
    fields: list[list[str]] = []
    by_group: dict[int, list[str]] = {}
    for word in words:
        if word.startswith("@"):
            continue
        dep = word.removeprefix("+")
        if ":" not in dep:
            fields.append([dep])
            continue
        symbol, package = dep.split(":", 1)
        index = next((i for i, g in enumerate(groups) if symbol in g), None)
        if index is None:
            raise BuildError(f"{meta.name}: cannot decide {word} without menuconfig")
        if index not in by_group:
            by_group[index] = []
            fields.append(by_group[index])
        by_group[index].append(package)
    return ", ".join(" | ".join(alternatives) for alternatives in fields)


def control_text(meta: Meta, epoch: int, installed_size: int) -> str:
    fields = [
        ("Package", meta.name),
        ("Version", meta.get("VERSION")),
        ("Depends", depends(meta)),
        ("Conflicts", ", ".join(meta.get("CONFLICTS").split())),
        ("Provides", ", ".join(meta.get("PROVIDES").split())),
        ("Alternatives", ", ".join(meta.get("ALTERNATIVES").split())),
        ("Source", f"feeds/{FEED_NAME}/{meta.feed_dir}"),
        ("SourceName", meta.get("PKG_NAME")),
        ("License", meta.get("LICENSE")),
        ("LicenseFiles", meta.get("LICENSE_FILES")),
        ("Section", meta.get("SECTION")),
        ("SourceDateEpoch", str(epoch)),
        ("URL", meta.get("URL")),
        ("Maintainer", meta.get("MAINTAINER")),
        ("Architecture", meta.get("PKGARCH")),
        ("Installed-Size", str(installed_size)),
    ]
    lines = [f"{key}: {value}" for key, value in fields if value.strip()]
    # `echo "$DESCRIPTION" | sed -e 's,^[[:space:]]*, ,g'` after "Description: "
    description = "\n".join(re.sub(r"^\s*", " ", ln) for ln in meta.get("description").split("\n"))
    return "\n".join(lines) + "\nDescription: " + description + "\n"


POSTINST = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
"""
PRERM = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
"""
# package-pack.mk's file names for the Makefile's scripts (postinst and prerm are the
# package's own code, run by default_postinst / default_prerm).
SCRIPTS = {
    "preinst": "preinst",
    "postinst": "postinst-pkg",
    "prerm": "prerm-pkg",
    "postrm": "postrm",
}


def write_control(meta: Meta, data: Path, control: Path) -> None:
    """CONTROL/ without the control file itself (it needs the data's size)."""
    shutil.rmtree(control, ignore_errors=True)
    control.mkdir(parents=True)
    for name, text in (("postinst", POSTINST), ("prerm", PRERM)):
        _write(control / name, text, 0o755)
    for var, name in SCRIPTS.items():
        if meta.get(var):
            _write(control / name, meta.get(var) + "\n", 0o755)
    # ipkg-build keeps the conffiles that are files in the package, sorted
    listed = [line.strip() for line in meta.get("conffiles").split("\n") if line.strip()]
    found = sorted(p for p in listed if (data / p.lstrip("/")).is_file())
    missing = set(listed) - set(found)
    if missing:
        raise BuildError(f"{meta.name}: conffiles not in the package: {sorted(missing)}")
    if found:
        _write(control / "conffiles", "".join(f"{p}\n" for p in found), 0o644)


def _write(path: Path, text: str, mode: int) -> None:
    path.write_text(text)
    path.chmod(mode)


# -- GNU tar, as `tar --format=gnu --numeric-owner --sort=name --mtime=@EPOCH` writes it ------

BLOCK, RECORD = 512, 10240


def _header(name: str, mode: int, size: int, mtime: int, kind: bytes, *, link: str = "") -> bytes:
    raw = name.encode()
    if len(raw) > 100 or len(link.encode()) > 100:
        raise BuildError(f"name too long for a plain tar header: {name}")
    head = bytearray(BLOCK)
    head[0 : len(raw)] = raw
    head[100:108] = b"%07o\0" % mode
    head[108:116] = head[116:124] = b"%07o\0" % 0  # uid, gid: root, and no names
    head[124:136] = b"%011o\0" % size
    head[136:148] = b"%011o\0" % mtime
    head[148:156] = b" " * 8
    head[156:157] = kind
    head[157 : 157 + len(link.encode())] = link.encode()
    head[257:265] = b"ustar  \0"  # the GNU magic
    head[148:156] = b"%06o\0 " % sum(head)
    return bytes(head)


def _entries(root: Path, prefix: str = "./") -> list[tuple[str, Path]]:
    """Depth first, each directory's names in byte order (what --sort=name does)."""
    out: list[tuple[str, Path]] = []
    for child in sorted(root.iterdir(), key=lambda p: os.fsencode(p.name)):
        name = prefix + child.name
        if child.is_dir() and not child.is_symlink():
            out.append((name + "/", child))
            out.extend(_entries(child, name + "/"))
        else:
            out.append((name, child))
    return out


def tar_bytes(members: list[tuple[str, Path]], mtime: int) -> bytes:
    chunks: list[bytes] = []
    for name, path in members:
        st = path.lstat()
        # what a umask added to the checkout (group or other write) is not the package's
        mode = st.st_mode & 0o7755
        if path.is_symlink():
            chunks.append(_header(name, 0o777, 0, mtime, b"2", link=os.readlink(path)))
        elif path.is_dir():
            chunks.append(_header(name, mode, 0, mtime, b"5"))
        elif path.is_file():
            body = path.read_bytes()
            chunks.append(_header(name, mode, len(body), mtime, b"0"))
            chunks.append(body + b"\0" * (-len(body) % BLOCK))
        else:
            raise BuildError(f"cannot package {path}: not a file, directory or symlink")
    chunks.append(b"\0" * (2 * BLOCK))
    data = b"".join(chunks)
    return data + b"\0" * (-len(data) % RECORD)


def tar_tree(root: Path, mtime: int) -> bytes:
    return tar_bytes([("./", root), *_entries(root)], mtime)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)  # gzip -n: no name, no time


# -- one package ------------------------------------------------------------------------------


def stage(meta: Meta, work: Path, extra: tuple[str, ...] = ()) -> Path:
    """The package's files as its install recipe installs them (package-pack.mk's IDIR)."""
    if meta.get("PKGARCH") != "all":
        raise BuildError(f"{meta.name}: only PKGARCH all can be built without the SDK")
    fetch_source(meta, work)
    _make(meta.feed_dir, work, f"ipkg-stage-{meta.name}", extra)
    data = work / "stage" / meta.name
    for junk in sorted(data.rglob("*"), reverse=True):  # as package-pack.mk removes them
        if junk.name in ("CVS", ".svn") or junk.name.startswith(".#") or junk.name.endswith("~"):
            if junk.is_dir():
                shutil.rmtree(junk)
            else:
                junk.unlink()
    data.chmod(0o755)
    return data


def build(meta: Meta, work: Path, out: Path, epoch: int) -> Path:
    data = stage(meta, work)
    control = work / "control" / meta.name
    write_control(meta, data, control)
    data_tar = tar_tree(data, epoch)
    _write(control / "control", control_text(meta, epoch, len(data_tar)), 0o644)
    outer = work / "outer" / meta.name
    shutil.rmtree(outer, ignore_errors=True)
    outer.mkdir(parents=True)
    (outer / "debian-binary").write_text("2.0\n")
    (outer / "data.tar.gz").write_bytes(gz(data_tar))
    (outer / "control.tar.gz").write_bytes(gz(tar_tree(control, epoch)))
    names = ("debian-binary", "data.tar.gz", "control.tar.gz")  # ipkg-build's order
    for name in names:
        (outer / name).chmod(0o644)
    ipk = out / f"{meta.name}_{meta.get('VERSION')}_{meta.get('PKGARCH')}.ipk"
    ipk.write_bytes(gz(tar_bytes([(f"./{n}", outer / n) for n in names], epoch)))
    return ipk


# What a release's packages are built from: their newest file dates a tree without git.
SOURCES = ("src", "files", "luci-app", "openwrt", "pyproject.toml")


def source_date() -> tuple[int, str]:
    """The packages' time stamp and where it came from: SOURCE_DATE_EPOCH when set, else the
    last commit's time (git, in a checkout), else the newest time of the files the packages are
    built from (a release tarball, or a checkout on a machine without git)."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    if value:
        if not value.isdigit():
            raise BuildError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds")
        return int(value), "SOURCE_DATE_EPOCH"
    if (REPO / ".git").exists() and shutil.which("git"):
        done = run_tool(["git", "-C", str(REPO), "log", "-1", "--format=%ct"])
        if done.returncode == 0 and done.stdout.strip().isdigit():
            return int(done.stdout), "the last commit (git log)"
    files = [
        path
        for top in SOURCES
        for path in ([REPO / top] if (REPO / top).is_file() else (REPO / top).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    ]
    if not files:
        raise BuildError(f"no sources in {REPO}: set SOURCE_DATE_EPOCH")
    newest = max(sorted(files), key=lambda path: path.stat().st_mtime)  # ties: the first name
    return int(newest.stat().st_mtime), f"the newest file's time ({newest.relative_to(REPO)})"


def source_date_epoch() -> int:
    return source_date()[0]


def check_version(metas: dict[str, Meta]) -> None:
    init = (REPO / "src" / "clat_eamt" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"', init, re.M)
    code = found.group(1) if found else "?"
    for name in ("clat-eamt", "luci-app-clat-eamt"):
        if name in metas and metas[name].get("PKG_VERSION") != code:
            raise BuildError(f"{name}: PKG_VERSION {metas[name].get('PKG_VERSION')} != {code}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "ipk")
    parser.add_argument("packages", nargs="*", default=list(PACKAGES), metavar="PACKAGE")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    work = out / ".work"
    try:
        epoch, origin = source_date()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
        print(f"ipkg: time stamps {stamp} ({epoch}) from {origin}")
        if shutil.which("make") is None:
            raise BuildError(missing_tool("make") + ": it runs the packages' Makefiles")
        host_python()
        # The SDK exports it: compileall then writes hash-based .pyc files and the hash seed
        # is fixed (python3-package.mk), so the same sources give the same bytes.
        os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
        work.mkdir(parents=True, exist_ok=True)
        metas = read_metas(work)
        check_version(metas)
        unknown = sorted(set(args.packages) - set(metas))
        if unknown:
            raise BuildError(f"no such package in the feed: {', '.join(unknown)}")
        for name in args.packages:
            print(os.path.relpath(build(metas[name], work, out, epoch)))
    except DownloadError as error:
        print(f"ipkg: {error}", file=sys.stderr)
        return EXIT_DOWNLOAD
    except BuildError as error:
        print(f"ipkg: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
