"""The daemon's control API: ``clat-eamt status`` and friends, ubus and the LuCI pages.

- ``methods``      the one table of methods (status, overview, mappings, hosts, add, del,
                   flush, config, check, history) that the control socket, the CLI and the
                   ubus object share.
- ``target``       what the methods read: the runtime's snapshot, the flow census, and the
                   operator's actions handed to the runtime as events.
- ``server``       the table as line-delimited JSON on a root-only Unix socket (in the daemon).
- ``ubus_object``  the same table on OpenWrt's bus; mapping changes as ubus events.
- ``check``        the daemon's configuration check of a UCI text (method check; LuCI's Save).
- ``client``       one blocking call, for the CLI.
- ``views``        the readable tables the CLI prints without ``--json``.
"""
