"""The configuration of clat-eamt: one option schema from which everything else is derived.

The parts, in reading order:

- ``types``     option value types: parse a UCI word, render it back, JSON form, LuCI datatype.
- ``nettypes``  value types for where the daemon talks DNS: listen address, DNS server, path.
- ``schema``    the one table of options (name, type, default, help).
- ``rules``     the rules between options, written once for the file and the flags.
- ``uci``       the OpenWrt UCI file syntax (what ``uci import`` accepts), from text, no I/O.
- ``load``      UCI text, typed values or command-line flags -> the validated ``EffectiveConfig``;
                every problem collected into one ``ConfigError``.
- ``reload``    what a reload changes now and what waits for a restart.
- ``render``    derived artefacts: the README options table and the default /etc/config file.
"""

from clat_eamt.config import schema
from clat_eamt.config.load import (
    ConfigError,
    EffectiveConfig,
    Problem,
    add_arguments,
    apply_overrides,
    defaults,
    from_values,
    load_file,
    load_text,
    static_from_words,
    with_static,
)
from clat_eamt.config.schema import Option, StaticEntry
from clat_eamt.config.uci import UciSyntaxError, parse_uci

__all__ = [
    "ConfigError",
    "EffectiveConfig",
    "Option",
    "Problem",
    "StaticEntry",
    "UciSyntaxError",
    "add_arguments",
    "apply_overrides",
    "defaults",
    "from_values",
    "load_file",
    "load_text",
    "parse_uci",
    "schema",
    "static_from_words",
    "with_static",
]
