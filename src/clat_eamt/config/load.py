"""From UCI text, typed values or command-line flags to the one effective configuration.

All three inputs take the same road: words are parsed by the option's type, then the rules of
``schema`` run once over the assembled result, so the file and the flags are validated by the
same code.  Every problem is collected before ``ConfigError`` is raised, one line each, naming
the file line and option (or the flag) so the user can fix them all in one go.
Only ``load_file`` touches the file system.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar, cast

from clat_eamt.config.rules import globals_violations, static_violations
from clat_eamt.config.schema import (
    CONFIG_PATH,
    GLOBAL_OPTIONS,
    GLOBALS,
    OPTIONS,
    STATIC,
    STATIC_COMMENT,
    STATIC_IPV4,
    STATIC_IPV6,
    STATIC_OPTIONS,
    Option,
    StaticEntry,
    lookup,
)
from clat_eamt.config.types import Bool
from clat_eamt.config.uci import UciSection, UciSyntaxError, parse_uci, quote

T = TypeVar("T")
_INDEX = {option.name: index for index, option in enumerate(GLOBAL_OPTIONS)}
_UCI_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration.  ``option`` is a flag (``--ttl-min``) when the
    value came from the command line; ``section`` is a UCI reference ('web', '@static[0]')."""

    source: str
    line: int | None
    section: str | None
    option: str | None
    message: str

    def __str__(self) -> str:
        parts: list[str] = []
        if self.source:
            parts.append(self.source + (f":{self.line}" if self.line is not None else ""))
        if self.section and self.section != GLOBALS:
            parts.append(f"section '{self.section}'")
        if self.option:
            parts.append(self.option if self.option.startswith("-") else f"option '{self.option}'")
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(ValueError):
    """The configuration is not usable; ``problems`` lists everything found, in line order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))
        super().__init__("\n".join(str(p) for p in self.problems))

    def brief(self) -> str:
        """The problems of one run-time entry on one line, without a file's words."""
        return "; ".join(
            f"{p.option}: {p.message}" if p.option else p.message for p in self.problems
        )


@dataclass(frozen=True)
class _Given:
    """Where a globals option was set: a line of ``source`` or a command-line ``flag``."""

    source: str
    line: int | None = None
    flag: str | None = None

    def problem(self, option: str, message: str, line: int | None = None) -> Problem:
        if self.flag:
            return Problem("", None, None, self.flag, message)
        return Problem(self.source, self.line if line is None else line, GLOBALS, option, message)


@dataclass(frozen=True)
class EffectiveConfig:
    """The validated configuration; immutable.  ``cfg[schema.TTL_MIN]`` reads a globals option
    with its type.  Equality ignores where things were written (source, lines, flags)."""

    global_values: tuple[object, ...]  # in schema.GLOBAL_OPTIONS order
    static: tuple[StaticEntry, ...] = ()
    source: str = field(default="<defaults>", compare=False)
    given: Mapping[str, _Given] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )

    def __getitem__(self, option: Option[T]) -> T:
        if option.section != GLOBALS:
            raise KeyError(f"{option.name!r} belongs to {option.section} sections: see .static")
        return cast(T, self.global_values[_INDEX[option.name]])

    def to_json(self) -> dict[str, Any]:
        """``{"globals": {name: value}, "static": [{name, ipv4, ipv6, comment}]}``."""
        return {
            GLOBALS: {option.name: option.to_json(self[option]) for option in GLOBAL_OPTIONS},
            STATIC: [
                {"name": entry.name}
                | {o.name: o.to_json(getattr(entry, o.name)) for o in STATIC_OPTIONS}
                for entry in self.static
            ],
        }

    def to_uci(self) -> str:
        """This configuration as a UCI file (every globals option written out)."""
        lines = [f"config {GLOBALS} {quote(GLOBALS)}"]
        lines += ["\t" + line for o in GLOBAL_OPTIONS for line in o.uci_lines(self[o])]
        for entry in self.static:
            lines += ["", f"config {STATIC}" + (f" {quote(entry.name)}" if entry.name else "")]
            for option in STATIC_OPTIONS:
                value = getattr(entry, option.name)
                if option.required or value != option.default:
                    lines += ["\t" + line for line in option.uci_lines(value)]
        return "\n".join(lines) + "\n"


