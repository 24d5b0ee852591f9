"""Another Debian release's CPython, fetched with apt-get, to compile bytecode for OpenWrt.

OpenWrt 25.12 runs Python 3.13 and Debian 12 packages 3.11 only; Debian 13 (trixie) packages
3.13.  Bytecode is only valid for the Python version that wrote it, so openwrt/apk.py compiles
with trixie's python3.13, got the ordinary way and installed nowhere:

- the mirror is the one the host's apt sources name for its own release (`apt-get indextargets`:
  the REPO_URI of the entry whose suite is /etc/os-release's VERSION_CODENAME, or stable and
  the like), read at run time, or --debian-mirror;
- a private apt configuration under the cache directory (a sources list with trixie's main
  component for the host's architecture, signed-by the Debian archive keyring, so apt checks the
  Release signature and every package's hash as it always does; its own state, cache and an
  empty dpkg status; the host's apt.conf otherwise, e.g. a proxy) runs `apt-get update` (the one
  Packages index, no translations) and `apt-get download` of the interpreter, its standard
  library and the libraries its binary links (ELF NEEDED: libc, libm, libz, libexpat);
- `dpkg-deb -x` unpacks them into CACHE/root; CACHE/bin/pythonX.Y runs that interpreter through
  trixie's own dynamic loader with the unpacked libraries (`ld-linux... --library-path`) and
  PYTHONHOME, so the host's older libc is never mixed in.

A pythonX.Y on PATH wins over the cache, the cache over a download.  Once fetched, the cache is
reused as it is: the same interpreter, the same bytecode on every run.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

# The Debian release that packages each Python version OpenWrt needs, and what to download:
# python3.X-minimal's Depends and Pre-Depends, plus the standard library (the tests import the
# daemon with it; compileall alone needs only the -minimal parts).
SUITES = {"3.13": "trixie"}
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LIBRARIES = ("libc6", "zlib1g", "libexpat1")
TIMEOUT = 600  # seconds for each apt-get run (the download is about 18 MB)


class FetchError(Exception):
    """Why the interpreter could not be fetched (a message for the user, no traceback)."""


def packages(version: str) -> tuple[str, ...]:
    return (
        f"python{version}-minimal",
        f"libpython{version}-minimal",
        f"libpython{version}-stdlib",
        *LIBRARIES,
    )


def wrapper(version: str, cache: Path) -> Path:
    return cache / "bin" / f"python{version}"


def probe(command: str) -> str | None:
    """The full version (e.g. 3.13.5) `command` runs, or None if it does not run."""
    argv = [command, "-c", "import sys; print(*sys.version_info[:3], sep='.')"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def find(version: str, cache: Path) -> str | None:
    """A command running Python `version`: pythonX.Y on PATH, else the cached one, else None."""
    for command in (shutil.which(f"python{version}"), str(wrapper(version, cache))):
        if command and os.access(command, os.X_OK):
            full = probe(command)
            if full and full.rsplit(".", 1)[0] == version:
                return command
    return None


def host_mirror() -> str:
    """The Debian mirror of the host's apt sources (the entry for its own release)."""
    codename = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                codename = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    fmt = "$(REPO_URI) $(RELEASE) $(TARGET_OF)"
    done = _run(["apt-get", "indextargets", "--format", fmt], None, "read the apt sources")
    own = {codename, "stable", "oldstable", "testing", "unstable"}  # not -security, -updates
    for line in done.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in own and fields[2] == "deb":
            return fields[0]
    raise FetchError(f"no Debian mirror for {codename or 'this release'} in the apt sources")


