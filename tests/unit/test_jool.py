"""The Jool SIIT backend against jool_siit's documented CLI.

Jool's kernel module cannot be loaded on these machines (SPEC 7), so ``FakeJool`` stands in for
``jool_siit``: it records every argv, accepts only the documented syntax (Jool 4.x: the jool_siit(8)
man page, docs/en/usr-flags-eamt.md and usr-flags-instance.md of NICMx/Jool), keeps an EAMT with
the kernel's collision rules (src/mod/common/db/eam.c: no two entries with the same IPv4 or the
same IPv6 prefix), and answers in the documented output formats.  The texts below were written
from that documentation, not captured from a running Jool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network

import pytest

from clat_eamt.dataplane.jool import JoolSiit, parse_eamt_csv
from clat_eamt.dataplane.process import CommandResult, TranslatorError

N4 = IPv4Network
N6 = IPv6Network
POOL = N4("198.51.100.128/25")
P1, P2, P3 = N4("198.51.100.129/32"), N4("198.51.100.130/32"), N4("198.51.100.131/32")
X1, X2, X3 = N6("2001:db8:1::10/128"), N6("2001:db8:2::20/128"), N6("2001:db8:3::30/128")
# Someone else's: the CLAT's own mapping (OpenWrt jool_clat) and a host outside the pool.
FOREIGN = {N4("192.0.2.0/31"): N6("2001:db8:464::/127"), N4("198.51.100.5/32"): N6("2001:db8::5")}

# `eamt display --csv`: "IPv6 Prefix,IPv4 Prefix" then "X/len,P/len" per entry (client source
# src/usr/argp/wargp/eamt.c; the docs link a sample eamt.csv); `--no-headers` drops the header.
CSV_HEADER = "IPv6 Prefix,IPv4 Prefix\n"
# `global display --csv`: "Field,Value" then "key,value" lines (usr-flags-global.md keys).
GLOBAL_CSV = "Field,Value\nmanually-enabled,true\npool6,64:ff9b::/96\n"
# Issue NICMx/Jool#312, verbatim as jool_siit prints it when the module is not loaded.
NO_MODULE = (
    "Error: Jool's socket family doesn't seem to exist.\n"
    "(This probably means Jool hasn't been modprobed.)\n"
    "Netlink error message: Object not found\n"
)
# The kernel's text (src/mod/common/nl/nl_common.c, seen in dmesg in NICMx/Jool#424), as the
# client relays a kernel error (src/usr/nl/core.c: "The kernel module returned error %u: %s").
NO_INSTANCE = (
    "Error: The kernel module returned error 3: This namespace lacks an instance named '{}'.\n"
)
# iproute2 6.1 (measured here): a missing namespace, and a missing program under netns exec.
NO_NETNS = 'Cannot open network namespace "{}": No such file or directory\n'
NO_PROGRAM = 'exec of "jool_siit" failed: No such file or directory\n'


def ok(stdout: str = "") -> CommandResult:
    return CommandResult(0, stdout, "")


class FakeJool:
    """A jool_siit that knows the documented grammar and one instance's EAMT."""

    def __init__(self, instance: str = "clat", netns: str | None = None) -> None:
        self.instance, self.netns = instance, netns
        self.table: dict[N6, N4] = {x: p for p, x in FOREIGN.items()}
        self.calls: list[list[str]] = []
        self.fail: dict[str, CommandResult] = {}  # " ".join(jool args) -> forced answer
        self.headers = True

    async def __call__(self, argv: Sequence[str], input: str | None = None) -> CommandResult:
        assert input is None  # jool_siit reads nothing on stdin here
        argv = list(argv)
        self.calls.append(argv)
        if self.netns is not None:
            assert argv[:4] == ["ip", "netns", "exec", self.netns], argv
            argv = argv[4:]
        assert argv[:3] == ["jool_siit", "-i", self.instance], argv
        args = argv[3:]
        if " ".join(args) in self.fail:
            return self.fail[" ".join(args)]
        match args:
            case ["global", "display", "--csv"]:
                return ok(GLOBAL_CSV)
            case ["eamt", "display", "--csv", *rest] if rest in ([], ["--no-headers"]):
                rows = "".join(f"{x},{p}\n" for x, p in self.table.items())
                return ok((CSV_HEADER if self.headers and not rest else "") + rows)
            case ["eamt", "add", six, four] if ":" in six and "." in four:
                x, p = N6(six), N4(four)
                for ox, op in self.table.items():
                    if ox == x or op == p:
                        said = f"Existing EAM [{ox}|{op}] already contains prefix {p}."
                        return CommandResult(
                            1, "", f"Error: The kernel module returned error 17: {said}\n"
                        )
                self.table[x] = p
                return ok()
            case ["eamt", "remove", six, four] if ":" in six and "." in four:
                x, p = N6(six), N4(four)
                if self.table.get(x) != p:
                    return CommandResult(
                        1, "", "Error: The kernel module returned error 3: No such process\n"
                    )
                del self.table[x]
                return ok()
        raise AssertionError(f"not jool_siit's documented syntax: {argv}")

    def ours(self) -> dict[N4, N6]:
        return {p: x for x, p in self.table.items() if p.subnet_of(POOL)}

    def jool_args(self) -> list[list[str]]:
        return [call[call.index("-i") + 2 :] for call in self.calls]


