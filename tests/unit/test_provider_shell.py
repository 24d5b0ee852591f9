"""The operator's table's shell (``clat_eamt.provider``): fetching with the router's fetcher and
checking the signature with the router's verifier, both run as child processes.

usign and uclient-fetch do not run on these machines: the tests put STAND-INS first on PATH
(tests/unit/standin_provider: ``usign`` runs Debian's signify-openbsd, whose files usign reads
and writes; ``uclient-fetch`` runs Debian's wget with the options uclient-fetch takes; the rules
they keep are in their headers).  Keys and signatures are made with signify-openbsd, as an
operator would make them with ``usign -G`` / ``usign -S``.  The server is on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import http.server
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from clat_eamt.provider import ProviderError, fetch, fetch_table, read_table, signature_of, verify
from tests.labkit.require import require_tools

STANDINS = Path(__file__).resolve().parent / "standin_provider"
TABLE = b"serial 1\nrefresh 60\n192.0.2.1 2001:db8:1::1 ttl=60\n"


@pytest.fixture(autouse=True)
def standins_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    require_tools("signify-openbsd", "wget")
    monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ['PATH']}")


def make_key(where: Path, name: str) -> tuple[str, Path]:
    """A signify key pair (usign -G's format): the public key's base64 line, the secret key."""
    pub, sec = where / f"{name}.pub", where / f"{name}.sec"
    subprocess.run(
        ["signify-openbsd", "-G", "-n", "-p", str(pub), "-s", str(sec), "-c", name], check=True
    )
    return pub.read_text().splitlines()[1], sec


def sign(where: Path, data: bytes, secret: Path) -> str:
    message = where / "message"
    message.write_bytes(data)
    sig = where / "message.sig"
    subprocess.run(
        ["signify-openbsd", "-S", "-s", str(secret), "-m", str(message), "-x", str(sig)],
        check=True,
    )
    return sig.read_text()


def run(coro):
    return asyncio.run(coro)


def test_a_good_signature_passes_and_its_base64_line_alone_too(tmp_path: Path) -> None:
    key, secret = make_key(tmp_path, "operator")
    sig = sign(tmp_path, TABLE, secret)
    run(verify(TABLE, sig, key))
    run(verify(TABLE, sig.splitlines()[1], key))


def test_a_tampered_table_another_key_or_no_signature_is_refused(tmp_path: Path) -> None:
    key, secret = make_key(tmp_path, "operator")
    other_key, other_secret = make_key(tmp_path, "other")
    sig = sign(tmp_path, TABLE, secret)
    with pytest.raises(ProviderError, match="verification failed"):
        run(verify(TABLE.replace(b"ttl=60", b"ttl=61"), sig, key))
    with pytest.raises(ProviderError, match=r"signed with key .*, not provider_key's"):
        run(verify(TABLE, sign(tmp_path, TABLE, other_secret), key))
    with pytest.raises(ProviderError, match="not a usign signature"):
        run(verify(TABLE, "", key))
    with pytest.raises(ProviderError, match="not a usign signature"):
        signature_of("untrusted comment: x\nRWRj\n")
    assert other_key != key


def test_the_verifier_itself_refuses_a_forged_key_number(tmp_path: Path) -> None:
    """A signature by another key carrying our key's number passes the number check and is
    refused by the verifier (usign checks the Ed25519 signature against the key given)."""
    key, _ = make_key(tmp_path, "operator")
    _, other_secret = make_key(tmp_path, "other")
    forged = signature_of(sign(tmp_path, TABLE, other_secret))
    number = base64.b64decode(key)[2:10]
    line = base64.b64encode(forged[:2] + number + forged[10:]).decode()
    with pytest.raises(ProviderError, match="verification failed"):
        run(verify(TABLE, line, key))


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(root: Path) -> Iterator[str]:
    handler = functools.partial(_Files, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetched_with_its_signature_and_refused_without(tmp_path: Path) -> None:
    key, secret = make_key(tmp_path, "operator")
    root = tmp_path / "www"
    root.mkdir()
    (root / "t").write_bytes(TABLE)
    with serving(root) as base:
        assert run(fetch(base + "/t")) == TABLE
        with pytest.raises(ProviderError, match=r"no signature: .*HTTP error"):
            run(fetch_table(base + "/t", key, "", 100))
        (root / "t.sig").write_text(sign(tmp_path, TABLE, secret))
        assert run(fetch_table(base + "/t", key, "", 100)).serial == 1
        (root / "t").write_bytes(TABLE + b"192.0.2.2 2001:db8:1::2 ttl=60\n")  # tampered
        with pytest.raises(ProviderError, match="verification failed"):
            run(fetch_table(base + "/t", key, "", 100))
        assert len(run(fetch_table(base + "/t", "", "", 100)).entries) == 2  # no key: unsigned
        with pytest.raises(ProviderError, match="HTTP error"):
            run(fetch(base + "/missing"))
        (root / "big").write_bytes(b"#" * 5000)
        with pytest.raises(ProviderError, match="more than 4096 bytes"):
            run(fetch(base + "/big", limit=4096))
    with pytest.raises(ProviderError, match="connection failed"):
        run(fetch(base + "/t"))  # the server is gone


def test_a_pushed_table_needs_its_signature_when_a_key_is_set_and_is_read_strictly(
    tmp_path: Path,
) -> None:
    key, secret = make_key(tmp_path, "operator")
    with pytest.raises(ProviderError, match="no signature, and provider_key is set"):
        run(read_table(TABLE, None, key, 100))
    assert run(read_table(TABLE, sign(tmp_path, TABLE, secret), key, 100)).serial == 1
    bad = TABLE + b"192.0.2.0/24 2001:db8::/64 ttl=5\n"
    with pytest.raises(ProviderError, match=r"line 4: .*host bits"):
        run(read_table(bad, sign(tmp_path, bad, secret), key, 100))


def test_a_missing_fetcher_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ProviderError, match="cannot run uclient-fetch"):
        run(fetch("https://isp.example/t"))
