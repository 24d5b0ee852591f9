"""The apk v3 packages `make apk` builds for OpenWrt 25.12 (openwrt/apk.py), read with the
project's own reader of the format (openwrt/adb_reader.py) and checked field by field against
the ipk packages of the same tree (openwrt/ipkg.py, tests/unit/test_packages.py): the same files
with the same bytes, modes and owner (the modules as sources, i.e. what clat-eamt-src carries,
under 25.12's python3.13), the same conffiles, the same dependencies (each name is the same in
25.12's feeds), the Makefile's scripts inside the wrappers of package-pack.mk's apk branch, the
bytes again on a second build; and the reader's own rules against damaged packages.

The modules as Python 3.13 bytecode need a python3.13: on PATH, or Debian 13's that `make apk`
fetched into build/python3.13 (openwrt/debian_python.py).  These tests download nothing: with
neither, the bytecode test is skipped; without one to be had, the build falls back to sources.

No apk-tools can be installed here (no registry these machines reach packages it): the packages
were checked by hand against apk-tools 3.0.6 built from its sources (`apk adbdump`, `apk
verify`, `apk add` into an empty root with its scripts, `apk del`; the issue 29 note), and
`apk mkpkg` run on the same tree gave the same fields, scripts and files to this reader.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import clat_eamt
from tests.unit.test_packages import EPOCH, Ipk, built, imported_daemon

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "openwrt"))
import adb  # noqa: E402
import adb_reader  # noqa: E402
import debian_python  # noqa: E402

BUILDER = REPO / "openwrt" / "apk.py"
VERSION = f"{clat_eamt.__version__}-r1"
SITE_IPK = "usr/lib/python3.11/site-packages/"
SITE_APK = "usr/lib/python3.13/site-packages/"
APK_FILES = "lib/apk/packages/"
OWN = ("clat-eamt", "luci-app-clat-eamt")
CACHE = REPO / "build" / "python3.13"  # where `make apk` keeps the python3.13 it fetched
PYTHON313 = debian_python.find("3.13", CACHE)


def run_builder(out: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
    if path is not None:
        env["PATH"] = path
    argv = [sys.executable, str(BUILDER), "--out", str(out), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


def debian12_path(tmp: Path, *without: str) -> str:
    """A PATH of the host's /usr/bin and /bin without python3.13 (as on Debian 12) nor `without`."""
    tools = tmp / "bin"
    tools.mkdir()
    for directory in (Path("/usr/bin"), Path("/bin")):
        for tool in sorted(directory.iterdir()):
            link = tools / tool.name
            skip = tool.name.startswith("python3.13") or tool.name in without
            if not (skip or link.is_symlink()):
                link.symlink_to(tool)
    return str(tools)


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("apk")
    done = run_builder(out, "--sources")
    assert done.returncode == 0, done.stderr
    return out, done.stdout


@pytest.fixture(scope="module")
def apks(build: tuple[Path, str]) -> dict[str, adb_reader.Package]:
    out = build[0]
    return {
        name: adb_reader.read_package((out / f"{name}-{VERSION}.apk").read_bytes()) for name in OWN
    }


@pytest.fixture(scope="module")
def ipks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ipk]:
    return built(tmp_path_factory.mktemp("ipk"), "clat-eamt", "clat-eamt-src", *OWN[1:])


def ipk_members(ipk: Ipk) -> dict[str, tuple[str, int, bytes]]:
    """path -> (kind, mode, content), paths as the apk reader gives them."""
    out: dict[str, tuple[str, int, bytes]] = {}
    for name, m in ipk.data().items():
        path = "" if name in (".", "./") else name.removeprefix("./").rstrip("/")
        if m.isdir():
            out[path] = ("dir", m.mode, b"")
        else:
            assert m.isfile(), name
            out[path] = ("file", m.mode, ipk.data_file(name))
    return out


def apk_members(pkg: adb_reader.Package) -> dict[str, tuple[str, int, bytes]]:
    return {p: (m.kind, m.mode, m.data) for p, m in pkg.members.items()}


