"""``clat-eamt explain``: run the decision core on answers typed on the command line.

Each step is one argument, a name followed by ``key=value`` words::

    www.example.com a=192.0.2.10 aaaa=2001:db8:1::10 ttl=300
    other.example   a=192.0.2.10 aaaa=nodata host=dual-stack at=30
    tick=400        (time passes to t=400 s; no flows are live)

Keys: ``a`` (comma-separated IPv4s, may be empty), ``aaaa`` (IPv6s, or nodata / nxdomain /
servfail / timeout), ``ttl`` (both answers) or ``a_ttl`` / ``aaaa_ttl`` (default 300), ``ad``
(answers were DNSSEC-validated), ``host`` (ipv4-only, dual-stack, unknown or none; default
ipv4-only), ``mac`` (host key), ``qtype`` (default A), ``at`` (seconds; default one after the
previous step).  Nothing here touches the network: it is the same code the daemon runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from clat_eamt.core.engine import Engine, Outcome
from clat_eamt.core.model import AaaaStatus, Host, HostClass, LiveFlows, Observation
from clat_eamt.present import entries_text, entry_json, op_text, outcome_json, outcome_lines

DEFAULT_TTL = 300
_FLAGS = {"ad"}
_KEYS = {"a", "aaaa", "ttl", "a_ttl", "aaaa_ttl", "host", "mac", "qtype", "at"}


class StepError(ValueError):
    """A step argument that cannot be understood; the message names the word."""


@dataclass(frozen=True)
class Step:
    at: float
    observation: Observation | None  # None: a tick


def parse_steps(args: list[str]) -> list[Step]:
    steps: list[Step] = []
    now = -1.0
    for arg in args:
        step = parse_step(arg, now + 1)
        now = step.at
        steps.append(step)
    return steps


def parse_step(arg: str, default_at: float) -> Step:
    words = arg.split()
    if not words:
        raise StepError("empty step")
    if words[0].startswith("tick="):
        return Step(_number(words[0], "tick"), None)
    name, fields = words[0], _fields(words[1:])
    at = _number(f"at={fields['at']}", "at") if "at" in fields else default_at
    ttl = int(_number(f"ttl={fields.get('ttl', DEFAULT_TTL)}", "ttl"))
    a_ttl = int(_number(f"a_ttl={fields.get('a_ttl', ttl)}", "a_ttl"))
    aaaa_ttl = int(_number(f"aaaa_ttl={fields.get('aaaa_ttl', ttl)}", "aaaa_ttl"))
    a = tuple(_addresses(fields.get("a", ""), IPv4Address, "a"))
    status, aaaa = _aaaa(fields.get("aaaa", "nodata"))
    obs = Observation(
        name=name,
        a=a,
        a_ttl=a_ttl,
        aaaa_status=status,
        aaaa=aaaa,
        aaaa_ttl=aaaa_ttl,
        authenticated="ad" in fields,
        host=_host(fields.get("host", "ipv4-only"), fields.get("mac", "explain-host")),
        qtype=fields.get("qtype", "A"),
    )
    return Step(at, obs)


def _fields(words: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep and key in _FLAGS:
            fields[key] = "1"
        elif key in _KEYS and sep:
            fields[key] = value
        else:
            known = ", ".join(sorted(_KEYS | _FLAGS))
            raise StepError(f"unknown word {word!r} (known: {known})")
    return fields


def _number(word: str, key: str) -> float:
    value = word.partition("=")[2]
    try:
        number = float(value)
    except ValueError:
        raise StepError(f"{key}: expected a number, got {value!r}") from None
    if number < 0:
        raise StepError(f"{key}: must not be negative")
    return number


def _addresses(text: str, kind: type[Any], key: str) -> list[Any]:
    family = "IPv4" if kind is IPv4Address else "IPv6"
    out = []
    for part in filter(None, text.split(",")):
        try:
            out.append(kind(part))
        except ValueError:
            raise StepError(f"{key}: {part!r} is not an {family} address") from None
    return out


def _aaaa(text: str) -> tuple[AaaaStatus, tuple[IPv6Address, ...]]:
    if text in {s.value for s in AaaaStatus} - {AaaaStatus.ANSWER.value}:
        return AaaaStatus(text), ()
    addresses = tuple(_addresses(text, IPv6Address, "aaaa"))
    return (AaaaStatus.ANSWER, addresses) if addresses else (AaaaStatus.NODATA, ())


def _host(klass: str, key: str) -> Host | None:
    if klass == "none":
        return None
    try:
        return Host(key, HostClass(klass))
    except ValueError:
        choices = ", ".join([c.value for c in HostClass] + ["none"])
        raise StepError(f"host: {klass!r} is not one of {choices}") from None


def run(engine: Engine, steps: list[Step]) -> list[tuple[Step, Outcome]]:
    results = []
    for step in steps:
        if step.observation is None:
            outcome = engine.tick(step.at, LiveFlows())
        elif engine.ipv6_only.applies(step.observation.a):  # as the daemon does (issue 27)
            outcome, _, _ = engine.synthesize(step.observation, step.at)
        else:
            outcome = engine.observe(step.observation, step.at)
        results.append((step, outcome))
    return results


def render_text(engine: Engine, results: list[tuple[Step, Outcome]]) -> str:
    lines: list[str] = []
    for step, outcome in results:
        obs = step.observation
        if obs is None:
            lines.append(f"[t={step.at:g}] time passes (no live flows)")
        else:
            aaaa = ",".join(map(str, obs.aaaa)) or str(obs.aaaa_status)
            a = ",".join(map(str, obs.a)) or "-"
            host = obs.host.klass if obs.host else "unknown client"
            lines.append(f"[t={step.at:g}] {obs.name} A {a} AAAA {aaaa} ({host})")
        lines += [f"  {line}" for line in outcome_lines(outcome)]
        lines += [f"  dataplane: {op_text(op)}" for op in outcome.ops]
    now = results[-1][0].at if results else 0.0
    lines += ["", f"table at t={now:g}:", entries_text(engine.table, now)]
    return "\n".join(lines)


def render_json(engine: Engine, results: list[tuple[Step, Outcome]]) -> dict[str, Any]:
    now = results[-1][0].at if results else 0.0
    return {
        "steps": [{"at": step.at, **outcome_json(out, step.at)} for step, out in results],
        "table": [entry_json(e, now) for e in sorted(engine.table, key=lambda e: e.key)],
        "counters": dict(sorted(engine.counters.items())),
    }
