"""The WAN's resolvers from resolv.conf, re-read when the file changes."""

from __future__ import annotations

import os
from ipaddress import ip_address

from clat_eamt.config.nettypes import ServerAddress
from clat_eamt.dns.resolvconf import ResolvConf, parse_resolv_conf

OPENWRT_AUTO = """\
# Interface wan6
nameserver 2001:db8::53
nameserver 2001:db8::54 # second
search lan
nameserver 127.0.0.1
nameserver fe80::1
nameserver fe80::1%wan
nameserver not-an-address
options ndots:1
"""


def test_parse_keeps_order_and_skips_what_would_loop_or_cannot_work():
    servers, skipped = parse_resolv_conf(OPENWRT_AUTO)
    assert servers == (
        ServerAddress(ip_address("2001:db8::53")),
        ServerAddress(ip_address("2001:db8::54")),
        ServerAddress(ip_address("fe80::1%wan")),
    )
    assert len(skipped) == 3
    assert any("would loop" in s for s in skipped)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_file_is_followed_when_it_changes(tmp_path):
    path = tmp_path / "resolv.conf.auto"
    clock = Clock()
    source = ResolvConf(str(path), clock)
    assert source.servers() == () and "No such file" in (source.problem or "")
    path.write_text("nameserver 192.0.2.53\n")
    assert source.servers() == ()  # checked at most once a second
    clock.now += 1
    assert source.servers() == (ServerAddress(ip_address("192.0.2.53")),)
    assert source.problem is None
    path.write_text("nameserver 2001:db8::53\nnameserver 192.0.2.53\n")
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
    clock.now += 1
    assert [str(s) for s in source.servers()] == ["2001:db8::53", "192.0.2.53"]
    path.write_text("")
    clock.now += 1
    assert source.servers() == () and "no usable nameserver" in (source.problem or "")