def defaults() -> EffectiveConfig:
    return EffectiveConfig(tuple(option.default for option in GLOBAL_OPTIONS))


def load_file(path: str | os.PathLike[str]) -> EffectiveConfig:
    source = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError([Problem(source, None, None, None, f"cannot read: {reason}")]) from None
    except UnicodeDecodeError as error:
        message = f"not UTF-8 text (bad byte at offset {error.start})"
        raise ConfigError([Problem(source, None, None, None, message)]) from None
    return load_text(text, source)


# --- the shared road: words -> typed values -> rules --------------------------------------------


@dataclass(frozen=True)
class _Setting:
    option: Option[Any]
    words: tuple[tuple[str, int | None], ...]  # (UCI word, its line)
    given: _Given


class _Assembly:
    """Globals values and statics on their way to an EffectiveConfig, with the problems so far."""

    def __init__(self, base: EffectiveConfig, source: str) -> None:
        self.source = source
        self.values = dict(zip(_INDEX, base.global_values, strict=True))
        self.given = dict(base.given)
        self.statics = list(base.static)
        self.refs = [entry.name or f"@{STATIC}[{i}]" for i, entry in enumerate(base.static)]
        self.failed: set[str] = set()  # options whose words did not parse; their rules are skipped
        self.problems: list[Problem] = []

    def apply(self, setting: _Setting) -> None:
        option, parsed, ok = setting.option, [], True
        for word, line in setting.words:
            try:
                parsed.append(option.type.parse(word))
            except ValueError as error:
                self.problems.append(setting.given.problem(option.name, str(error), line))
                ok = False
        if not ok:
            self.failed.add(option.name)
            return
        self.values[option.name] = tuple(parsed) if option.is_list else parsed[-1]
        self.given[option.name] = setting.given

    def finish(self) -> EffectiveConfig:
        cfg = EffectiveConfig(
            tuple(self.values[name] for name in _INDEX),
            tuple(self.statics),
            self.source,
            MappingProxyType(self.given),
        )
        self._check_rules(cfg)
        if self.problems:
            raise ConfigError(self.problems)
        return cfg

    def _check_rules(self, cfg: EffectiveConfig) -> None:
        def label(name: str) -> str:
            given = cfg.given.get(name)
            return given.flag if given and given.flag else name

        for violation in globals_violations(cfg, label):
            if not self.failed.intersection(violation.options):
                self.problems.append(self._locate(cfg, violation.options, violation.message))
        for violation in static_violations(cfg.static, cfg, label):
            if self.failed.intersection(violation.options) or violation.static_index is None:
                continue
            entry = cfg.static[violation.static_index]
            line = entry.line_of(violation.at) if violation.at else entry.line
            ref = self.refs[violation.static_index]
            self.problems.append(Problem(self.source, line, ref, violation.at, violation.message))

    def _locate(self, cfg: EffectiveConfig, options: tuple[str, ...], message: str) -> Problem:
        """Report a globals rule at a flag among its options if any, else at a file line."""
        set_ = [(name, cfg.given[name]) for name in options if name in cfg.given]
        flags = [(name, given) for name, given in set_ if given.flag]
        for name, given in flags or set_:
            return given.problem(name, message)
        return Problem(self.source, None, GLOBALS, options[0], message)


# --- UCI text ----------------------------------------------------------------------------------


