"""Option value types: UCI text <-> typed value, JSON form, LuCI datatype, name for the docs.

Every type parses one UCI word (one ``option`` value or one ``list`` item) and raises ValueError
with a message that says what was expected and what was found.  ``luci_datatype`` is a datatype
expression of LuCI's ``validation.js`` (luci-base), so the web form checks what the daemon checks
(the daemon stays the authority: LuCI's ``ip4addr`` does not know about host bits, for example).
LuCI has no ``bool`` datatype (a ``form.Flag`` needs none); ``or("0","1")`` says the same.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import Generic, TypeAlias, TypeVar

from clat_eamt.core.names import name_problem, normalize

V = TypeVar("V")
JSONScalar: TypeAlias = bool | int | str | None
JSONValue: TypeAlias = JSONScalar | list[int] | list[str]

_TRUE = frozenset({"1", "true", "yes", "on", "enabled"})
_FALSE = frozenset({"0", "false", "no", "off", "disabled"})
_INTEGER = re.compile(r"^-?[0-9]+$")
# The shapes we accept before asking ipaddress: no netmask or hostmask forms, no scope id.
_IPV4_SHAPE = re.compile(r"^[0-9.]+(/[0-9]{1,2})?$")
_IPV6_SHAPE = re.compile(r"^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$")


class ValueType(ABC, Generic[V]):
    """One kind of option value."""

    metavar: str = "VALUE"  # placeholder in --help

    @property
    @abstractmethod
    def type_name(self) -> str:
        """Short human name for the docs, e.g. 'integer 0..86400 (seconds)'."""

    @property
    def plural(self) -> str:
        return self.type_name + "s"

    @property
    @abstractmethod
    def luci_datatype(self) -> str: ...

    @property
    @abstractmethod
    def luci_rule(self) -> dict[str, JSONValue]:
        """This type's check as data for the settings form's validator (luci-app's
        clat-eamt/validate.js applies it as ``parse`` does: the same words pass)."""

    @abstractmethod
    def parse(self, text: str) -> V:
        """The typed value of one UCI word; ValueError with a clear message if it is not one."""

    def render(self, value: V) -> str:
        """The UCI word for ``value``; ``parse(render(v)) == v``."""
        return str(value)

    def to_json(self, value: V) -> JSONScalar:
        return str(value)


@dataclass(frozen=True)
class Bool(ValueType[bool]):
    metavar = "BOOL"

    @property
    def type_name(self) -> str:
        return "boolean"

    @property
    def luci_datatype(self) -> str:
        return 'or("0","1")'

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        return {"kind": "bool", "words": sorted(_TRUE | _FALSE)}

    def parse(self, text: str) -> bool:
        word = text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError(
            f"expected a boolean (1/0, yes/no, on/off, true/false, enabled/disabled), got {text!r}"
        )

    def render(self, value: bool) -> str:
        return "1" if value else "0"

    def to_json(self, value: bool) -> JSONScalar:
        return value


@dataclass(frozen=True)
class BoundedInt(ValueType[int]):
    minimum: int
    maximum: int
    unit: str = ""  # for the docs: "seconds", "per second"
    metavar = "N"

    @property
    def type_name(self) -> str:
        unit = f" ({self.unit})" if self.unit else ""
        return f"integer {self.minimum}..{self.maximum}{unit}"

    @property
    def plural(self) -> str:
        return f"integers {self.minimum}..{self.maximum}"

    @property
    def luci_datatype(self) -> str:
        # LuCI's range() alone accepts decimals; and() with (u)integer keeps it whole.
        whole = "uinteger" if self.minimum >= 0 else "integer"
        return f"and({whole},range({self.minimum},{self.maximum}))"

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        return {"kind": "int", "min": self.minimum, "max": self.maximum}

    def parse(self, text: str) -> int:
        word = text.strip()
        if _INTEGER.match(word) and self.minimum <= int(word) <= self.maximum:
            return int(word)
        raise ValueError(f"expected an integer {self.minimum}..{self.maximum}, got {text!r}")

    def to_json(self, value: int) -> JSONScalar:
        return value


@dataclass(frozen=True)
class Choice(ValueType[str]):
    choices: tuple[str, ...]
    metavar = "CHOICE"

    @property
    def type_name(self) -> str:
        return "one of " + ", ".join(self.choices)

    @property
    def luci_datatype(self) -> str:
        return "or(" + ",".join(f'"{c}"' for c in self.choices) + ")"

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        return {"kind": "choice", "values": list(self.choices)}

    def parse(self, text: str) -> str:
        word = text.strip()
        if word in self.choices:
            return word
        raise ValueError(f"expected one of {', '.join(self.choices)}; got {text!r}")


def _host_bits_message(text: str, network: IPv4Network | IPv6Network) -> str:
    return f"{text} has host bits set; did you mean {network}?"


@dataclass(frozen=True)
class IPv4Prefix(ValueType[IPv4Network]):
    """An IPv4 address (meaning /32) or prefix; host bits must be zero."""

    metavar = "PREFIX"

    @property
    def type_name(self) -> str:
        return "IPv4 prefix"

    @property
    def plural(self) -> str:
        return "IPv4 prefixes"

    @property
    def luci_datatype(self) -> str:
        return "ip4addr"  # address or address/length (cidr4 would demand the length)

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        return {"kind": "prefix", "family": 4}

    def parse(self, text: str) -> IPv4Network:
        word = text.strip()
        if ":" in word:
            raise ValueError(f"expected an IPv4 address or prefix, got an IPv6 one: {text!r}")
        if not _IPV4_SHAPE.match(word):
            raise ValueError(f"expected an IPv4 address or prefix like 192.0.2.0/24, got {text!r}")
        return _strict_network(word, IPv4Network)

    def render(self, value: IPv4Network) -> str:
        return show_prefix(value)


@dataclass(frozen=True)
class IPv6Prefix(ValueType[IPv6Network]):
    """An IPv6 address (meaning /128) or prefix; host bits must be zero."""

    metavar = "PREFIX"

    @property
    def type_name(self) -> str:
        return "IPv6 prefix"

    @property
    def plural(self) -> str:
        return "IPv6 prefixes"

    @property
    def luci_datatype(self) -> str:
        return "ip6addr"

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        return {"kind": "prefix", "family": 6}

    def parse(self, text: str) -> IPv6Network:
        word = text.strip()
        if ":" not in word:
            raise ValueError(f"expected an IPv6 address or prefix, got {text!r}")
        if not _IPV6_SHAPE.match(word):
            raise ValueError(
                f"expected an IPv6 address or prefix like 2001:db8::/32, got {text!r}"
                + (" (zone ids like %eth0 are not allowed)" if "%" in word else "")
            )
        return _strict_network(word, IPv6Network)

    def render(self, value: IPv6Network) -> str:
        return show_prefix(value)


N = TypeVar("N", IPv4Network, IPv6Network)


def show_prefix(network: IPv4Network | IPv6Network) -> str:
    """A single address without its /32 or /128, as people write it; any prefix in full."""
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _strict_network(word: str, kind: type[N]) -> N:
    try:
        return kind(word)
    except ValueError:
        pass
    try:
        loose = kind(word, strict=False)
    except ValueError as error:
        raise ValueError(
            f"{word!r} is not a valid {_family(kind)} address or prefix: {error}"
        ) from None
    raise ValueError(_host_bits_message(word, loose))


def _family(kind: type[IPv4Network] | type[IPv6Network]) -> str:
    return "IPv4" if kind is IPv4Network else "IPv6"


@dataclass(frozen=True)
class IPPrefix(ValueType[IPv4Network | IPv6Network]):
    """A prefix of either family."""

    metavar = "PREFIX"

    @property
    def type_name(self) -> str:
        return "IPv4 or IPv6 prefix"

    @property
    def plural(self) -> str:
        return "IPv4 or IPv6 prefixes"

    @property
    def luci_datatype(self) -> str:
        return "ipaddr"

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        return {"kind": "prefix", "family": 0}

    def parse(self, text: str) -> IPv4Network | IPv6Network:
        if ":" in text:
            return IPv6Prefix().parse(text)
        return IPv4Prefix().parse(text)

    def render(self, value: IPv4Network | IPv6Network) -> str:
        return show_prefix(value)


@dataclass(frozen=True)
class Checked(ValueType[V]):
    """``inner`` narrowed by ``check`` (None when the value is acceptable, else why not)."""

    inner: ValueType[V]
    check: Callable[[V], str | None]
    name: str  # the narrower type's name for the docs
    plural_name: str
    # ``check`` as data for the form (luci_rule); tuples, so that the type stays hashable
    rule: tuple[tuple[str, JSONScalar | tuple[int, ...]], ...] = ()

    @property
    def metavar(self) -> str:  # type: ignore[override]
        return self.inner.metavar

    @property
    def type_name(self) -> str:
        return self.name

    @property
    def plural(self) -> str:
        return self.plural_name

    @property
    def luci_datatype(self) -> str:
        return self.inner.luci_datatype

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        extra = {k: list(v) if isinstance(v, tuple) else v for k, v in self.rule}
        return self.inner.luci_rule | extra

    def parse(self, text: str) -> V:
        value = self.inner.parse(text)
        problem = self.check(value)
        if problem:
            raise ValueError(problem)
        return value

    def render(self, value: V) -> str:
        return self.inner.render(value)

    def to_json(self, value: V) -> JSONScalar:
        return self.inner.to_json(value)


@dataclass(frozen=True)
class DnsName(ValueType[str]):
    """A DNS name, kept in the core's normal form (lower case, no trailing dot)."""

    metavar = "NAME"

    @property
    def type_name(self) -> str:
        return "DNS name"

    @property
    def luci_datatype(self) -> str:
        return "hostname"

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        return {"kind": "dnsname"}

    def parse(self, text: str) -> str:
        problem = name_problem(text)
        if problem:
            raise ValueError(f"expected a DNS name: {problem}")
        return normalize(text)


@dataclass(frozen=True)
class Text(ValueType[str]):
    """Free text on one line (UCI values are read line by line), at most ``max_length``
    characters when set (the control socket and ubus take it from anyone with root's socket)."""

    max_length: int | None = None
    metavar = "TEXT"

    @property
    def type_name(self) -> str:
        limit = f" of at most {self.max_length} characters" if self.max_length else ""
        return f"text{limit}"

    @property
    def plural(self) -> str:
        return "texts"

    @property
    def luci_datatype(self) -> str:
        return f"maxlength({self.max_length})" if self.max_length else "string"

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        return {"kind": "text"}

    def parse(self, text: str) -> str:
        if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in text):
            raise ValueError(f"expected text on one line without control characters, got {text!r}")
        if self.max_length is not None and len(text) > self.max_length:
            raise ValueError(f"expected at most {self.max_length} characters, got {len(text)}")
        return text
