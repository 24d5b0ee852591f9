"""The daemon's local control API.

- ``methods``  the one table of methods (status, mappings, hosts, add, del, flush, config) that
               the control socket, the CLI and the ubus object share.
- ``server``   the table as line-delimited JSON on a root-only Unix socket (in the daemon).
- ``client``   one blocking call, for the CLI.
- ``views``    the readable tables the CLI prints without ``--json``.
"""
