"""The rules between options of the schema, written once for the file and the flags.

Rules about one value live in the value's type (``types``); the rules here involve several
options, or a static entry and the globals.  Each returns ``Violation``s that ``load`` turns
into problems located at the right line or flag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Protocol, TypeVar

from clat_eamt.config.schema import (
    ALLOW_DOCUMENTATION,
    CLAT_IPV4,
    CLAT_IPV6,
    LISTEN,
    POOL,
    PORT,
    PREF64,
    PROVIDER_KEY,
    PROVIDER_URL,
    STATIC_IPV4,
    STATIC_IPV6,
    TAYGA_IPV4,
    TAYGA_IPV6,
    TRANSLATOR,
    TTL_MAX,
    TTL_MIN,
    UPSTREAM,
    Option,
    StaticEntry,
)
from clat_eamt.config.types import show_prefix
from clat_eamt.core.addresses import AddressPolicy, special_block
from clat_eamt.core.pool import pool_problems
from clat_eamt.core.pref64 import ALWAYS_KNOWN
from clat_eamt.core.translation import tayga_pool_prefix

T = TypeVar("T")


class Values(Protocol):
    """Typed read access to the globals (an EffectiveConfig, also while it is checked)."""

    def __getitem__(self, option: Option[T], /) -> T: ...


Label = Callable[[str], str]  # option name -> how messages name it ('pool' or '--pool')


@dataclass(frozen=True)
class Violation:
    """A broken rule.  ``options`` are the globals options it depends on (a rule is skipped when
    one of them failed to parse); for a static entry ``at`` names the option it is reported at."""

    message: str
    options: tuple[str, ...] = ()
    static_index: int | None = None
    at: str | None = None


def globals_violations(cfg: Values, label: Label) -> list[Violation]:
    found: list[Violation] = []
    if cfg[TTL_MIN] > cfg[TTL_MAX]:
        found.append(
            Violation(
                f"{label(TTL_MIN.name)} ({cfg[TTL_MIN]}) must not be larger than "
                f"{label(TTL_MAX.name)} ({cfg[TTL_MAX]})",
                (TTL_MIN.name, TTL_MAX.name),
            )
        )
    if cfg[TRANSLATOR] == "tayga":
        for option, why in ((CLAT_IPV6, "the CLAT's IPv6 source"), (PREF64, "tayga's prefix")):
            if not cfg[option]:
                found.append(
                    Violation(
                        f"{label(TRANSLATOR.name)} tayga needs {label(option.name)} ({why})",
                        (TRANSLATOR.name, option.name),
                    )
                )
        if cfg[CLAT_IPV6]:  # the pool's map (core.translation) must not hold tayga's own
            pool6 = tayga_pool_prefix(IPv6Address(cfg[CLAT_IPV6]))
            for option in (CLAT_IPV6, TAYGA_IPV6):
                if cfg[option] and cfg[option] in pool6:
                    found.append(
                        Violation(
                            f"{label(option.name)} {cfg[option]} lies inside {pool6}, where "
                            f"tayga maps {label(POOL.name)}",
                            (option.name,),
                        )
                    )
        for option in (CLAT_IPV4, TAYGA_IPV4):
            if cfg[option] in cfg[POOL]:
                found.append(
                    Violation(
                        f"{label(option.name)} {cfg[option]} lies inside {label(POOL.name)}",
                        (option.name, POOL.name),
                    )
                )
    for server in cfg[UPSTREAM]:
        if server.address == cfg[LISTEN] and server.port == cfg[PORT]:
            found.append(
                Violation(
                    f"{label(UPSTREAM.name)} {server} is the proxy itself "
                    f"({label(LISTEN.name)}/{label(PORT.name)}): queries would loop",
                    (UPSTREAM.name, LISTEN.name, PORT.name),
                )
            )
    if cfg[PROVIDER_URL].startswith("http://") and not cfg[PROVIDER_KEY]:
        found.append(
            Violation(
                f"{label(PROVIDER_URL.name)} is plain http://: anyone on the path could hand the "
                f"router a table; use https://, or set {label(PROVIDER_KEY.name)} so that only "
                "a table signed with the operator's key is taken",
                (PROVIDER_URL.name, PROVIDER_KEY.name),
            )
        )
    for problem in pool_problems(cfg[POOL], allow_documentation=cfg[ALLOW_DOCUMENTATION]):
        found.append(Violation(problem, (POOL.name, ALLOW_DOCUMENTATION.name)))
    return found


_Finding = tuple[str, str, tuple[str, ...]]  # (static option reported at, message, globals used)


def static_violations(statics: Sequence[StaticEntry], cfg: Values, label: Label) -> list[Violation]:
    policy = AddressPolicy(allow_documentation=cfg[ALLOW_DOCUMENTATION])
    found: list[Violation] = []
    for index, entry in enumerate(statics):
        findings = _refusals(entry, policy, label) + _shape(entry)
        findings += _placement(entry, statics[:index], cfg, label, policy)
        found += [Violation(message, used, index, at) for at, message, used in findings]
    return found


def _refusals(entry: StaticEntry, policy: AddressPolicy, label: Label) -> list[_Finding]:
    """SPEC section 4: special-purpose and non-global addresses are never mapped."""
    findings: list[_Finding] = []
    for at, network in ((STATIC_IPV4.name, entry.ipv4), (STATIC_IPV6.name, entry.ipv6)):
        refusal = policy.refusal(network)
        if refusal is not None:
            block = special_block(network)
            lab_only = block is not None and block.documentation
            hint = f" (allowed only with {label(ALLOW_DOCUMENTATION.name)}, for test labs)"
            message = f"cannot be mapped: {refusal.detail}" + (hint if lab_only else "")
            findings.append((at, message, (ALLOW_DOCUMENTATION.name,)))
    return findings


def _shape(entry: StaticEntry) -> list[_Finding]:
    # RFC 7757 section 3: an EAM entry maps the suffix bits of one prefix onto the other.  We
    # require both to leave the same number of host bits, the form tayga and Jool both accept.
    suffix4, suffix6 = 32 - entry.ipv4.prefixlen, 128 - entry.ipv6.prefixlen
    if suffix4 == suffix6:
        return []
    ipv4, ipv6 = show_prefix(entry.ipv4), show_prefix(entry.ipv6)
    message = (
        f"{ipv6} leaves {suffix6} host bits but {ipv4} leaves {suffix4}; an EAM entry needs "
        f"equal suffix lengths (RFC 7757 section 3), so with /{entry.ipv4.prefixlen} the IPv6 "
        f"prefix must be /{128 - suffix4}"
    )
    return [(STATIC_IPV6.name, message, ())]


def _placement(
    entry: StaticEntry,
    earlier: Sequence[StaticEntry],
    cfg: Values,
    label: Label,
    policy: AddressPolicy,
) -> list[_Finding]:
    """Clashes with the translation prefixes, the pool and the static entries before it."""
    findings: list[_Finding] = []
    # The always-known prefixes are special-purpose: already refused above, not said twice.
    if policy.refusal(entry.ipv6) is None:
        for prefix in dict.fromkeys(cfg[PREF64] + ALWAYS_KNOWN):
            if entry.ipv6.overlaps(prefix):
                message = (
                    f"{show_prefix(entry.ipv6)} lies inside the NAT64 prefix {prefix}; the "
                    "target of a mapping must be a real IPv6 address, not a translated one"
                )
                findings.append((STATIC_IPV6.name, message, (PREF64.name,)))
    pool = cfg[POOL]
    if entry.ipv4.overlaps(pool):
        message = f"{show_prefix(entry.ipv4)} overlaps the mapping pool {pool} ({label(POOL.name)})"
        findings.append((STATIC_IPV4.name, message, (POOL.name,)))
    for other in earlier:
        if other.ipv4.overlaps(entry.ipv4):
            clash = f"{show_prefix(entry.ipv4)} overlaps {show_prefix(other.ipv4)}"
            message = f"{clash} of {other.describe()}"
            findings.append((STATIC_IPV4.name, message, ()))
    return findings
