"""The daemon's state and decisions between the sockets, in the manner of h11: events in,
commands out, no I/O and no clock reads (time is an argument of every call).

- ``events``    what the outside world reports: an answer observed, a tick with the flows and
                the neighbour tables, a batch done or failed, a reload, the operator's actions,
                the dataplane's start, death and probe results, a Pref64 found.
- ``commands``  what the runtime asks of the outside world: apply operations, publish entry
                events, restart the dataplane, hook DNS, ask a name again, log a line.
- ``settings``  what each component takes from the configuration, and which options only a
                restart can change (``restart_needed``).
- ``runtime``   ``Runtime.handle(event, now) -> [Command]``: the engine, the host memory, the
                Pref64 sources, the configuration and the counters in one object.
- ``provider``  the operator's table: taken whole or refused whole, fetched when due, its status.
- ``snapshot``  the frozen view that status, the control socket, ubus and LuCI read.

``daemon`` is the driver: it turns sockets, timers and processes into events and the commands
into I/O.
"""