def backend(fake: FakeJool) -> JoolSiit:
    return JoolSiit(fake.instance, POOL, netns=fake.netns, runner=fake)


# --- start ---------------------------------------------------------------------------------------


def test_start_asks_the_instance_by_name() -> None:
    """Against the documented syntax: `jool_siit -i NAME global display` (jool_siit(8))."""
    fake = FakeJool()
    asyncio.run(backend(fake).start())
    assert fake.calls == [["jool_siit", "-i", "clat", "global", "display", "--csv"]]


@pytest.mark.parametrize(
    "answer",
    [
        FileNotFoundError(2, "No such file or directory"),
        TranslatorError("jool_siit: No such file or directory"),  # run_command's form
        CommandResult(127, "", "sh: jool_siit: not found\n"),
    ],
)
def test_start_without_jool_siit_says_install_it(answer: object) -> None:
    """A missing jool_siit, as the runner or a shell reports it; the hint names the OpenWrt
    package that ships it (openwrt/packages net/jool/Makefile: jool-tools-netfilter)."""

    async def runner(argv: Sequence[str], input: str | None = None) -> CommandResult:
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, CommandResult)
        return answer

    with pytest.raises(TranslatorError, match=r"jool_siit is not installed.*jool-tools"):
        asyncio.run(JoolSiit("clat", POOL, runner=runner).start())


def test_runner_failures_name_the_step_or_the_missing_ip() -> None:
    """A runner that gives up (run_command's timeout) or finds no `ip` for the documented
    `ip netns exec NS jool_siit ...`."""

    async def slow(argv: Sequence[str], input: str | None = None) -> CommandResult:
        raise TranslatorError(f"{argv[0]}: no result in 10 s")

    async def no_ip(argv: Sequence[str], input: str | None = None) -> CommandResult:
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    with pytest.raises(TranslatorError, match=r"^reading the EAMT: jool_siit: no result in 10 s$"):
        asyncio.run(JoolSiit("clat", POOL, runner=slow).entries())
    with pytest.raises(TranslatorError, match=r"^ip is not installed .*ip-full"):
        asyncio.run(JoolSiit("clat", POOL, netns="clatns", runner=no_ip).start())


def test_start_with_the_real_runner_and_no_binary() -> None:
    """The real run_command with a jool_siit that does not exist (no Jool on these machines)."""
    jool = JoolSiit("clat", POOL, binary="/nonexistent/clat-eamt-test/jool_siit")
    with pytest.raises(TranslatorError, match="not installed"):
        asyncio.run(jool.start())


def test_start_without_the_module_says_modprobe() -> None:
    """Against Jool's documented error text for an unloaded module (NICMx/Jool#312)."""
    fake = FakeJool()
    fake.fail["global display --csv"] = CommandResult(1, "", NO_MODULE)
    with pytest.raises(TranslatorError, match=r"kernel module is not loaded.*modprobe jool_siit"):
        asyncio.run(backend(fake).start())


def test_start_without_the_instance_says_create_it() -> None:
    """Against the kernel's text for a missing instance (nl_common.c, NICMx/Jool#424)."""
    fake = FakeJool(netns="clatns")
    fake.fail["global display --csv"] = CommandResult(1, "", NO_INSTANCE.format("clat"))
    with pytest.raises(TranslatorError) as caught:
        asyncio.run(backend(fake).start())
    said = str(caught.value)
    assert "no Jool SIIT instance 'clat' in network namespace clatns" in said
    assert "instance add clat --netfilter" in said


