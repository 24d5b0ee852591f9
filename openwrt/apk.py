#!/usr/bin/env python3
"""Build the feed's packages as apk v3 files for OpenWrt 25.12 without the SDK (`make apk`).

25.12 installs with apk (apk-tools 3) instead of opkg.  The packages come from the same feed
Makefiles as `make ipk`: openwrt/ipkg.py runs them (variables, install recipes, conffiles,
scripts) and this script packs the result as OpenWrt's include/package-pack.mk does with
CONFIG_USE_APK (its apk branch):
- into the package's files: lib/apk/packages/NAME.list (every file and symlink, sorted, made
  before the next two), NAME.conffiles (the Makefile's conffiles) and NAME.conffiles_static
  (each of them that the package has, with its sha256);
- the scripts: post-install and pre-deinstall run default_postinst / default_prerm of
  /lib/functions.sh and then the Makefile's postinst / prerm, inline; post-upgrade is
  post-install with PKG_UPGRADE=1; pre-install, pre-upgrade and post-deinstall only when the
  Makefile has a preinst or postrm;
- `apk mkpkg --info`: name, version, the description on one line, arch noarch (PKGARCH all),
  license, origin (the feed directory), url, maintainer, provides NAME-any (the virtual name
  every 25.12 package provides: package-pack.mk's FormatProvides, and 25.12.0's package index),
  depends; every mtime SOURCE_DATE_EPOCH.  openwrt/adb.py writes the file, unsigned: a locally
  built package is installed with `apk add --allow-untrusted`.

Python: 25.12's packages feed builds Python 3.13 (openwrt/packages, branch openwrt-25.12,
lang/python/python3-version.mk: PYTHON3_VERSION_MINOR:=13) and ships its Python packages as
bytecode (python3-package.mk: compileall -b, sources deleted; OpenWrt's Python writes no .pyc
files itself: its patch 004-do-not-write-bytes-codes).  Bytecode is valid only for the Python
version that wrote it, and Debian 12 has no Python 3.13: the compiler is `python3.13` on PATH,
else Debian 13's, fetched once with apt-get into build/python3.13 (openwrt/debian_python.py).
With --sources, or when neither is to be had (--offline, no apt-get, no network: said in the
output), clat-eamt carries its modules as sources (what clat-eamt-src holds), which the
router's Python compiles in memory as it imports them: the same package, slower to start.

Usage: apk.py [--out DIR] [--sources | --offline] [--python-cache DIR] [--debian-mirror URL]
              [PACKAGE ...]     (exit 3: a source could not be downloaded)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from pathlib import Path

import adb
import debian_python
import ipkg

PACKAGES = ("clat-eamt", "luci-app-clat-eamt")
PYTHON3_VERSION = "3.13"
APK_DIR = "lib/apk/packages"

SHEBANG = re.compile(r"^\s*#!.*\n?", re.M)  # sed '/^\s*#!/d'


def host_python(args: argparse.Namespace) -> str | None:
    """The command that runs 25.12's Python here (PATH, cache, download), or None: sources."""
    if args.sources:
        return None
    found = debian_python.find(PYTHON3_VERSION, args.python_cache)
    if found or args.offline:
        return found
    try:
        return debian_python.fetch(PYTHON3_VERSION, args.python_cache, args.debian_mirror, print)
    except debian_python.FetchError as error:
        print(f"apk: no python{PYTHON3_VERSION} for bytecode: {error}", file=sys.stderr)
        return None


def python_variables(python: str | None) -> tuple[str, ...]:
    """Make variables for the release's Python: its bytecode with `python`, else sources."""
    version = f"PYTHON3_VERSION={PYTHON3_VERSION}"
    if python is None:
        return (version, "PYTHON3_KEEP_SOURCES=1")
    return (version, f"HOST_PYTHON3_BIN={python}")


def scripts(name: str, control: Path) -> dict[str, str]:
    """The apk scripts package-pack.mk writes around the Makefile's (from CONTROL/)."""

    def body(file: str) -> str:
        path = control / file
        return SHEBANG.sub("", path.read_text()) if path.exists() else ""

    identity = f'export root="${{IPKG_INSTROOT}}"\nexport pkgname="{name}"\n'
    functions = "[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n"
    functions += ". ${IPKG_INSTROOT}/lib/functions.sh\n"
    post_install = '#!/bin/sh\n[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0\n' + functions + identity
    post_install += "add_group_and_user\ndefault_postinst\n" + body("postinst-pkg")
    upgrade = "#!/bin/sh\nexport PKG_UPGRADE=1\n"
    out = {
        "post-install": post_install,
        "post-upgrade": upgrade + SHEBANG.sub("", post_install),
        "pre-deinstall": f"#!/bin/sh\n{functions}{identity}default_prerm\n" + body("prerm-pkg"),
    }
    if (control / "preinst").exists():
        out["pre-install"] = (control / "preinst").read_text()
        out["pre-upgrade"] = upgrade + body("preinst")
    if (control / "postrm").exists():
        out["post-deinstall"] = re.sub(r"^\s*#!", "#!", (control / "postrm").read_text())
    return out