def load_text(text: str, source: str = "<string>") -> EffectiveConfig:
    try:
        sections = parse_uci(text)
    except UciSyntaxError as error:
        raise ConfigError([Problem(source, error.line, None, None, error.message)]) from None
    assembly = _Assembly(defaults(), source)
    counts: dict[str, int] = {}
    named: dict[str, int] = {}
    globals_line: int | None = None
    for section in sections:
        ref = section.name or f"@{section.type}[{counts.get(section.type, 0)}]"
        counts[section.type] = counts.get(section.type, 0) + 1
        if section.name is not None:
            if section.name in named:
                first = named[section.name]
                _report(assembly, section, ref, f"the name is already used at line {first}")
            named.setdefault(section.name, section.line)
        if section.type == GLOBALS:
            if globals_line is not None:
                message = f"a second globals section (the first is at line {globals_line})"
                _report(assembly, section, ref, message + "; merge them into one")
                continue
            globals_line = section.line
            if section.name != GLOBALS:
                _report(assembly, section, ref, "the globals section must be named 'globals'")
            _load_globals(assembly, section, ref)
        elif section.type == STATIC:
            _load_static(assembly, section, ref)
        else:
            close = _close_matches(section.type, list(OPTIONS), n=1)
            hint = (
                f"; did you mean '{close[0]}'?" if close else f" (expected {' or '.join(OPTIONS)})"
            )
            _report(assembly, section, ref, f"unknown section type '{section.type}'{hint}")
    return assembly.finish()


def _report(assembly: _Assembly, section: UciSection, ref: str, message: str) -> None:
    assembly.problems.append(Problem(assembly.source, section.line, ref, None, message))


def _known_options(
    assembly: _Assembly, section: UciSection, ref: str
) -> Iterable[tuple[Option[Any], tuple[tuple[str, int | None], ...], int]]:
    """The section's options the schema knows, as (option, words, line); reports the others."""
    for given in section.options:
        option = lookup(section.type, given.name)
        if option is None:
            problem = _unknown_option(section.type, given.name)
        elif given.is_list and not option.is_list:
            problem = f"takes a single value: write `option {given.name} '...'`, not `list`"
        else:
            yield option, tuple((value.text, value.line) for value in given.values), given.line
            continue
        assembly.problems.append(Problem(assembly.source, given.line, ref, given.name, problem))


def _unknown_option(section_type: str, name: str) -> str:
    names = [option.name for option in OPTIONS[section_type]]
    close = _close_matches(name.lower(), names, n=1)
    if close:
        return f"unknown option; did you mean '{close[0]}'?"
    elsewhere = [other for other in OPTIONS if other != section_type and lookup(other, name)]
    if elsewhere:
        return f"unknown option here; '{name}' belongs in a {elsewhere[0]} section"
    return f"unknown option (known: {', '.join(names)})"


def _load_globals(assembly: _Assembly, section: UciSection, ref: str) -> None:
    for option, words, line in _known_options(assembly, section, ref):
        assembly.apply(_Setting(option, words, _Given(assembly.source, line)))


def _load_static(assembly: _Assembly, section: UciSection, ref: str) -> None:
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    before = len(assembly.problems)
    for option, words, line in _known_options(assembly, section, ref):
        lines[option.name] = line
        try:
            values[option.name] = option.type.parse(words[0][0])
        except ValueError as error:
            assembly.problems.append(Problem(assembly.source, line, ref, option.name, str(error)))
    for option in STATIC_OPTIONS:
        if option.required and option.name not in lines:
            assembly.problems.append(
                Problem(assembly.source, section.line, ref, option.name, "required, but missing")
            )
    if len(assembly.problems) > before:
        return  # an incomplete entry would only cause follow-up noise in the rules
    assembly.statics.append(
        StaticEntry(
            ipv4=values[STATIC_IPV4.name],
            ipv6=values[STATIC_IPV6.name],
            comment=values.get(STATIC_COMMENT.name, ""),
            name=section.name,
            line=section.line,
            option_lines=tuple(lines.items()),
        )
    )
    assembly.refs.append(ref)


# --- typed values and command-line flags -------------------------------------------------------