def test_make_apk_prints_the_two_packages(build: tuple[Path, str], tmp_path: Path) -> None:
    out, stdout = build
    assert sorted(p.name for p in out.glob("*.apk")) == [
        f"clat-eamt-{VERSION}.apk",
        f"luci-app-clat-eamt-{VERSION}.apk",
    ]
    for name in OWN:
        size = (out / f"{name}-{VERSION}.apk").stat().st_size
        assert re.search(rf"{re.escape(name)}-{VERSION}\.apk  {size:,} bytes\n", stdout), stdout
    # Debian 12 has no python3.13: without one (no download here) the modules as sources, said
    cache = tmp_path / "no-cache"
    args = ("--offline", "--python-cache", str(cache), "clat-eamt")
    done = run_builder(tmp_path, *args, path=debian12_path(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "as sources: no python3.13 here for bytecode" in done.stdout
    assert (tmp_path / f"clat-eamt-{VERSION}.apk").read_bytes() == (
        out / f"clat-eamt-{VERSION}.apk"
    ).read_bytes()
    assert not cache.exists()


@pytest.mark.parametrize("case", ["no apt-get", "unsigned index"])
def test_no_python313_to_be_had_gives_sources(
    case: str, build: tuple[Path, str], tmp_path: Path
) -> None:
    """The fetch of Debian 13's python3.13 failing (a tool missing; an index apt refuses, here a
    local mirror whose Release is unsigned: no network) says why, in one line, and the build
    goes on with the modules as sources."""
    mirror = tmp_path / "debian"
    (mirror / "dists" / "trixie").mkdir(parents=True)
    (mirror / "dists" / "trixie" / "Release").write_text("Suite: trixie\nCodename: trixie\n")
    without = ("apt-get",) if case == "no apt-get" else ()
    args = ("--python-cache", str(tmp_path / "cache"), "--debian-mirror", mirror.as_uri())
    done = run_builder(tmp_path / "out", *args, "clat-eamt", path=debian12_path(tmp_path, *without))
    assert done.returncode == 0, done.stderr
    why = (
        "apt-get missing"
        if without
        else f"'file:{re.escape(str(mirror))} trixie Release'.*not signed"
    )
    assert re.fullmatch(rf"apk: no python3\.13 for bytecode: .*{why}.*\n", done.stderr)
    assert "as sources: no python3.13 here for bytecode" in done.stdout
    file = f"clat-eamt-{VERSION}.apk"
    assert (tmp_path / "out" / file).read_bytes() == (build[0] / file).read_bytes()
    assert not (tmp_path / "cache" / "bin").exists()


def test_files_are_the_ipks_files(
    apks: dict[str, adb_reader.Package], ipks: dict[str, Ipk]
) -> None:
    """clat-eamt: the ipk's files but its bytecode, and clat-eamt-src's sources, moved from
    python3.11 to python3.13; luci-app-clat-eamt: the ipk's files.  Same bytes and modes;
    every directory 0755.  Plus lib/apk/packages/ (the next test)."""
    want = {
        p: v
        for p, v in ipk_members(ipks["clat-eamt"]).items()
        if not (p.startswith(SITE_IPK) and p.endswith(".pyc"))
    }
    want |= ipk_members(ipks["clat-eamt-src"])
    want = {re.sub(r"^usr/lib/python3\.11\b", "usr/lib/python3.13", p): v for p, v in want.items()}
    cases = {"clat-eamt": want, "luci-app-clat-eamt": ipk_members(ipks["luci-app-clat-eamt"])}
    for name, expected in cases.items():
        got = apk_members(apks[name])
        extra = {p for p in got if p.startswith(APK_FILES)} | {"lib", "lib/apk", APK_FILES[:-1]}
        assert set(got) - extra == set(expected) - extra, name
        for path, value in expected.items():
            assert got[path] == value, f"{name}: {path}"
        for path, m in apks[name].members.items():
            assert (m.user, m.group) == ("root", "root"), path
            assert m.mtime == (0 if m.kind == "dir" else EPOCH), path
            if m.kind == "dir":
                assert m.mode == 0o755, path
    modules = {p for p in want if p.startswith(SITE_APK) and p.endswith(".py")}
    assert len(modules) > 50  # the whole package, not a part of it
    assert not [p for p in apks["clat-eamt"].members if p.endswith(".pyc")]


def test_apk_database_files(apks: dict[str, adb_reader.Package], ipks: dict[str, Ipk]) -> None:
    """lib/apk/packages/NAME.list: every file and symlink but itself and the conffiles files;
    NAME.conffiles: the ipk's conffiles; NAME.conffiles_static: each with its sha256."""
    for name, pkg in apks.items():
        members = pkg.members
        own = {f"{APK_FILES}{name}.{kind}" for kind in ("list", "conffiles", "conffiles_static")}
        listed = sorted(f"/{p}" for p, m in members.items() if m.kind != "dir" and p not in own)
        assert members[f"{APK_FILES}{name}.list"].data.decode() == "".join(f"{p}\n" for p in listed)
    clat = apks["clat-eamt"].members
    conffiles = ipks["clat-eamt"].control_file("conffiles")
    assert clat[f"{APK_FILES}clat-eamt.conffiles"].data.decode() == conffiles
    digest = hashlib.sha256(clat["etc/config/clat-eamt"].data).hexdigest()
    assert clat[f"{APK_FILES}clat-eamt.conffiles_static"].data.decode() == (
        f"/etc/config/clat-eamt {digest}\n"
    )
    assert f"{APK_FILES}luci-app-clat-eamt.conffiles" not in apks["luci-app-clat-eamt"].members


def test_info_is_the_ipks_control(
    apks: dict[str, adb_reader.Package], ipks: dict[str, Ipk]
) -> None:
    for name, pkg in apks.items():
        control = ipks[name].control()
        info = pkg.info
        assert info["name"] == control["Package"] == name
        assert info["version"] == control["Version"] == VERSION
        assert info["arch"] == "noarch"  # PKGARCH all
        assert info["license"] == control["License"]
        assert info["origin"] == control["Source"]
        assert info["maintainer"] == control["Maintainer"]
        assert info.get("url", "") == control.get("URL", "")
        assert info["description"] == " ".join(control["Description"].split())
        # the same names: each is the same in 25.12's feeds (openwrt/apk.py)
        ipk_depends = [d.strip() for d in control["Depends"].split(",")]
        assert info["depends"] == sorted(ipk_depends)
        assert info["provides"] == [f"{name}-any"]
        sizes = sum(len(m.data) for m in pkg.members.values() if m.kind == "file")
        assert info["installed-size"] == sizes
        assert isinstance(info["hashes"], bytes) and len(info["hashes"]) == adb.IDENTITY_LEN
    assert "python3-ubus" in apks["clat-eamt"].info["depends"]


WRAP_POSTINST = """#!/bin/sh
[ "${{IPKG_NO_SCRIPT}}" = "1" ] && exit 0
[ -s ${{IPKG_INSTROOT}}/lib/functions.sh ] || exit 0
. ${{IPKG_INSTROOT}}/lib/functions.sh
export root="${{IPKG_INSTROOT}}"
export pkgname="{name}"
add_group_and_user
default_postinst
"""
WRAP_PRERM = """#!/bin/sh
[ -s ${{IPKG_INSTROOT}}/lib/functions.sh ] || exit 0
. ${{IPKG_INSTROOT}}/lib/functions.sh
export root="${{IPKG_INSTROOT}}"
export pkgname="{name}"
default_prerm
"""


def _own(ipk: Ipk, name: str) -> str:
    """The Makefile's script as the ipk carries it, without its #! line (sed '/^\\s*#!/d')."""
    try:
        text = ipk.control_file(name)
    except KeyError:
        return ""
    return "".join(ln for ln in text.splitlines(keepends=True) if not ln.lstrip().startswith("#!"))


def test_scripts_wrap_the_makefiles(
    apks: dict[str, adb_reader.Package], ipks: dict[str, Ipk], tmp_path: Path
) -> None:
    for name, pkg in apks.items():
        post_install = WRAP_POSTINST.format(name=name) + _own(ipks[name], "postinst-pkg")
        assert pkg.scripts == {
            "post-install": post_install,
            "post-upgrade": "#!/bin/sh\nexport PKG_UPGRADE=1\n"
            + post_install[len("#!/bin/sh\n") :],
            "pre-deinstall": WRAP_PRERM.format(name=name) + _own(ipks[name], "prerm-pkg"),
        }
        for kind, text in pkg.scripts.items():
            path = tmp_path / f"{name}.{kind}"
            path.write_text(text)
            subprocess.run(["sh", "-n", str(path)], check=True)
    # removal gives dnsmasq back (after default_prerm's stop, whose stop_service restores it)
    assert "/usr/lib/clat-eamt/dnsmasq.sh restore" in apks["clat-eamt"].scripts["pre-deinstall"]
    assert "killall -HUP rpcd" in apks["luci-app-clat-eamt"].scripts["post-install"]


def test_modules_import_from_the_sources(
    apks: dict[str, adb_reader.Package], tmp_path: Path
) -> None:
    site = tmp_path / SITE_APK
    for path, m in apks["clat-eamt"].members.items():
        if path.startswith(SITE_APK) and m.kind == "file":
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_bytes(m.data)
    assert imported_daemon(site, tmp_path) == site / "clat_eamt" / "daemon.py"


@pytest.mark.skipif(
    PYTHON313 is None,
    reason="no python3.13 on PATH nor fetched into build/python3.13 by `make apk` (no download"
    " in the tests): the sources path is tested",
)
def test_bytecode_with_python313(apks: dict[str, adb_reader.Package], tmp_path: Path) -> None:
    """With python3.13 (on PATH, or Debian 13's that `make apk` fetched) each module of the
    sources package is that Python's hash-based bytecode, as 25.12's SDK builds it: its magic
    number, the router's path inside, the same bytes on a second build, and that Python imports
    the daemon and the CLI from the bytecode alone."""
    assert PYTHON313 is not None
    bodies = []
    for run in ("1", "2"):
        done = run_builder(tmp_path / run, "--offline", "--python-cache", str(CACHE), "clat-eamt")
        assert done.returncode == 0, done.stderr
        note = r"\(Python modules as 3\.13 bytecode: .*python3\.13 3\.13\.\d+\)"
        assert re.search(note, done.stdout)
        bodies.append((tmp_path / run / f"clat-eamt-{VERSION}.apk").read_bytes())
    assert bodies[0] == bodies[1]
    pkg = adb_reader.read_package(bodies[0])
    want = {re.sub(r"\.py$", ".pyc", p) for p in apks["clat-eamt"].members}
    assert {p for p in pkg.members if not p.startswith(APK_FILES)} == {
        p for p in want if not p.startswith(APK_FILES)
    }
    probe = "import importlib.util as u, sys; print(u.MAGIC_NUMBER.hex(), sys.version_info[:2])"
    done = subprocess.run([PYTHON313, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split(" ", 1)[1].strip() == "(3, 13)"
    magic = bytes.fromhex(done.stdout.split()[0])
    modules = {p: m.data for p, m in pkg.members.items() if p.endswith(".pyc")}
    assert len(modules) > 50
    for path, body in modules.items():
        assert body[:4] == magic, path
        assert int.from_bytes(body[4:8], "little") & 1, path  # PEP 552: hash-based
        assert f"/{path[:-1]}".encode() in body, path  # compileall -d /: the router's path
        (tmp_path / "root" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "root" / path).write_bytes(body)
    site = tmp_path / "root" / SITE_APK
    assert imported_daemon(site, tmp_path, PYTHON313) == site / "clat_eamt" / "daemon.pyc"


def test_reproducible(build: tuple[Path, str], tmp_path: Path) -> None:
    done = run_builder(tmp_path, "--sources")
    assert done.returncode == 0, done.stderr
    for name in OWN:
        file = f"{name}-{VERSION}.apk"
        assert (tmp_path / file).read_bytes() == (build[0] / file).read_bytes(), name


# -- the format: writer and reader on their own ------------------------------------------------

SAMPLE = [
    adb.Member("", "dir", 0o755),
    adb.Member("etc", "dir", 0o700, user="nobody", group="nogroup"),
    adb.Member("etc/b", "file", 0o600, b"", 1),
    adb.Member("etc/a", "file", 0o644, b"x" * 300, 1),
    adb.Member("etc/link", "symlink", 0o777, b"a", 1),
    adb.Member("big", "file", 0o755, bytes(range(256)) * 300, 0x12345678),
]


def test_round_trip() -> None:
    """Blobs of 1, 2 and 4 length bytes, an int of 4 bytes, an empty file (no data block), a
    symlink, dependencies sorted by name without repeats."""
    info = {"name": "t", "version": "1.0-r1", "depends": ["b", "a", "b", "c=2"], "arch": "noarch"}
    pkg = adb_reader.read_package(adb.write_package(info, {"post-install": "#!/bin/sh\n"}, SAMPLE))
    assert pkg.members == {m.path: m for m in SAMPLE}
    assert list(pkg.members) == ["", "big", "etc", "etc/a", "etc/b", "etc/link"]
    assert pkg.info["depends"] == ["a", "b", "c=2"]
    assert pkg.info["installed-size"] == 300 + 256 * 300
    assert pkg.scripts == {"post-install": "#!/bin/sh\n"}


def _stream(apk: bytes) -> bytes:
    return adb_reader.decompress(apk)


def _pack(stream: bytes) -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    return b"ADBd" + deflate.compress(stream) + deflate.flush()


def test_reader_rejects_damage() -> None:
    good = adb.write_package({"name": "t", "version": "1"}, {}, SAMPLE)
    stream = bytearray(_stream(good))
    assert adb_reader.read_package(_pack(bytes(stream))).members  # recompressed, still good
    damaged = bytearray(stream)
    damaged[-5] ^= 1  # inside the last data block
    with pytest.raises(adb.FormatError, match="sha256"):
        adb_reader.read_package(_pack(bytes(damaged)))
    with pytest.raises(adb.FormatError):
        adb_reader.read_package(good[: len(good) // 2])
    adb_len = struct.unpack_from("<I", stream, 8)[0] & 0x3FFFFFFF
    adb_len += -adb_len % 8
    first, rest = stream[8 + adb_len :], stream[: 8 + adb_len]
    size = struct.unpack_from("<I", first)[0] & 0x3FFFFFFF
    size += -size % 8
    swapped = rest + first[size:] + first[:size]  # the two data blocks swapped
    with pytest.raises(adb.FormatError, match="out of order"):
        adb_reader.read_package(_pack(bytes(swapped)))
    renamed = bytes(stream).replace(b"\x01t", b"\x01u", 1)  # the name: the identity no longer
    with pytest.raises(adb.FormatError, match="identity"):
        adb_reader.read_package(_pack(renamed))
    with pytest.raises(adb.FormatError, match="not an apk v3"):
        adb_reader.read_package(b"\x1f\x8b" + good)


def test_writer_refuses_what_it_cannot_write() -> None:
    with pytest.raises(adb.FormatError, match="computed"):
        adb.write_package({"name": "t", "installed-size": 1}, {}, SAMPLE)
    with pytest.raises(adb.FormatError, match="no root"):
        adb.write_package({"name": "t"}, {}, SAMPLE[1:])
    with pytest.raises(adb.FormatError, match="not in the package"):
        adb.write_package({"name": "t"}, {}, [SAMPLE[0], adb.Member("x/y", "file", 0o644)])
