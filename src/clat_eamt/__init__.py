"""clat-eamt: map the IPv4 destinations of IPv4-only LAN hosts to their real IPv6 addresses.

The package is laid out as the architecture (README.md, "Architecture", lists every module):

- ``core``       pure decisions, no I/O: address policy, Pref64, names, hosts, the mapping table
                 and its lifecycle, the pool, limits, the decision function, the dataplane diff.
- ``runtime``    the daemon's state and decisions around the core, sans I/O: events in,
                 commands out, a frozen snapshot.
- ``config``     the one option schema, the UCI parser and the effective configuration.
- ``dns``        the DNS shell: the proxy dnsmasq forwards to.
- ``dataplane``  the dataplane shells: nftables, the CLAT, conntrack, the neighbour tables.
- ``control``    the control API: socket, ubus, the CLI's views.
- ``daemon``     the asyncio driver: sockets, timers and processes -> events; commands -> I/O.
- ``cli``        the ``clat-eamt`` command.
"""

__version__ = "0.1.0"
