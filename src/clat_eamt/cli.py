"""The ``clat-eamt`` command.

    clat-eamt run [--config FILE]   the daemon: the DNS proxy dnsmasq forwards to
    clat-eamt status|mappings|hosts|history|config [--json]
                                    ask the running daemon (its control socket)
    clat-eamt add IPV4 IPV6 [--comment TEXT] | del IPV4 | flush
                                    change the running daemon's table
    clat-eamt config check FILE     validate a UCI file, print the effective configuration
    clat-eamt config defaults       print the default /etc/config/clat-eamt
    clat-eamt config docs           the options table (Markdown; `make docs` writes the README's)
    clat-eamt explain STEP...       what the core would do with these DNS answers

Exit status: 0 success, 1 a problem with the input (config, step, or arguments the daemon
refused), 2 usage error, 3 the daemon is not running, 4 the daemon failed to do it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from clat_eamt import __version__, explain
from clat_eamt.assemble import engine_from_config
from clat_eamt.config import (
    ConfigError,
    EffectiveConfig,
    add_arguments,
    apply_overrides,
    load_file,
    schema,
)
from clat_eamt.config import defaults as config_defaults
from clat_eamt.config.schema import CONFIG_PATH
from clat_eamt.control.methods import METHODS


def terminal_width() -> int:
    """What ``shutil.get_terminal_size`` finds (COLUMNS, else the terminal, else 80), without
    shutil: argparse's formatters import it when not told the width, and it loads bz2 and lzma
    with their libraries, 0.6 MB of the daemon's RSS (issue 14; every ``add_argument`` builds a
    formatter, so ``run`` paid it too)."""
    with contextlib.suppress(KeyError, ValueError):
        columns = int(os.environ["COLUMNS"])
        if columns > 0:  # as shutil: 0 or less means "ask the terminal"
            return columns
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    return 80


class Parser(argparse.ArgumentParser):
    """argparse's parser with formatters told the width (``terminal_width``); the parsers of
    its subcommands are of this class too (argparse makes them of their parent's type)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kind = kwargs.get("formatter_class", argparse.HelpFormatter)
        kwargs["formatter_class"] = functools.partial(kind, width=terminal_width() - 2)
        super().__init__(*args, **kwargs)  # (- 2: what argparse takes of the width)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="clat-eamt",
        description="464XLAT optimization: map the IPv4 destinations of IPv4-only hosts to their "
        "real IPv6 addresses (RFC 7757 EAM) so their flows skip the NAT64.",
    )
    parser.add_argument("--version", action="version", version=f"clat-eamt {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = commands.add_parser(
        "config",
        help="the running daemon's configuration; check and document configuration files",
        description="Without WHAT: the running daemon's effective configuration.",
    )
    _control_flags(config)
    config_commands = config.add_subparsers(dest="config_command", metavar="WHAT")
    check = config_commands.add_parser("check", help="validate a UCI file, print the result")
    check.add_argument("file", nargs="?", help="UCI file, e.g. /etc/config/clat-eamt")
    check.add_argument("--json", action="store_true", help="print JSON instead of UCI")
    check.add_argument(
        "--ubus",
        action="store_true",
        help='the ubus method check: read {"uci": TEXT} on stdin, print the verdict as JSON',
    )
    config_commands.add_parser("defaults", help="print the default UCI file")
    get = config_commands.add_parser(
        "get", help="print one option's effective value (the default when unset), for scripts"
    )
    get.add_argument("option", metavar="OPTION", help="a globals option, e.g. port")
    get.add_argument("--file", default=CONFIG_PATH, help=f"UCI file (default {CONFIG_PATH})")
    config_commands.add_parser("docs", help="print the options table (Markdown)")

    exp = commands.add_parser(
        "explain",
        help="show what the decision core would do with DNS answers",
        description=explain.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    exp.add_argument("steps", nargs="+", metavar="STEP", help="'NAME a=... aaaa=...' or 'tick=T'")
    exp.add_argument("--config", help="UCI file to take the options from")
    exp.add_argument("--json", action="store_true", help="print JSON")
    add_arguments(exp)

    run = commands.add_parser(
        "run",
        help="run the daemon (the DNS proxy behind dnsmasq)",
        description="Run the daemon in the foreground (procd supervises it on OpenWrt). "
        "SIGTERM stops it; SIGHUP reads the configuration again (mappings stay); SIGUSR1 "
        "writes the status and the mapping table to the log.",
    )
    run.add_argument("--config", default=CONFIG_PATH, help=f"UCI file (default {CONFIG_PATH})")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    run.add_argument(
        "--clean-stop",
        action="store_true",
        help="on stop remove everything installed, the translator entries running flows still "
        "use included (default: only the DNAT elements go, running flows keep working)",
    )
    run.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="json: one object per line"
    )
    run.add_argument(
        "--dnsmasq-hook",
        metavar="PATH",
        help="run `PATH guard` (OpenWrt: /usr/lib/clat-eamt/dnsmasq.sh): it points dnsmasq at "
        "the daemon once it listens and restores dnsmasq when the daemon ends, however it ends",
    )
    add_arguments(run)

    for name, method in METHODS.items():
        if name == "config":  # `config` also has the offline subcommands above
            continue
        sub = commands.add_parser(name, help=method.help, description=method.help)
        for arg in method.args:
            metavar = "FILE" if arg.file else arg.name.upper()
            if arg.required:
                sub.add_argument(arg.name, metavar=metavar, help=arg.help)
            else:
                sub.add_argument(f"--{arg.name}", metavar=metavar, help=arg.help)
        _control_flags(sub)
    return parser


