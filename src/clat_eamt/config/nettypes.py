"""Value types for where the daemon talks DNS: a listen address, a DNS server, a file path.

``DnsServer`` uses dnsmasq's ``ADDRESS#PORT`` notation (``server=127.0.0.1#5353``), which
OpenWrt users already write in /etc/config/dhcp; IPv6 addresses need no brackets with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address

from clat_eamt.config.types import JSONScalar, JSONValue, ValueType

IPAddress = IPv4Address | IPv6Address
_PORT = re.compile(r"^[0-9]{1,5}$")


def parse_address(text: str) -> IPAddress:
    word = text.strip()
    if "%" in word:
        raise ValueError(f"zone ids like %eth0 are not allowed: {text!r}")
    if "/" in word:
        raise ValueError(f"expected a single address without /length, got {text!r}")
    try:
        return ip_address(word)
    except ValueError:
        raise ValueError(f"expected an IPv4 or IPv6 address, got {text!r}") from None


@dataclass(frozen=True)
class ServerAddress:
    """A DNS server: address and port (53 unless given)."""

    address: IPAddress
    port: int = 53
    # Its hash, made once: the resolvers' health and sockets are looked up by it for every
    # exchange, and an address's own hash is computed anew each time (ipaddress).
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.address, self.port)))

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return str(self.address) if self.port == 53 else f"{self.address}#{self.port}"

    @property
    def sockaddr(self) -> tuple[str, int]:
        return (str(self.address), self.port)


def parse_server(text: str) -> ServerAddress:
    word = text.strip()
    address, _, port = word.partition("#")
    if port and (not _PORT.match(port) or not 1 <= int(port) <= 65535):
        raise ValueError(f"expected a port 1..65535 after '#', got {text!r}")
    try:
        return ServerAddress(parse_address(address), int(port) if port else 53)
    except ValueError as error:
        raise ValueError(f"{error} (write ADDRESS or ADDRESS#PORT)") from None


@dataclass(frozen=True)
class Address(ValueType[IPAddress]):
    """One IPv4 or IPv6 address."""

    metavar = "ADDRESS"

    @property
    def type_name(self) -> str:
        return "IPv4 or IPv6 address"

    @property
    def plural(self) -> str:
        return "IPv4 or IPv6 addresses"

    @property
    def luci_datatype(self) -> str:
        return "ipaddr(1)"  # LuCI's ipaddr with nomask=1: no /length

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        return {"kind": "address", "family": 0}

    def parse(self, text: str) -> IPAddress:
        return parse_address(text)


@dataclass(frozen=True)
class DnsServer(ValueType[ServerAddress]):
    metavar = "ADDRESS[#PORT]"

    @property
    def type_name(self) -> str:
        return "DNS server (ADDRESS or ADDRESS#PORT)"

    @property
    def plural(self) -> str:
        return "DNS servers (ADDRESS or ADDRESS#PORT)"

    @property
    def luci_datatype(self) -> str:
        return "string"  # LuCI has no ADDRESS#PORT datatype; the daemon checks it

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        return {"kind": "server"}

    def parse(self, text: str) -> ServerAddress:
        return parse_server(text)


@dataclass(frozen=True)
class FilePath(ValueType[str]):
    """An absolute path on the router."""

    metavar = "PATH"

    @property
    def type_name(self) -> str:
        return "absolute file path"

    @property
    def luci_datatype(self) -> str:
        return "string"

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        return {"kind": "path"}

    def parse(self, text: str) -> str:
        word = text.strip()
        if not word.startswith("/") or any(ord(c) < 32 for c in word):
            raise ValueError(f"expected an absolute path like /tmp/resolv.conf.auto, got {text!r}")
        return word

    def to_json(self, value: str) -> JSONScalar:
        return value


@dataclass(frozen=True)
class FamilyAddress(ValueType[IPAddress | None]):
    """One address of one family; with ``optional`` an empty value means "not set"."""

    version: int
    optional: bool = False

    @property
    def metavar(self) -> str:  # type: ignore[override]
        return f"IPV{self.version}"

    @property
    def type_name(self) -> str:
        return f"IPv{self.version} address" + (" (may be empty)" if self.optional else "")

    @property
    def plural(self) -> str:
        return f"IPv{self.version} addresses"

    @property
    def luci_datatype(self) -> str:
        return f"ip{self.version}addr(1)"

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        return {"kind": "address", "family": self.version, "optional": self.optional}

    def parse(self, text: str) -> IPAddress | None:
        if self.optional and not text.strip():
            return None
        address = parse_address(text)
        if address.version != self.version:
            raise ValueError(f"expected an IPv{self.version} address, got {text!r}")
        return address

    def render(self, value: IPAddress | None) -> str:
        return "" if value is None else str(value)

    def to_json(self, value: IPAddress | None) -> JSONScalar:
        return None if value is None else str(value)


_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


@dataclass(frozen=True)
class Name(ValueType[str]):
    """An interface, instance or namespace name (Linux allows 15 characters for interfaces)."""

    what: str
    optional: bool = False
    metavar = "NAME"

    @property
    def type_name(self) -> str:
        return f"{self.what} name" + (" (may be empty)" if self.optional else "")

    @property
    def luci_datatype(self) -> str:
        return "string"

    @property
    def luci_rule(self) -> dict[str, JSONValue]:
        return {"kind": "name", "pattern": _NAME.pattern, "optional": self.optional}

    def parse(self, text: str) -> str:
        word = text.strip()
        if (self.optional and not word) or _NAME.match(word):
            return word
        raise ValueError(
            f"expected a {self.what} name of letters, digits, '_', '.', '-' "
            f"(at most 15), got {text!r}"
        )
