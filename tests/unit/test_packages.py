"""The OpenWrt packages `make ipk` builds (openwrt/ipkg.py from the feed's Makefiles), unpacked
with GNU tar and Python's tarfile and checked against what OpenWrt's ipkg-build and
package-pack.mk produce: the outer layout, the control fields and scripts, modes and owners,
every module of src/clat_eamt and every file of files/, and the same bytes on a second build.

Neither opkg nor apk can be installed here (Debian 12 packages neither opkg, opkg-utils nor
apk-tools), so no test installs a package; the layout is checked instead against GNU tar run
with ipkg-build's own flags on the unpacked trees, byte for byte.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import clat_eamt
from tests.openwrtkit.ipk import unpack

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "openwrt" / "ipkg.py"
EPOCH = 1700000000
SITE = "usr/lib/python3.11/site-packages"
VERSION = f"{clat_eamt.__version__}-r1"
OWN = ("clat-eamt", "clat-eamt-src", "luci-app-clat-eamt")
# The OpenWrt wrappers (include/package-pack.mk, ipk branch), around the package's own code.
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
# Executable where they land on the router; every other file is 0644.
EXECUTABLE = re.compile(
    r"\./(usr/bin/.*|etc/init\.d/.*|etc/uci-defaults/.*|usr/lib/clat-eamt/.*\.sh"
    r"|usr/libexec/rpcd/.*)"  # rpcd's plugins: the ubus object clat-eamt (rpcd runs executables)
)


@dataclass
class Ipk:
    path: Path

    def outer(self) -> tarfile.TarFile:
        return tarfile.open(self.path, "r:gz")

    def member(self, name: str) -> bytes:
        with self.outer() as tar:
            f = tar.extractfile(name)
            assert f is not None
            return f.read()

    def part(self, name: str) -> tarfile.TarFile:
        return tarfile.open(fileobj=io.BytesIO(self.member(name)), mode="r:gz")

    def data(self) -> dict[str, tarfile.TarInfo]:
        with self.part("./data.tar.gz") as tar:
            return {m.name: m for m in tar.getmembers()}

    def data_file(self, name: str) -> bytes:
        with self.part("./data.tar.gz") as tar:
            f = tar.extractfile(name)
            assert f is not None
            return f.read()

    def control_file(self, name: str) -> str:
        with self.part("./control.tar.gz") as tar:
            f = tar.extractfile(f"./{name}")
            assert f is not None
            return f.read().decode()

    def control(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        key = ""
        for line in self.control_file("control").splitlines():
            if line.startswith(" "):
                fields[key] += "\n" + line
            else:
                key, _, value = line.partition(": ")
                fields[key] = value
        return fields


def run_builder(out: Path, *packages: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
    argv = [sys.executable, str(BUILDER), "--out", str(out), *packages]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


def built(out: Path, *packages: str) -> dict[str, Ipk]:
    done = run_builder(out, *packages)
    assert done.returncode == 0, done.stderr
    return {p.name.split("_")[0]: Ipk(p) for p in sorted(out.glob("*.ipk"))}


@pytest.fixture(scope="module")
def ipks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ipk]:
    return built(tmp_path_factory.mktemp("ipk"), *OWN)


@pytest.fixture(scope="module")
def dnslib_both(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ipk, Ipk]:
    out = tmp_path_factory.mktemp("dnslib")
    done = run_builder(out, "python3-dnslib", "python3-dnslib-src")
    if done.returncode == 3:  # the builder could not download the sdist from PyPI
        reason = f"python3-dnslib needs dnslib's sdist from PyPI: {done.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI reaches PyPI)")
        pytest.skip(reason)
    assert done.returncode == 0, done.stderr
    return Ipk(next(out.glob("python3-dnslib_*.ipk"))), Ipk(next(out.glob("python3-dnslib-src_*")))


@pytest.fixture(scope="module")
def dnslib(dnslib_both: tuple[Ipk, Ipk]) -> Ipk:
    return dnslib_both[0]


def all_ipks(ipks: dict[str, Ipk], dnslib: Ipk) -> list[Ipk]:
    return [*ipks.values(), dnslib]


def test_file_names(ipks: dict[str, Ipk], dnslib: Ipk) -> None:
    names = sorted(i.path.name for i in all_ipks(ipks, dnslib))
    assert names == [
        f"clat-eamt-src_{VERSION}_all.ipk",
        f"clat-eamt_{VERSION}_all.ipk",
        f"luci-app-clat-eamt_{VERSION}_all.ipk",
        "python3-dnslib_0.9.26-r1_all.ipk",
    ]


def test_outer_layout_as_ipkg_build(ipks: dict[str, Ipk], dnslib: Ipk) -> None:
    """A gzip'ed GNU tar of ./debian-binary, ./data.tar.gz, ./control.tar.gz in that order,
    root-owned (0/0, no names), mtime SOURCE_DATE_EPOCH; its parts gzip'ed tars too."""
    for ipk in all_ipks(ipks, dnslib):
        listing = subprocess.run(
            ["tar", "-tzvf", str(ipk.path), "--numeric-owner"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        assert [line.split()[-1] for line in listing] == [
            "./debian-binary",
            "./data.tar.gz",
            "./control.tar.gz",
        ]
        assert all(line.split()[:2] == ["-rw-r--r--", "0/0"] for line in listing)
        with ipk.outer() as tar:
            for m in tar.getmembers():
                assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", EPOCH)
        assert ipk.member("./debian-binary") == b"2.0\n"
        for part in ("./data.tar.gz", "./control.tar.gz"):
            assert ipk.member(part)[:2] == b"\x1f\x8b"


def test_parts_are_what_gnu_tar_makes_with_ipkg_build_flags(
    ipks: dict[str, Ipk], dnslib: Ipk, tmp_path: Path
) -> None:
    """Unpack each part with GNU tar and pack it again the way ipkg-build does (--format=gnu
    --numeric-owner --sort=name --mtime, under fakeroot: owner 0): the same bytes."""
    for ipk in all_ipks(ipks, dnslib):
        for part in ("./data.tar.gz", "./control.tar.gz"):
            mine = gzip.decompress(ipk.member(part))
            tree = tmp_path / ipk.path.name / part[2:].split(".")[0]
            tree.mkdir(parents=True)
            subprocess.run(["tar", "-xpf", "-", "-C", str(tree)], input=mine, check=True)
            argv = ["tar", "--format=gnu", "--numeric-owner", "--owner=0", "--group=0"]
            argv += ["--sort=name", f"--mtime=@{EPOCH}", "-cf", "-", "."]
            gnu = subprocess.run(argv, cwd=tree, capture_output=True, check=True).stdout
            assert mine == gnu, f"{ipk.path.name} {part}"


def test_control_fields(ipks: dict[str, Ipk]) -> None:
    fields = ipks["clat-eamt"].control()
    assert list(fields) == [
        "Package",
        "Version",
        "Depends",
        "Source",
        "SourceName",
        "License",
        "Section",
        "SourceDateEpoch",
        "Maintainer",
        "Architecture",
        "Installed-Size",
        "Description",
    ]
    assert fields["Package"] == "clat-eamt"
    assert fields["Version"] == VERSION
    assert fields["Architecture"] == "all"
    assert fields["Source"] == "feeds/clat_eamt/clat-eamt"
    assert fields["SourceName"] == "clat-eamt"
    assert fields["License"] == "GPL-2.0-only"
    assert fields["Section"] == "net"
    assert fields["SourceDateEpoch"] == str(EPOCH)
    assert fields["Installed-Size"] == str(
        len(gzip.decompress(ipks["clat-eamt"].member("./data.tar.gz")))
    )
    assert fields["Description"].startswith(" When the ISP gives IPv6-only internet")
    assert [d.strip() for d in fields["Depends"].split(",")] == [
        "libc",
        "python3-light",
        "python3-asyncio",
        "python3-logging",
        "python3-ctypes",
        "python3-ubus",
        "rpcd",  # serves the ubus object clat-eamt (the package's plugin)
        "nftables-json",
        "kmod-nft-nat",
        "kmod-nf-conntrack-netlink",
    ]  # no translator: the router's own CLAT by default


def test_versions_valid_for_opkg_and_apk(ipks: dict[str, Ipk], dnslib: Ipk) -> None:
    """opkg: [epoch:]upstream[-revision], upstream starting with a digit; apk: digits and dots,
    then -rN.  And clat-eamt's version is the code's own."""
    for ipk in all_ipks(ipks, dnslib):
        version = ipk.control()["Version"]
        assert re.fullmatch(r"[0-9]+(\.[0-9]+)*-r[0-9]+", version), version
    assert ipks["clat-eamt"].control()["Version"].startswith(clat_eamt.__version__ + "-")


def test_luci_and_dnslib_control(ipks: dict[str, Ipk], dnslib: Ipk) -> None:
    luci = ipks["luci-app-clat-eamt"].control()
    assert luci["Depends"] == "libc, luci-base, clat-eamt"
    assert (luci["Section"], luci["Architecture"], luci["Version"]) == ("luci", "all", VERSION)
    lib = dnslib.control()
    assert lib["Depends"] == "libc, python3-light"
    assert (lib["Version"], lib["Architecture"], lib["License"]) == (
        "0.9.26-r1",
        "all",
        "BSD-2-Clause",
    )


def test_conffiles(ipks: dict[str, Ipk]) -> None:
    assert ipks["clat-eamt"].control_file("conffiles") == "/etc/config/clat-eamt\n"


def test_modes_and_owners(ipks: dict[str, Ipk], dnslib: Ipk) -> None:
    for ipk in all_ipks(ipks, dnslib):
        for name, m in ipk.data().items():
            assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", EPOCH), name
            if m.isdir():
                assert m.mode == 0o755, name
            else:
                assert m.isfile(), name
                executable = ipk is ipks["clat-eamt"] and EXECUTABLE.fullmatch(name)
                want = 0o755 if executable else 0o644
                assert m.mode == want, f"{name}: {m.mode:o}"
    data = ipks["clat-eamt"].data()
    for name in (
        "./usr/bin/clat-eamt",
        "./etc/init.d/clat-eamt",
        "./etc/uci-defaults/90-clat-eamt",
        "./usr/lib/clat-eamt/dnsmasq.sh",
        "./usr/libexec/rpcd/clat-eamt",  # `ubus call clat-eamt` without the LuCI app
    ):
        assert data[name].mode == 0o755, name  # the layout agreed for the router
    assert data["./etc/config/clat-eamt"].mode == 0o644


def _modules() -> set[str]:
    source = REPO / "src" / "clat_eamt"
    return {
        p.relative_to(source).as_posix()
        for p in source.rglob("*.py")
        if "__pycache__" not in p.parts
    }


def _files_under(ipk: Ipk, prefix: str) -> set[str]:
    return {n[len(prefix) :] for n, m in ipk.data().items() if m.isfile() and n.startswith(prefix)}


def test_every_module_is_packaged_as_bytecode_and_as_source(ipks: dict[str, Ipk]) -> None:
    """Py3Package: clat-eamt carries each module as legacy bytecode (MODULE.pyc beside where
    the .py would be) and no source; clat-eamt-src carries exactly the sources, byte for byte,
    and nothing else."""
    source = REPO / "src" / "clat_eamt"
    prefix = f"./{SITE}/clat_eamt/"
    modules = _modules()
    assert _files_under(ipks["clat-eamt"], prefix) == {m + "c" for m in modules}
    assert _files_under(ipks["clat-eamt-src"], prefix) == modules
    for module in sorted(modules):
        assert ipks["clat-eamt-src"].data_file(prefix + module) == (source / module).read_bytes()
    src_files = {n for n, m in ipks["clat-eamt-src"].data().items() if m.isfile()}
    assert all(n.endswith(".py") for n in src_files)


def test_bytecode_is_hash_based_and_loads_without_sources(
    ipks: dict[str, Ipk], tmp_path: Path
) -> None:
    """Each .pyc is for the release's Python (its magic number), hash-based (no source mtime:
    reproducible, SOURCE_DATE_EPOCH set as the SDK sets it), names its module by the router's
    path, and Python imports the package from the bytecode alone."""
    import importlib.util  # noqa: PLC0415

    prefix = f"./{SITE}/clat_eamt/"
    body = ipks["clat-eamt"].data_file(prefix + "daemon.pyc")
    assert body[:4] == importlib.util.MAGIC_NUMBER  # the test venv's Python is 3.11 too
    assert int.from_bytes(body[4:8], "little") & 1  # PEP 552: hash-based
    assert f"/{SITE}/clat_eamt/daemon.py".encode() in body
    tree = tmp_path / "root"
    tree.mkdir()
    with ipks["clat-eamt"].part("./data.tar.gz") as tar:
        unpack(tar, tree)
    site = tree / SITE
    assert imported_daemon(site, tmp_path) == site / "clat_eamt" / "daemon.pyc"


def imported_daemon(site: Path, cwd: Path, python: str = sys.executable) -> Path:
    """The file `python` imports clat_eamt.daemon from, with only `site` on its path (and the
    CLI imported too), writing no bytecode."""
    probe = "import clat_eamt.daemon, clat_eamt.cli; print(clat_eamt.daemon.__file__)"
    done = subprocess.run(
        [python, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def test_src_package_control(ipks: dict[str, Ipk]) -> None:
    fields = ipks["clat-eamt-src"].control()
    assert fields["Package"] == "clat-eamt-src"
    assert fields["Depends"] == "libc"
    assert fields["Description"].endswith(
        "This package contains the Python source files for clat-eamt."
    )


def test_files_tree_as_it_lies(ipks: dict[str, Ipk]) -> None:
    files = REPO / "files"
    data = ipks["clat-eamt"].data()
    for path in sorted(p for p in files.rglob("*") if p.is_file()):
        name = "./" + path.relative_to(files).as_posix()
        assert name in data, name
        assert ipks["clat-eamt"].data_file(name) == path.read_bytes(), name
    # and nothing else but the modules and the launcher
    extra = {
        n
        for n, m in data.items()
        if m.isfile() and not n.startswith(f"./{SITE}/") and not (files / n[2:]).is_file()
    }
    assert extra == {"./usr/bin/clat-eamt"}


def test_launcher(ipks: dict[str, Ipk]) -> None:
    text = ipks["clat-eamt"].data_file("./usr/bin/clat-eamt").decode()
    assert text.startswith("#!/usr/bin/python3\n")
    assert "from clat_eamt.cli import main" in text
    compile(text, "clat-eamt", "exec")


def test_scripts_are_openwrts(ipks: dict[str, Ipk], dnslib: Ipk) -> None:
    for ipk in all_ipks(ipks, dnslib):
        assert ipk.control_file("postinst") == POSTINST
        assert ipk.control_file("prerm") == PRERM
    # default_prerm sources prerm-pkg on removal: dnsmasq gets its own DNS set-up back
    prerm_pkg = ipks["clat-eamt"].control_file("prerm-pkg")
    assert "/usr/lib/clat-eamt/dnsmasq.sh restore" in prerm_pkg
    assert "killall -HUP rpcd" in ipks["luci-app-clat-eamt"].control_file("postinst-pkg")
    # rpcd loads the package's plugin (the ubus object clat-eamt) when it starts again
    assert "killall -HUP rpcd" in ipks["clat-eamt"].control_file("postinst-pkg")
    with ipks["clat-eamt"].part("./control.tar.gz") as tar:
        assert tar.getnames() == [  # tarfile drops the "/" of "./"
            ".",
            "./conffiles",
            "./control",
            "./postinst",
            "./postinst-pkg",
            "./prerm",
            "./prerm-pkg",
        ]


def test_shell_scripts_parse(ipks: dict[str, Ipk], dnslib: Ipk, tmp_path: Path) -> None:
    """`sh -n` on every control script and every shell script the packages install;
    shellcheck on the package's own control code when the Makefile's HOST_TOOLS installs it."""
    own: list[Path] = []
    for ipk in all_ipks(ipks, dnslib):
        with ipk.part("./control.tar.gz") as tar:
            for m in tar.getmembers():
                if m.isfile() and m.name not in ("./control", "./conffiles"):
                    path = tmp_path / f"{ipk.path.stem}.{m.name[2:]}"
                    f = tar.extractfile(m)
                    assert f is not None
                    path.write_bytes(f.read())
                    subprocess.run(["sh", "-n", str(path)], check=True)
                    if m.name.endswith("-pkg"):
                        own.append(path)
    clat = ipks["clat-eamt"]
    for name, m in clat.data().items():
        body = clat.data_file(name) if m.isfile() else b""
        if body.startswith(b"#!/bin/sh"):
            path = tmp_path / name.replace("/", "_")
            path.write_bytes(body)
            subprocess.run(["sh", "-n", str(path)], check=True)
    host_tools = (REPO / "Makefile").read_text()
    if "shellcheck:" in host_tools and shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-s", "sh", *map(str, own)], check=True)


def test_luci_package_carries_its_root_and_htdocs(ipks: dict[str, Ipk]) -> None:
    """luci.mk's layout: luci-app/root/ at /, luci-app/htdocs/ under /www, byte for byte."""
    luci = ipks["luci-app-clat-eamt"]
    files = sorted(n for n, m in luci.data().items() if m.isfile())
    app = REPO / "luci-app"
    sources = {f"./{f.relative_to(app / 'root')}": f for f in (app / "root").rglob("*")}
    sources |= {f"./www/{f.relative_to(app / 'htdocs')}": f for f in (app / "htdocs").rglob("*")}
    sources = {name: f for name, f in sources.items() if f.is_file()}
    assert "./usr/share/rpcd/acl.d/luci-app-clat-eamt.json" in files
    assert "./usr/share/luci/menu.d/luci-app-clat-eamt.json" in files
    assert "./www/luci-static/resources/view/clat-eamt/settings.js" in files
    assert "./www/luci-static/resources/clat-eamt/schema.js" in files
    assert not [f for f in files if "/po/" in f or f.endswith(".pot")]  # translations: luci-i18n-*
    assert files == sorted(sources)
    for name in files:
        assert luci.data_file(name) == sources[name].read_bytes(), name


def test_dnslib_is_the_release(dnslib_both: tuple[Ipk, Ipk]) -> None:
    """The modules of the sdist whose sha256 is the Makefile's PKG_HASH, under site-packages:
    as bytecode in python3-dnslib, as the release's sources in python3-dnslib-src."""
    dnslib, source = dnslib_both
    makefile = (REPO / "openwrt" / "python3-dnslib" / "Makefile").read_text()
    pkg_hash = re.search(r"^PKG_HASH:=(\S+)", makefile, re.M)
    assert pkg_hash is not None
    sdist = dnslib.path.parent / ".work" / "dl" / "dnslib-0.9.26.tar.gz"
    assert hashlib.sha256(sdist.read_bytes()).hexdigest() == pkg_hash.group(1)
    with tarfile.open(sdist) as tar:
        release = {
            m.name.split("/", 2)[2]: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if re.fullmatch(r"dnslib-0\.9\.26/dnslib/[^/]+\.py", m.name)
        }
    prefix = f"./{SITE}/dnslib/"
    assert _files_under(dnslib, prefix) == {name + "c" for name in release}
    assert _files_under(source, prefix) == set(release)
    for name, body in release.items():
        assert source.data_file(prefix + name) == body


def test_reproducible(ipks: dict[str, Ipk], tmp_path: Path) -> None:
    again = built(tmp_path, *OWN)
    assert sorted(again) == sorted(ipks)
    for name, ipk in ipks.items():
        assert again[name].path.read_bytes() == ipk.path.read_bytes(), name


def test_feed_as_the_sdk_scans_it() -> None:
    """scripts/feeds scans the feed with find -L for Makefiles that call BuildPackage: the LuCI
    app is reached through the link to luci-app/ and carries the signature comment."""
    feed = REPO / "openwrt"
    link = feed / "luci-app-clat-eamt"
    assert link.is_symlink() and os.readlink(link) == "../luci-app"
    found = sorted(
        p.parent.name for p in feed.glob("*/Makefile") if "call BuildPackage" in p.read_text()
    )
    assert found == ["clat-eamt", "luci-app-clat-eamt", "python3-dnslib"]