def test_start_in_a_missing_namespace_or_without_jool_there() -> None:
    """iproute2's texts for the documented `ip netns exec NS jool_siit ...` (a missing namespace;
    a missing program), measured with iproute2 6.1 here."""

    async def no_netns(argv: Sequence[str], input: str | None = None) -> CommandResult:
        return CommandResult(255, "", NO_NETNS.format("clatns"))

    async def no_program(argv: Sequence[str], input: str | None = None) -> CommandResult:
        return CommandResult(1, "", NO_PROGRAM)

    with pytest.raises(TranslatorError, match="namespace clatns does not exist"):
        asyncio.run(JoolSiit("clat", POOL, netns="clatns", runner=no_netns).start())
    with pytest.raises(TranslatorError, match="jool_siit is not installed"):
        asyncio.run(JoolSiit("clat", POOL, netns="clatns", runner=no_program).start())


# --- entries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [True, False])
def test_entries_reads_the_csv_and_leaves_foreign_entries_out(headers: bool) -> None:
    """Against the documented `eamt display --csv` output, with and without its header line."""
    fake = FakeJool()
    fake.headers = headers
    fake.table[X1] = P1
    fake.table[N6("2001:db8:eeee::/120")] = N4("198.51.100.0/24")  # covers the pool: not ours
    assert asyncio.run(backend(fake).entries()) == {P1: X1}
    assert fake.jool_args() == [["eamt", "display", "--csv"]]


def test_parse_csv_without_headers_and_with_prefixes() -> None:
    """`eamt display --csv --no-headers` output (jool_siit(8)): rows only."""
    text = "2001:db8:aaaa::/124,198.51.100.144/28\n2001:db8:1::10/128,198.51.100.129/32\n\n"
    assert parse_eamt_csv(text, POOL) == {
        N4("198.51.100.144/28"): N6("2001:db8:aaaa::/124"),
        P1: X1,
    }
    assert parse_eamt_csv(CSV_HEADER, POOL) == {}


def test_parse_csv_refuses_what_it_cannot_read() -> None:
    """A table that is not the documented CSV (here the documented plain-table form) is an
    error, never an empty table."""
    with pytest.raises(TranslatorError, match="unexpected line"):
        parse_eamt_csv("|  2001:db8:1::10/128 | 198.51.100.129/32 |\n", POOL)


# --- apply ---------------------------------------------------------------------------------------


def test_apply_adds_with_ipv6_first() -> None:
    """Against `eamt add <IPv6 prefix> <IPv4 prefix>` (jool_siit(8) example, client usage)."""
    fake = FakeJool()
    asyncio.run(backend(fake).apply({P2: X2, P1: X1}, []))
    assert fake.jool_args() == [
        ["eamt", "display", "--csv"],
        ["eamt", "add", "2001:db8:1::10/128", "198.51.100.129/32"],
        ["eamt", "add", "2001:db8:2::20/128", "198.51.100.130/32"],
    ]
    assert fake.ours() == {P1: X1, P2: X2}


def test_apply_changes_by_remove_then_add() -> None:
    """Against the documented syntax: Jool refuses a second entry for the same IPv4 prefix, even
    with --force (eam.c), so a changed entry is removed (both prefixes, as usr-flags-eamt.md
    documents for `eamt remove`), then added."""
    fake = FakeJool()
    fake.table[X1] = P1
    asyncio.run(backend(fake).apply({P1: X2}, []))
    assert fake.jool_args()[1:] == [
        ["eamt", "remove", "2001:db8:1::10/128", "198.51.100.129/32"],
        ["eamt", "add", "2001:db8:2::20/128", "198.51.100.129/32"],
    ]
    assert fake.ours() == {P1: X2}


def test_apply_removes_before_it_adds() -> None:
    """Against the documented `eamt remove` / `eamt add` syntax: X moving from P1 to P2 in one
    batch; the kernel refuses a second entry with the same IPv6 prefix (eam.c), so the removal
    comes first."""
    fake = FakeJool()
    fake.table[X1] = P1
    fake.table[X3] = P3
    asyncio.run(backend(fake).apply({P2: X1, P3: X2}, [P1]))
    assert [args[1] for args in fake.jool_args()[1:]] == ["remove", "remove", "add", "add"]
    assert fake.ours() == {P2: X1, P3: X2}
    assert {p: x for x, p in fake.table.items() if not p.subnet_of(POOL)} == FOREIGN


def test_apply_issues_nothing_for_what_is_already_so() -> None:
    """Against the documented `eamt display --csv` output: entries already in place and
    removals of absent entries cost no command."""
    fake = FakeJool()
    fake.table[X1] = P1
    asyncio.run(backend(fake).apply({P1: X1}, [P2]))
    assert fake.jool_args() == [["eamt", "display", "--csv"]]
    fake.calls.clear()
    asyncio.run(backend(fake).apply({}, []))
    assert fake.calls == []