def _control_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the daemon's JSON answer")
    parser.add_argument(
        "--socket",
        help="the daemon's control socket (default: control_socket of "
        f"{CONFIG_PATH}, else {schema.CONTROL_SOCKET.default})",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "config" and args.config_command is not None:
            return _config(args)
        if args.command in METHODS:
            return _control(args)
        if args.command == "run":
            return _run(args)
        return _explain(args)
    except ConfigError as err:
        print(f"clat-eamt: invalid configuration:\n{err}", file=sys.stderr)
        return 1
    except explain.StepError as err:
        print(f"clat-eamt explain: {err}", file=sys.stderr)
        return 1


def _config(args: argparse.Namespace) -> int:
    if args.config_command == "check" and args.ubus:
        from clat_eamt.control.check import check_call  # noqa: PLC0415

        print(json.dumps(check_call(sys.stdin.read()), separators=(",", ":")))
        return 0
    if args.config_command == "check":
        if args.file is None:
            print("clat-eamt config check: a FILE, or --ubus", file=sys.stderr)
            return 2
        cfg = load_file(args.file)
        if args.json:
            print(json.dumps(cfg.to_json(), indent=2))
        else:
            print(cfg.to_uci(), end="")
        return 0
    from clat_eamt.config import render  # noqa: PLC0415  (the docs' renderers: not the daemon's)

    if args.config_command == "defaults":
        print(render.uci_defaults(), end="")
        return 0
    if args.config_command == "get":
        option = schema.lookup(schema.GLOBALS, args.option)
        if option is None:
            print(f"clat-eamt config get: no option {args.option!r}", file=sys.stderr)
            return 2
        print(" ".join(option.words(load_file(args.file)[option])))
        return 0
    print(render.options_markdown(), end="")
    return 0


def _control(args: argparse.Namespace) -> int:
    """One call to the running daemon; its answer as a table, or as JSON with --json."""
    # Imported here, as the daemon's modules are in ``_run``: each command loads what it uses.
    from clat_eamt.control import views  # noqa: PLC0415
    from clat_eamt.control.client import (  # noqa: PLC0415
        CallFailedError,
        DaemonNotRunningError,
        call,
    )

    tables: dict[str, Callable[[Any], str]] = {
        "status": views.status_text,
        "mappings": views.mappings_text,
        "hosts": views.hosts_text,
        "config": views.config_text,
        "history": views.history_text,
        "overview": views.overview_text,
        "check": views.check_text,
    }
    method = METHODS[args.command]
    try:
        call_args = {
            a.name: _file_text(getattr(args, a.name)) if a.file else getattr(args, a.name)
            for a in method.args
            if getattr(args, a.name, None) is not None
        }
    except OSError as error:
        print(f"clat-eamt {method.name}: {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    try:
        result = call(args.socket or _socket_path(), method.name, call_args)
    except DaemonNotRunningError as error:
        print(f"clat-eamt {method.name}: {error}", file=sys.stderr)
        return 3
    except CallFailedError as error:
        print(f"clat-eamt {method.name}: {error}", file=sys.stderr)
        return 1 if error.code == "invalid-argument" else 4
    except OSError as error:  # any other socket failure: a clear line, never a traceback
        print(f"clat-eamt {method.name}: control socket: {error}", file=sys.stderr)
        return 4
    if args.json:
        print(json.dumps(result, indent=2))
    elif method.name in tables:
        print(tables[method.name](result))
    else:
        print(views.change_text(method.name, result))
    return 0


def _file_text(path: str) -> str:
    """A file argument's text (``-``: standard input)."""
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.read()


def _socket_path() -> str:
    """The control socket the installed configuration names (the default when unreadable)."""
    with contextlib.suppress(ConfigError):
        return str(load_file(CONFIG_PATH)[schema.CONTROL_SOCKET])
    return str(schema.CONTROL_SOCKET.default)


def _explain(args: argparse.Namespace) -> int:
    cfg: EffectiveConfig = load_file(args.config) if args.config else config_defaults()
    cfg = apply_overrides(cfg, args)
    steps = explain.parse_steps(args.steps)
    engine, installed = engine_from_config(cfg, steps[0].at if steps else 0.0)
    for refusal in installed.refusals:
        print(f"clat-eamt explain: static entry not installed: {refusal.detail}", file=sys.stderr)
    results = explain.run(engine, steps)
    if args.json:
        print(json.dumps(explain.render_json(engine, results), indent=2))
    else:
        print(explain.render_text(engine, results))
    return 0


def _run(args: argparse.Namespace) -> int:
    # The daemon speaks no TLS, and on OpenWrt python3-openssl is not among its dependencies,
    # so there asyncio runs without ssl: the same here (asyncio imports it if it can), which
    # keeps 6 MB of OpenSSL out of the daemon where the module happens to be installed.
    if "asyncio" not in sys.modules:
        sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]
    import asyncio  # noqa: PLC0415

    # Imported here: the offline commands need none of the daemon's modules.
    from clat_eamt import logs  # noqa: PLC0415
    from clat_eamt.daemon import Daemon, StartError  # noqa: PLC0415
    from clat_eamt.hook import from_argument  # noqa: PLC0415

    logs.setup(args.log_level, args.log_format)
    # First: whatever happens from here (a bad file included), the guard restores dnsmasq.
    hook = from_argument(args.dnsmasq_hook)
    if hook is not None:
        hook.start()
    try:
        cfg = apply_overrides(load_file(args.config), args)
        daemon = Daemon(cfg, load=lambda: apply_overrides(load_file(args.config), args))
        daemon.clean_on_stop = args.clean_stop
        daemon.on_listening = hook.ready if hook is not None else None
        asyncio.run(daemon.run_until_signalled())
    except StartError as error:
        print(f"clat-eamt run: {error}", file=sys.stderr)
        return 1
    finally:
        if hook is not None:
            hook.finish()
    return 0
