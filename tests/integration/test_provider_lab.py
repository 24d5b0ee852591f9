"""Issue 28 in the lab: the operator's table, fetched over HTTPS from a server in the lab's
internet, steers an IPv4-only client whose DNS never passes the router; tampered, foreign-key
and lower-serial tables are refused and the entries in place stay until their TTL.

The home router of the lab (routerkit: clat-eamt behind dnsmasq on an external CLAT) with
``provider_url`` on an HTTPS server in ``inet`` whose certificate a test CA signed; the router
trusts that CA (``provider_ca``).  usign and uclient-fetch do not run here: the daemon finds
STAND-INS first on its PATH (tests/unit/standin_provider: signify-openbsd for usign, wget for
uclient-fetch; their rules in their headers).  Keys and signatures are made with
signify-openbsd as an operator makes them with usign.  The client's resolver is one outside
the home (a set-top box with a hand-set public resolver): it asks the zone's server
(192.0.2.53) itself, through the CLAT and the NAT64, past dnsmasq and the proxy, so the router
never sees its DNS.  (The ISP's own resolver listens on IPv6 only, which an IPv4-only client
cannot reach; what matters is that the question never passes the router.)  Everything is
judged from outside: who the echo server saw (the CLAT's IPv6: native; the NAT64's IPv4:
translated twice), the daemon's status over its socket.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clat_eamt.control.client import call
from tests.integration.proxykit import uci
from tests.integration.routerkit import CLAT_IPV6, NAT64_PEER, Router, home_router
from tests.labkit import LAB
from tests.labkit.client import answers, query
from tests.labkit.require import LAB_TOOLS, SERVER_TOOLS, require_root, require_tools
from tests.labkit.xlatnet import INET_ISP_ADDR6, KNOT_ADDR
from tests.unit.test_provider_shell import STANDINS, make_key, sign

pytestmark = pytest.mark.lab

DS4, DS6 = LAB.rdata("ds", "A")[0], LAB.rdata("ds", "AAAA")[0]  # 192.0.2.10, 2001:db8:1::10
HTTPS_PORT = 8443
TTL = 25  # seconds the first table's entry lives: long enough for the refusals, then it ends
_SERVER = Path(__file__).with_name("_https_files.py")


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(where: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for the HTTPS server's IPv6 address: (CA, cert, key)."""
    where.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (where / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr",
                                                     "srv.pem"))  # fmt: skip
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    openssl("req", "-x509", *curve, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
            "-subj", "/CN=clat-eamt lab CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    openssl("req", *curve, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=isp-table")
    ext = where / "srv.ext"
    ext.write_text(f"subjectAltName=IP:{INET_ISP_ADDR6}\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca, cert, key


def table(serial: int, *entries: str) -> bytes:
    return "\n".join([f"serial {serial}", "refresh 3600", *entries, ""]).encode()


class Operator:
    """The operator's side: its key, another key, and the files its HTTPS server serves."""

    def __init__(self, where: Path) -> None:
        self.where, self.www = where, where / "www"
        self.www.mkdir(parents=True)
        self.key, self.secret = make_key(where, "operator")
        self.other_key, self.other_secret = make_key(where, "other")
        self.base = f"https://[{INET_ISP_ADDR6}]:{HTTPS_PORT}"
        self.ca = self.other_ca = Path()  # the CA of its server's certificate, and another

    def publish(self, name: str, data: bytes, signed: bytes | None = None, *, other=False) -> str:
        """Serve ``data`` as ``name`` with the signature of ``signed`` (default: of ``data``),
        by the operator's key or the other one; the URL."""
        (self.www / name).write_bytes(data)
        secret = self.other_secret if other else self.secret
        (self.www / f"{name}.sig").write_text(sign(self.where, signed or data, secret))
        return f"{self.base}/{name}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Router, Operator]]:
    require_root()
    require_tools(*SERVER_TOOLS, *LAB_TOOLS, "signify-openbsd", "wget", "openssl")
    work = tmp_path_factory.mktemp("provider")
    operator = Operator(work / "operator")
    ca, cert, key = make_ca(work)
    operator.ca, operator.other_ca = ca, make_ca(work / "other")[0]
    url = operator.publish("table", table(10, f"{DS4} {DS6} ttl={TTL} # the CDN"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ['PATH']}")  # the daemon's
        # Fetched once the HTTPS server is up: a reload with the URL (a new URL is fetched at
        # once). IPv4-only hosts are told from the neighbour tables, as on a router.
        options = {
            "provider_key": operator.key,
            "provider_ca": str(ca),
            "host_mode": "ipv4-only",
            "host_observe": "0",
            "lan_interface": ["br-lan"],
        }
        with home_router(work / "lab", **options) as router:  # fmt: skip
            lab = router.lab
            log = lab.workdir / "logs" / "https.log"
            lab.procs.start(
                "https",
                [
                    sys.executable,
                    str(_SERVER),
                    "--addr",
                    INET_ISP_ADDR6,
                    "--port",
                    str(HTTPS_PORT),
                    "--dir",
                    str(operator.www),
                    "--cert",
                    str(cert),
                    "--key",
                    str(key),
                ],
                netns=lab.inet.name,
                ready=lambda: log.exists() and "listening" in log.read_text(),
            )
            classify(router)
            reload_with(router, url)
            yield router, operator


def classify(router: Router) -> None:
    """lan known as IPv4-only (its own DNS query, past the router, makes it a neighbour) and
    lan6 as dual-stack, from the router's neighbour tables."""
    lab = router.lab
    query(KNOT_ADDR, 53, "lab.example", "SOA", netns=lab.lan, timeout=5)
    router.resolve(lab.lan6, "lab.example")
    with lab.flow(lab.lan6, DS6):
        pass
    socket = router.options["control_socket"]
    want = {"ipv4_only": 1, "dual_stack": 1, "unsure": False, "error": None}
    router.wait(lambda: call(socket, "status")["hosts"] == want, "both clients classified")


def provider(router: Router) -> dict[str, Any]:
    return dict(call(router.options["control_socket"], "status")["provider"])


def offers(router: Router) -> int:
    """How many tables the daemon judged (taken or refused), from its counters."""
    counters = call(router.options["control_socket"], "status")["counters"]
    return int(counters.get("provider.taken", 0) + counters.get("provider.refused", 0))


def reload_with(router: Router, url: str, timeout: float = 15.0, **options: str) -> dict[str, Any]:
    """Point provider_url elsewhere (and set ``options``) and reload (SIGHUP): a new URL is
    fetched at once; the provider's status once that table was judged."""
    router.options.update(options, provider_url=url)
    router.config.write_text(uci(router.options))
    before = offers(router)
    os.kill(router.proc.pid, signal.SIGHUP)
    router.wait(lambda: offers(router) > before, f"the table at {url} judged", timeout)
    return provider(router)


def peer(router: Router, client: Any) -> str:
    with router.lab.flow(client, DS4) as flow:
        return str(router.lab.accepted(flow.tag)["peer"])


def test_the_operators_table_steers_a_client_whose_dns_bypasses_the_router(setup) -> None:
    router, operator = setup
    status = provider(router)
    assert status["last"]["result"] == "taken", status
    assert (status["serial"], status["entries"], status["installed"]) == (10, 1, 1)
    assert status["signed"] and status["url"] == f"{operator.base}/table"
    https = (router.lab.workdir / "logs" / "https.log").read_text()
    assert '"/table"' in https and '"/table.sig"' in https  # fetched over HTTPS, with its .sig
    lab = router.lab
    # The client's own resolver: the zone's server, through the CLAT and the NAT64.
    reply = query(KNOT_ADDR, 53, "ds.lab.example", "A", netns=lab.lan, timeout=5)
    assert answers(reply, "A") == [DS4]
    assert router.decisions("ds.lab.example") == []  # the router never saw that question
    assert router.dnat_elements().get(DS4), router.dnat_elements()
    assert peer(router, lab.lan) == CLAT_IPV6  # native: the server sees the CLAT's IPv6
    assert peer(router, lab.lan6) == NAT64_PEER  # a dual-stack host is never steered


def test_bad_tables_are_refused_and_the_entry_stays_until_its_ttl(setup) -> None:
    router, operator = setup
    assert provider(router)["serial"] == 10
    started = time.monotonic()
    newer = table(11, f"{DS4} 2001:db8:1::99 ttl=600")
    good = operator.publish("good", newer)  # signed right, but the router trusts another CA
    status = reload_with(router, good, provider_ca=str(operator.other_ca))
    assert status["last"]["result"] == "refused", status
    assert "certificate is not trusted" in status["last"]["error"], status
    assert (status["serial"], status["installed"]) == (10, 1), status
    router.options["provider_ca"] = str(operator.ca)  # the right CA again, from the next case
    cases = [
        (operator.publish("tampered", newer, table(11, f"{DS4} {DS6} ttl=600")),
         "verification failed"),
        (operator.publish("foreign", newer, other=True), "signed with key"),
        (operator.publish("older", table(9, f"{DS4} 2001:db8:1::99 ttl=600")), "lower than 10"),
    ]  # fmt: skip
    for url, why in cases:
        status = reload_with(router, url)
        assert status["last"]["result"] == "refused" and why in status["last"]["error"], status
        assert (status["serial"], status["installed"]) == (10, 1), status
        assert router.dnat_elements().get(DS4), "the entry in place went with a refused table"
        assert peer(router, router.lab.lan) == CLAT_IPV6
    assert time.monotonic() - started < TTL - 3, "too slow to show the entry before its end"
    router.wait(lambda: not router.dnat_elements().get(DS4), "the entry's end", timeout=TTL + 10)
    assert provider(router)["installed"] == 0
    assert peer(router, router.lab.lan) == NAT64_PEER  # new flows take the NAT64 again
    https = (router.lab.workdir / "logs" / "https.log").read_text()
    assert '"/foreign"' in https and '"/older.sig"' in https
    assert '"/good"' not in https  # the untrusted server was never asked (TLS failed first)