def add_apk_files(meta: ipkg.Meta, data: Path) -> None:
    """lib/apk/packages/NAME.list, .conffiles, .conffiles_static, as package-pack.mk makes them."""
    packages = data / APK_DIR
    packages.mkdir(parents=True, exist_ok=True, mode=0o755)
    for part in (data / "lib", data / "lib" / "apk", packages):
        part.chmod(0o755)
    listed = sorted(
        "/" + p.relative_to(data).as_posix()
        for p in data.rglob("*")
        if p.is_symlink() or p.is_file()
    )
    ipkg._write(packages / f"{meta.name}.list", "".join(f"{p}\n" for p in listed), 0o644)
    conffiles = meta.get("conffiles")
    if not conffiles:
        return
    ipkg._write(packages / f"{meta.name}.conffiles", conffiles + "\n", 0o644)
    static = ""
    for path in conffiles.split():
        file = data / path.lstrip("/")
        if file.is_file():
            static += f"{path} {hashlib.sha256(file.read_bytes()).hexdigest()}\n"
    if static:
        ipkg._write(packages / f"{meta.name}.conffiles_static", static, 0o644)


def members(data: Path, epoch: int) -> list[adb.Member]:
    """The tree as mkpkg reads it: every directory, file and symlink, owned by root."""
    out = [adb.Member("", "dir", 0o755)]
    for path in sorted(data.rglob("*")):
        name = path.relative_to(data).as_posix()
        mode = path.lstat().st_mode & 0o7755  # as ipkg.py: a umask's group/other write dropped
        if path.is_symlink():
            target = os.readlink(path).encode()
            out.append(adb.Member(name, "symlink", 0o777, target, epoch))
        elif path.is_dir():
            out.append(adb.Member(name, "dir", mode))
        elif path.is_file():
            out.append(adb.Member(name, "file", mode, path.read_bytes(), epoch))
        else:
            raise ipkg.BuildError(f"cannot package {path}: not a file, directory or symlink")
    return out


def info(meta: ipkg.Meta) -> dict[str, str | int | bytes | list[str]]:
    """mkpkg's --info fields, from the Makefile's variables as package-pack.mk passes them."""
    depends = [d.strip() for d in ipkg.depends(meta).split(",") if d.strip()]
    if any("|" in d for d in depends):  # apk has no alternatives in depends
        raise ipkg.BuildError(f"{meta.name}: alternative dependencies cannot be packed for apk")
    fields: dict[str, str | int | bytes | list[str]] = {
        "name": meta.name,
        "version": meta.get("VERSION"),
        "description": " ".join(meta.get("description").split()),  # $(strip ...)
        "arch": "noarch",
        "license": meta.get("LICENSE"),
        "origin": f"feeds/{ipkg.FEED_NAME}/{meta.feed_dir}",
        "url": meta.get("URL"),
        "maintainer": meta.get("MAINTAINER"),
        "provides": [f"{meta.name}-any"],  # build() refuses a Makefile PROVIDES
        "depends": depends,
    }
    return {k: v for k, v in fields.items() if v}


def build(meta: ipkg.Meta, work: Path, out: Path, epoch: int, variables: tuple[str, ...]) -> Path:
    if meta.get("PROVIDES") or meta.get("ALTERNATIVES") or meta.get("CONFLICTS"):
        raise ipkg.BuildError(f"{meta.name}: provides, alternatives, conflicts: not packed here")
    data = ipkg.stage(meta, work, variables)
    control = work / "control" / meta.name
    ipkg.write_control(meta, data, control)  # the Makefile's scripts, checked conffiles
    add_apk_files(meta, data)
    body = adb.write_package(info(meta), scripts(meta.name, control), members(data, epoch))
    apk = out / f"{meta.name}-{meta.get('VERSION')}.apk"
    apk.write_bytes(body)
    return apk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ipkg.REPO / "build" / "apk")
    parser.add_argument(
        "--sources", action="store_true", help="Python modules as sources even with python3.13"
    )
    parser.add_argument(
        "--offline", action="store_true", help="python3.13 from PATH or the cache, no download"
    )
    parser.add_argument(
        "--python-cache",
        type=Path,
        default=ipkg.REPO / "build" / f"python{PYTHON3_VERSION}",
        help="where the fetched python3.13 is kept (default build/python3.13)",
    )
    parser.add_argument(
        "--debian-mirror", metavar="URL", help="instead of the apt sources' Debian mirror"
    )
    parser.add_argument("packages", nargs="*", default=list(PACKAGES), metavar="PACKAGE")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    work = out / ".work"
    try:
        epoch = ipkg.source_date_epoch()
        os.environ["SOURCE_DATE_EPOCH"] = str(epoch)  # as ipkg.py: reproducible bytecode
        work.mkdir(parents=True, exist_ok=True)
        python = host_python(args)
        variables = python_variables(python)
        metas = ipkg.read_metas(work, variables)
        ipkg.check_version(metas)
        unknown = sorted(set(args.packages) - set(metas))
        if unknown:
            raise ipkg.BuildError(f"no such package in the feed: {', '.join(unknown)}")
        for name in args.packages:
            apk = build(metas[name], work, out, epoch, variables)
            print(f"{os.path.relpath(apk)}  {apk.stat().st_size:,} bytes")
        if args.sources:
            print("(Python modules as sources: --sources)")
        elif python is None:
            print(f"(Python modules as sources: no python{PYTHON3_VERSION} here for bytecode)")
        else:
            shown = os.path.relpath(python) if Path(python).is_relative_to(Path.cwd()) else python
            used = f"{shown} {debian_python.probe(python)}"
            print(f"(Python modules as {PYTHON3_VERSION} bytecode: {used})")
    except ipkg.DownloadError as error:
        print(f"apk: {error}", file=sys.stderr)
        return ipkg.EXIT_DOWNLOAD
    except (ipkg.BuildError, adb.FormatError) as error:
        print(f"apk: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