def fetch(version: str, cache: Path, mirror: str | None, log: Callable[[str], None]) -> str:
    """Download Debian's Python `version` into `cache`; the command that runs it."""
    suite = SUITES.get(version)
    if suite is None:
        raise FetchError(f"no Debian release known to package python{version}")
    missing = [tool for tool in ("apt-get", "dpkg", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise FetchError(f"{', '.join(missing)} missing (a Debian host fetches it with apt-get)")
    if not Path(KEYRING).is_file():
        raise FetchError(f"{KEYRING} missing (apt-get install debian-archive-keyring)")
    mirror = mirror or host_mirror()
    arch = _run(["dpkg", "--print-architecture"], None, "read the architecture").strip()
    where = f"from {mirror} into {os.path.relpath(cache)}"
    log(f"fetching Debian {suite}'s python{version} ({arch}) {where}")
    apt, debs, root = cache / "apt", cache / "debs", cache / "root.new"
    for old in (apt, debs, root, cache / "root", cache / "bin"):  # a run cut short, or stale
        shutil.rmtree(old, ignore_errors=True)
    for part in (apt / "parts", apt / "lists" / "partial", apt / "archives" / "partial", debs):
        part.mkdir(parents=True)
    (apt / "status").write_text("")
    (apt / "preferences").write_text("")
    line = f"deb [arch={arch} signed-by={KEYRING}] {mirror} {suite} main\n"
    (apt / "sources.list").write_text(line)
    options = {
        "Dir::Etc::SourceList": apt / "sources.list",
        "Dir::Etc::SourceParts": apt / "parts",
        "Dir::Etc::Preferences": apt / "preferences",
        "Dir::Etc::PreferencesParts": apt / "parts",
        "Dir::State": apt,
        "Dir::State::status": apt / "status",
        "Dir::Cache": apt,
        "Dir::Cache::pkgcache": "",
        "Dir::Cache::srcpkgcache": "",
        "Acquire::Languages": "none",
        "Acquire::AllowInsecureRepositories": "false",
        "APT::Get::AllowUnauthenticated": "false",
        "APT::Update::Error-Mode": "any",  # a failed index is an error, not a warning
        "APT::Sandbox::User": "root",  # the private directories are not _apt's
    }
    apt_get = ["apt-get", "-q"] + [f"-o{key}={value}" for key, value in options.items()]
    _run([*apt_get, "update"], None, f"read {suite}'s package index from {mirror}")
    _run([*apt_get, "download", *packages(version)], debs, f"download python{version}")
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(root)], None, f"unpack {deb.name}")
    command = _install_wrapper(version, cache, root)
    full = probe(command)
    if not full or full.rsplit(".", 1)[0] != version:
        raise FetchError(f"the fetched python{version} does not run here ({command})")
    versions = [
        _run(["dpkg-deb", "-f", str(deb), "Package", "Version"], None, "read a package")
        for deb in sorted(debs.glob("*.deb"))
    ]
    (cache / "packages.txt").write_text("".join(versions))
    shutil.rmtree(apt)
    shutil.rmtree(debs)
    return command


def _install_wrapper(version: str, cache: Path, unpacked: Path) -> str:
    root = cache / "root"
    unpacked.rename(root)
    loaders = sorted(root.glob("usr/lib*/ld-linux*.so.*")) + sorted(root.glob("lib*/ld-linux*"))
    libc = sorted(root.glob("usr/lib/*/libc.so.6")) + sorted(root.glob("lib/*/libc.so.6"))
    binary = root / "usr" / "bin" / f"python{version}"
    if not (loaders and libc and binary.is_file()):
        raise FetchError(f"the downloaded packages lack python{version}, libc or its loader")
    script = wrapper(version, cache)
    script.parent.mkdir(parents=True, exist_ok=True)
    q = shlex.quote
    script.write_text(
        "#!/bin/sh\n"
        f"# Debian's python{version} as openwrt/debian_python.py fetched it, on its own libc.\n"
        f"PYTHONHOME={q(str(root / 'usr'))} exec {q(str(loaders[0]))} "
        f'--library-path {q(str(libc[0].parent))} {q(str(binary))} "$@"\n'
    )
    script.chmod(0o755)
    return str(script)


def _run(argv: list[str], cwd: Path | None, what: str) -> str:
    try:
        done = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise FetchError(f"cannot {what}: {error}") from None
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise FetchError(f"cannot {what}: {' / '.join(lines[-3:]) or f'exit {done.returncode}'}")
    return done.stdout
