"""clat-eamt: map the IPv4 destinations of IPv4-only LAN hosts to their real IPv6 addresses.

The package is laid out as the architecture:

- ``core``   pure decisions, no I/O: address policy, Pref64, names, the mapping table and its
             lifecycle, the pool, limits, the decision function and the dataplane diff.
- ``config`` the one option schema, the UCI parser and the effective configuration.
- ``cli``    the ``clat-eamt`` command.
"""

__version__ = "0.1.0"