def from_values(
    values: Mapping[Option[Any], object] | None = None,
    static: Iterable[StaticEntry] = (),
    source: str = "<values>",
) -> EffectiveConfig:
    """A configuration from typed globals values (others at their defaults) and static entries,
    checked like a file."""
    assembly = _Assembly(EffectiveConfig(defaults().global_values, tuple(static)), source)
    for option, value in (values or {}).items():
        if option.section != GLOBALS:
            raise KeyError(f"{option.name!r} is not a globals option")
        words = tuple((word, None) for word in option.words(value))
        assembly.apply(_Setting(option, words, _Given(source)))
    for ref, entry in zip(assembly.refs, assembly.statics, strict=True):
        if entry.name is not None and not _UCI_NAME.match(entry.name):
            message = "a section name may hold letters, digits and '_' only"
            assembly.problems.append(Problem(source, None, ref, None, message))
    return assembly.finish()


def static_from_words(words: Mapping[str, str], source: str) -> StaticEntry:
    """One static entry from its options as UCI words (``{"ipv4": "192.0.2.10", ...}``), each
    parsed by its schema type: what ``clat-eamt add`` and the control API accept."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    known = {option.name for option in STATIC_OPTIONS}
    for name in sorted(set(words) - known):
        problems.append(Problem(source, None, None, name, _unknown_option(STATIC, name)))
    for option in STATIC_OPTIONS:
        word = words.get(option.name)
        if word is None:
            if option.required:
                problems.append(Problem(source, None, None, option.name, "required, but missing"))
            continue
        try:
            values[option.name] = option.type.parse(word)
        except ValueError as error:
            problems.append(Problem(source, None, None, option.name, str(error)))
    if problems:
        raise ConfigError(problems)
    return StaticEntry(
        ipv4=values[STATIC_IPV4.name],
        ipv6=values[STATIC_IPV6.name],
        comment=values.get(STATIC_COMMENT.name, ""),
    )


def with_static(
    cfg: EffectiveConfig, static: Iterable[StaticEntry], source: str
) -> EffectiveConfig:
    """``cfg`` with its static entries replaced by ``static``, checked by the same rules as a
    file (the pool, Pref64, overlaps between entries): a run-time ``add`` is validated exactly
    like the configuration."""
    base = EffectiveConfig(cfg.global_values, tuple(static), cfg.source, cfg.given)
    return _Assembly(base, source).finish()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per globals option (``--ttl-min N``); everything defaults to None (not given)."""
    group = parser.add_argument_group(
        "configuration", f"override options of the globals section of {CONFIG_PATH}"
    )
    for option in GLOBAL_OPTIONS:
        text = _flag_help(option)
        if isinstance(option.type, Bool):
            group.add_argument(
                option.flag, dest=option.name, action=argparse.BooleanOptionalAction, help=text
            )
        else:
            group.add_argument(
                option.flag,
                dest=option.name,
                action="append" if option.is_list else "store",
                metavar=option.type.metavar,
                help=text,
            )


def _flag_help(option: Option[Any]) -> str:
    if option.is_list:
        extra = "repeatable; replaces the list of the file"
    elif isinstance(option.type, Bool):
        extra = "default: " + ("on" if option.default else "off")
    else:
        extra = f"default: {option.words(option.default)[0]}"
    return f"{option.help} ({extra})".replace("%", "%%")  # argparse formats help with %


def apply_overrides(cfg: EffectiveConfig, namespace: argparse.Namespace) -> EffectiveConfig:
    """``cfg`` with the flags of ``namespace`` applied, validated again as a whole."""
    assembly = _Assembly(cfg, cfg.source)
    for option in GLOBAL_OPTIONS:
        raw = getattr(namespace, option.name, None)
        if raw is None:
            continue
        if isinstance(raw, bool):
            texts: list[str] = [option.type.render(raw)]
        elif isinstance(raw, list):
            texts = [str(item) for item in raw]
        else:
            texts = [str(raw)]
        words = tuple((text, None) for text in texts)
        assembly.apply(_Setting(option, words, _Given(cfg.source, flag=option.flag)))
    return assembly.finish()


def _close_matches(word: str, choices: list[str], n: int) -> list[str]:
    """difflib's suggestion, imported only when a file has an unknown name."""
    import difflib  # noqa: PLC0415

    return difflib.get_close_matches(word, choices, n=n)
