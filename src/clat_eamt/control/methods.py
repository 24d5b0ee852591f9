"""The control API's one table of methods: name, arguments, handler, result shape.

The Unix control socket (``control.server``) serves this table today and the ubus object
``clat-eamt`` serves the same table on OpenWrt, so ``clat-eamt status`` on a shell, ``ubus call
clat-eamt status`` and the LuCI page all see one answer.  A handler gets the running daemon
(any ``ControlTarget``) and the arguments as strings, exactly as they arrive over JSON or ubus,
and validates them with the config schema's own types and rules: a static entry added at run
time passes the checks a static section of /etc/config/clat-eamt passes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any, Protocol

from clat_eamt.config import ConfigError, StaticEntry, schema, static_from_words
from clat_eamt.control.check import check_text

JSON = dict[str, Any]


class MethodError(ValueError):
    """A call the daemon refuses as given (bad or unknown arguments, nothing to delete): the
    message says what to change; nothing was changed."""


class ControlTarget(Protocol):
    """What the methods need of the daemon (``control.target.SnapshotTarget`` implements it
    from the runtime's snapshot)."""

    async def status_report(self) -> JSON: ...

    async def mapping_rows(self) -> list[JSON]: ...

    async def overview_report(self, offset: int, limit: int) -> JSON: ...

    def host_rows(self) -> list[JSON]: ...

    async def add_static(self, entry: StaticEntry) -> JSON: ...

    async def delete_static(self, ipv4: IPv4Network) -> JSON: ...

    async def flush_dns(self) -> JSON: ...

    async def push_provider(self, table: str, signature: str | None) -> JSON: ...

    def effective_config(self) -> JSON: ...

    def flow_history(self) -> JSON: ...


Handler = Callable[[ControlTarget, Mapping[str, str]], Awaitable[Any]]


@dataclass(frozen=True)
class Arg:
    name: str
    help: str
    required: bool = True
    file: bool = False  # the CLI takes a file (or - for stdin) and sends its text


@dataclass(frozen=True)
class Method:
    name: str
    help: str
    result: str  # the shape of the result, for people (CLI help, docs, the LuCI issue)
    handler: Handler
    args: tuple[Arg, ...] = ()
    writes: bool = False  # changes the daemon's state (the rpcd ACL grants these separately)
    # granted by an rpcd access group of its own, never by the LuCI app's (the operator's)
    operator: bool = False


async def _status(target: ControlTarget, args: Mapping[str, str]) -> JSON:
    return await target.status_report()


def _count(args: Mapping[str, str], name: str, default: int, most: int) -> int:
    """A row count argument: a decimal 0..most, ``default`` when absent."""
    word = args.get(name)
    if word is None:
        return default
    if not word.isdigit() or int(word) > most:
        raise MethodError(f"{name}: expected an integer 0..{most}, got {word!r}")
    return int(word)


async def _overview(target: ControlTarget, args: Mapping[str, str]) -> JSON:
    offset = _count(args, "offset", 0, 10**9)
    return await target.overview_report(offset, _count(args, "limit", OVERVIEW_ROWS, MAX_ROWS))


async def _mappings(target: ControlTarget, args: Mapping[str, str]) -> list[JSON]:
    return await target.mapping_rows()


async def _hosts(target: ControlTarget, args: Mapping[str, str]) -> list[JSON]:
    return target.host_rows()


async def _add(target: ControlTarget, args: Mapping[str, str]) -> JSON:
    try:
        entry = static_from_words(args, "add")
    except ConfigError as error:
        raise MethodError(error.brief()) from None
    return await target.add_static(entry)


async def _delete(target: ControlTarget, args: Mapping[str, str]) -> JSON:
    try:
        ipv4 = schema.STATIC_IPV4.type.parse(args["ipv4"])
    except ValueError as error:
        raise MethodError(f"ipv4: {error}") from None
    return await target.delete_static(ipv4)


async def _flush(target: ControlTarget, args: Mapping[str, str]) -> JSON:
    return await target.flush_dns()


async def _provider(target: ControlTarget, args: Mapping[str, str]) -> JSON:
    if len(args["table"]) > MAX_PUSHED:
        raise MethodError(f"table: more than {MAX_PUSHED} characters; serve it at provider_url")
    return await target.push_provider(args["table"], args.get("signature") or None)


async def _config(target: ControlTarget, args: Mapping[str, str]) -> JSON:
    return target.effective_config()


async def _history(target: ControlTarget, args: Mapping[str, str]) -> JSON:
    return target.flow_history()


async def _check(target: ControlTarget, args: Mapping[str, str]) -> JSON:
    return check_text(args["uci"])


# A pushed table travels in one ubus message: ubusd takes at most UBUS_MAX_MSGLEN, 1 MiB
# (ubusmsg.h), JSON escapes included; a larger table is fetched (provider_url).
MAX_PUSHED = 1_000_000
_IPV4 = Arg("ipv4", schema.STATIC_IPV4.help)
# Rows of one overview (a LuCI status poll every 5 s): a table of 10,000 entries is about 4 MB
# of JSON and seconds of a router's CPU; the page shows this many and says how many there are.
OVERVIEW_ROWS, MAX_ROWS = 200, 1000
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "status",
            "Health and counters: version, uptime, translator, Pref64 and its source, upstreams, "
            "DNS and mapping counters, live flows native vs through the NAT64.",
            "object",
            _status,
        ),
        Method(
            "mappings",
            "The mapping table, one row per entry, with its live flows.",
            "array of {ipv4, ipv6, pool, fqdn, fqdns, cnames, origin, state, stale_reason, "
            "suspended, expires_in, host, comment, refreshes, flows}",
            _mappings,
        ),
        Method(
            "overview",
            "What the LuCI status page shows, in one call: status, a page of the mapping table "
            "(limit rows from offset, in the table's order; total), the LAN hosts (at most limit) "
            "and the flow history.",
            "{status: object, mappings: {total, offset, rows: [mapping]}, "
            "hosts: {total, rows: [host]}, history: object}",
            _overview,
            (
                Arg("offset", "The first mapping row, from 0 (default 0).", False),
                Arg("limit", f"Rows at most (default {OVERVIEW_ROWS}, up to {MAX_ROWS}).", False),
            ),
        ),
        Method(
            "hosts",
            "LAN hosts as the neighbour tables show them, and why each is IPv4-only or not.",
            "array of {ipv4, mac, class, why, last_seen}",
            _hosts,
        ),
        Method(
            "add",
            "Add a static entry to the running daemon (validated like a static section); it "
            "lasts until its del or a restart: write it to /etc/config/clat-eamt to keep it.",
            "{added: mapping, dataplane: done|late|failed|none}",
            _add,
            (_IPV4, Arg("ipv6", schema.STATIC_IPV6.help), Arg("comment", "Free text.", False)),
            writes=True,
        ),
        Method(
            "del",
            "Delete the static entry of an IPv4 prefix; its running flows keep working.",
            "{deleted: [mapping], dataplane: ...}",
            _delete,
            (_IPV4,),
            writes=True,
        ),
        Method(
            "flush",
            "Retire every learned (dns) entry; running flows keep their path, static entries stay.",
            "{flushed: count, dataplane: ...}",
            _flush,
            writes=True,
        ),
        Method(
            "provider",
            "Hand the daemon the operator's table (README, The operator's table): taken whole "
            "or refused whole, with the checks of a fetched one (its signature when "
            "provider_key is set, the format, a serial that only grows). For the operator's "
            "agent: granted by the rpcd group clat-eamt-provider, not by LuCI's.",
            "{provider: {url, signed, serial, entries, installed, last, next_fetch_in}, "
            "dataplane: ...}",
            _provider,
            (
                Arg("table", "The table's text (the CLI: its file, - for stdin).", file=True),
                Arg(
                    "signature",
                    "Its usign signature, the .sig file's text (the CLI: the file).",
                    False,
                    file=True,
                ),
            ),
            writes=True,
            operator=True,
        ),
        Method(
            "config",
            "The effective configuration, run-time static entries included.",
            "{globals: {option: value}, static: [{name, ipv4, ipv6, comment}]}",
            _config,
        ),
        Method(
            "check",
            "Check the text of a UCI file as the daemon checks /etc/config/clat-eamt (every "
            "option and the rules between them); changes nothing.  The rpcd plugin answers it "
            "without the daemon (clat-eamt config check --ubus).",
            "{valid: true} or {valid: false, problems: [{section, option, line, message, text}]}",
            _check,
            (Arg("uci", "The text of a UCI file."),),
        ),
        Method(
            "history",
            "Live IPv4 flows, native vs through the NAT64, sampled over the last hour.",
            "{interval: seconds, points: [{time: unix seconds, native, nat64}]}",
            _history,
        ),
    )
}


def checked_args(method: Method, args: object) -> dict[str, str]:
    """The arguments of a call as strings, or MethodError naming what is wrong."""
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise MethodError("arguments must be an object of name: string")
    known = {a.name for a in method.args}
    unknown = sorted(set(args) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "no arguments"
        raise MethodError(f"{method.name}: unknown argument {unknown[0]!r} (takes {takes})")
    for arg in method.args:
        if arg.required and arg.name not in args:
            raise MethodError(f"{method.name}: argument {arg.name!r} is required")
    bad = [name for name, value in args.items() if not isinstance(value, str)]
    if bad:
        raise MethodError(f"{method.name}: argument {bad[0]!r} must be a string")
    return dict(args)


async def dispatch(target: ControlTarget, name: object, args: object) -> Any:
    """Run one call; MethodError for an unknown method or bad arguments."""
    method = METHODS.get(name) if isinstance(name, str) else None
    if method is None:
        raise MethodError(f"unknown method {name!r} (methods: {', '.join(METHODS)})")
    return await method.handler(target, checked_args(method, args))