def test_apply_ensure_wins_over_remove_for_the_same_entry() -> None:
    """Against the documented `eamt remove` / `eamt add` syntax: a P in both ends as ensure
    says (as in the tayga backend)."""
    fake = FakeJool()
    fake.table[X1] = P1
    asyncio.run(backend(fake).apply({P1: X2}, [P1]))
    assert fake.ours() == {P1: X2}


def test_apply_stops_at_the_first_failure_and_names_it() -> None:
    """Against the kernel's collision text (eam.c), relayed by the client: an X that a foreign
    entry already holds."""
    fake = FakeJool()
    taken = FOREIGN[N4("198.51.100.5/32")]
    with pytest.raises(TranslatorError) as caught:
        asyncio.run(backend(fake).apply({P1: taken, P2: X2}, []))
    said = str(caught.value)
    assert said.startswith("adding 198.51.100.129/32 <-> 2001:db8::5/128: ")
    assert "already contains prefix" in said
    assert fake.jool_args()[-1][:2] == ["eamt", "add"] and len(fake.calls) == 2  # P2 not tried
    assert fake.ours() == {}


def test_apply_failing_removal_stops_before_the_additions() -> None:
    """Against the documented `eamt remove` syntax and the client's relayed kernel error form:
    a failed removal stops the batch before any addition."""
    fake = FakeJool()
    fake.table[X1] = P1
    fake.fail["eamt remove 2001:db8:1::10/128 198.51.100.129/32"] = CommandResult(
        1, "", "Error: The kernel module returned error 1: Operation not permitted\n"
    )
    with pytest.raises(TranslatorError, match=r"removing 198\.51\.100\.129/32 .*not permitted"):
        asyncio.run(backend(fake).apply({P2: X2}, [P1]))
    assert fake.ours() == {P1: X1}


@pytest.mark.parametrize("name", ["", "clat-eamt-instance", "clat\u00e9"])
def test_instance_names_follow_the_documented_rule(name: str) -> None:
    """usr-flags-instance.md: a name is up to 15 printable ASCII characters."""
    with pytest.raises(ValueError, match="instance name"):
        JoolSiit(name, POOL, runner=FakeJool())


@pytest.mark.parametrize(
    ("ensure", "remove", "match"),
    [
        ({N4("192.0.2.10/32"): X1}, [], "not inside the pool"),
        ({N4("198.51.100.0/24"): N6("2001:db8::/120")}, [], "not inside the pool"),
        ({P1: N6("2001:db8:1::/120")}, [], "suffix lengths differ"),
        ({N4("198.51.100.144/28"): N6("2001:db8::/124")}, [N4("198.51.100.5/32")], "not inside"),
    ],
)
def test_apply_validates_before_running_anything(
    ensure: dict[N4, N6], remove: list[N4], match: str
) -> None:
    """No jool_siit command at all (documented CLI or otherwise) for a batch that is wrong."""
    fake = FakeJool()
    with pytest.raises(ValueError, match=match):
        asyncio.run(backend(fake).apply(ensure, remove))
    assert fake.calls == []


# --- namespace, stop -----------------------------------------------------------------------------


def test_every_command_runs_in_the_namespace() -> None:
    """Node-based translation (Jool docs): `ip netns exec NS jool_siit ...`."""
    fake = FakeJool(netns="clatns")
    jool = backend(fake)
    asyncio.run(jool.start())
    asyncio.run(jool.apply({P1: X1}, []))
    assert fake.calls[-1] == [
        *("ip", "netns", "exec", "clatns", "jool_siit", "-i", "clat"),
        *("eamt", "add", "2001:db8:1::10/128", "198.51.100.129/32"),
    ]
    assert all(call[:4] == ["ip", "netns", "exec", "clatns"] for call in fake.calls)


def test_stop_clean_removes_ours_only() -> None:
    """Against the documented `eamt display --csv` / `eamt remove` syntax and output."""
    fake = FakeJool()
    fake.table.update({X1: P1, X2: P2})
    asyncio.run(backend(fake).stop(clean=False))
    assert fake.calls == [] and fake.ours() == {P1: X1, P2: X2}
    asyncio.run(backend(fake).stop(clean=True))
    assert fake.ours() == {}
    assert {p: x for x, p in fake.table.items()} == FOREIGN
    assert [args[1] for args in fake.jool_args()] == ["display", "remove", "remove"]
