"""What a reload (SIGHUP, `service clat-eamt reload`) changes in a running daemon.

OpenWrt reloads a service when its UCI config is committed (procd's reload trigger) and on WAN
events.  A reload must not drop mappings, so it applies every option it can in place (policy,
limits, static entries, upstreams, hold times) and keeps the ones marked ``restart`` in the
schema (sockets, pool, translator), and those a component of the running configuration took at
start (``runtime.settings``), at their running values until the service restarts; status says
which those are.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from clat_eamt.config.load import EffectiveConfig
from clat_eamt.config.schema import GLOBAL_OPTIONS


@dataclass(frozen=True)
class ReloadPlan:
    config: EffectiveConfig  # the new configuration, restart-only options at running values
    changed: tuple[str, ...]  # options (and "static") that the reload changes now
    restart_needed: tuple[str, ...]  # options whose new value waits for a restart


def plan_reload(
    running: EffectiveConfig, new: EffectiveConfig, fixed: Collection[str] | None = None
) -> ReloadPlan:
    """``fixed``: the options the running components cannot change (default: the schema's
    ``restart`` options; ``runtime.settings.fixed_options`` adds those of the translator)."""
    if fixed is None:
        fixed = {option.name for option in GLOBAL_OPTIONS if option.restart}
    values, changed, restart = [], [], []
    for option, old_value, new_value in zip(
        GLOBAL_OPTIONS, running.global_values, new.global_values, strict=True
    ):
        if old_value == new_value:
            values.append(old_value)
        elif option.name in fixed:
            values.append(old_value)
            restart.append(option.name)
        else:
            values.append(new_value)
            changed.append(option.name)
    if running.static != new.static:
        changed.append("static")
    merged = EffectiveConfig(tuple(values), new.static, new.source, new.given)
    return ReloadPlan(merged, tuple(changed), tuple(restart))
