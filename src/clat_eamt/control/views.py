"""What the CLI prints without ``--json``: the methods' JSON results as short readable text.

Views read only the JSON (never daemon objects), so the CLI shows exactly what ubus and LuCI get.
"""

from __future__ import annotations

import time
from typing import Any

from clat_eamt.config.schema import GLOBALS, SECTION_SYNTAX, STATIC, STATIC_OPTIONS
from clat_eamt.config.uci import quote, statement
from clat_eamt.present import mappings_table, table_text

JSON = dict[str, Any]


def _duration(seconds: float) -> str:
    """3725 -> "1h 2m 5s" (seconds dropped after a day)."""
    s = int(seconds)
    units = [("d", s // 86400), ("h", s % 86400 // 3600), ("m", s % 3600 // 60), ("s", s % 60)]
    if s >= 86400:
        units = units[:-1]
    shown = [f"{n}{unit}" for unit, n in units if n]
    return " ".join(shown) or "0s"


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "none"


def _clat_text(dp: JSON) -> str:
    """The CLAT the mappings steer on (dataplane v2) and how nft is driven."""
    clat = dp.get("clat")
    if not clat:
        return "none in use" + (f" (nft via {dp['nft']})" if dp.get("nft") else "")
    if "device" not in clat:  # Jool's EAM table
        return f"Jool instance {clat.get('instance')} (EAM), nft via {dp.get('nft')}"
    pref64 = f", Pref64 {clat['pref64']}" if clat.get("pref64") else ""
    return f"{clat['device']} ({clat['kind']}, {clat['found_by']}){pref64}, nft via {dp.get('nft')}"


def _ipv6_only_line(v6: JSON) -> list[tuple[str, str]]:
    """The IPv6-only names' line (``core.ipv6only``), when the option is on."""
    if not v6.get("enabled"):
        return []
    text = f"{v6.get('mappings', 0)} mappings now, {v6.get('answers', 0)} A answers made, "
    return [("ipv6-only", text + f"{v6.get('quarantined', 0)} pool addresses in quarantine")]


def status_text(s: JSON) -> str:
    dp, pref64, up, hosts = s["dataplane"], s["pref64"], s["upstreams"], s["hosts"]
    summary = s.get("summary") or {}
    maps = summary.get("mappings") or {}
    health = (
        "ok"
        if not dp["error"] and not dp["last_error"]
        else f"ERROR {dp['error'] or dp['last_error']}"
    )
    prefixes = ", ".join(pref64["prefixes"]) or "none (nothing is mapped until one is known)"
    servers = ", ".join(
        f"{u['server']} {u['state']}{' (preferred)' if u['preferred'] else ''}"
        for u in up["servers"]
    )
    install = dp["install"]
    lines = [
        ("daemon", f"clat-eamt {s['version']}, up {_duration(s['uptime'])}, DNS on {s['listen']}"
         + ("" if s["enabled"] else ", optimization DISABLED")),
        ("translator", f"{dp['name']}: {health}"),
        ("clat", _clat_text(dp)),
        ("pref64", f"{prefixes} (source: {pref64['source']})"),
        ("upstreams", f"{servers or 'none'} (from {up['source']})"
         + (f"; {up['problem']}" if up["problem"] else "")),
        ("hosts", f"{hosts['ipv4_only']} IPv4-only, {hosts['dual_stack']} dual-stack"
         + (f" (neighbour tables unreadable: {hosts['error']})" if hosts.get("error")
            else " (neighbour tables not read yet)" if hosts["unsure"] else "")),
        ("dns", f"{summary.get('queries', 0)} queries, {summary.get('a_queries', 0)} A, "
         f"{summary.get('a_with_aaaa', 0)} A with AAAA"),
        ("mappings", f"{s['mappings']} now; created {maps.get('created', 0)}, refreshed "
         f"{maps.get('refreshed', 0)}, stale {maps.get('stale', 0)} (expired "
         f"{maps.get('expired', 0)}), deleted {maps.get('deleted', 0)}"),
        ("refused", _pairs(maps.get("refused", {}))),
        *_ipv6_only_line(s.get("ipv6_only") or {}),
        ("dataplane", f"apply failures {summary.get('apply_failures', 0)}, answers released "
         f"unmapped {summary.get('released_unmapped', 0)}"
         + (f", install p50 {install['p50_ms']} ms p99 {install['p99_ms']} ms" if install else "")),
    ]  # fmt: skip
    flows = s.get("flows")
    lines.append(
        ("flows", "unknown (conntrack unreadable or no dataplane)" if flows is None
         else f"{flows['native']} native (EAM), {flows['nat64']} through the NAT64")
    )  # fmt: skip
    lines.append(("safety", safety_text(s.get("safety"), summary.get("safety") or {})))
    seen = (s.get("memory") or {}).get("answers_seen")
    if seen:
        lines.append(("memory", _seen_text(seen)))
    if s["control"]["error"]:
        lines.append(("control", s["control"]["error"]))
    if s.get("provider") and (s["provider"]["url"] or s["provider"]["last"]):
        lines.append(("provider", provider_text(s["provider"])))
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in lines)


def safety_text(safety: JSON | None, counted: JSON) -> str:
    """The safety net on one line (issue 25): its brake, what it rescued, the verdicts."""
    if safety is not None and not safety.get("enabled"):
        return "off"
    text = ""
    if safety is not None:
        brake = safety["brake"]
        text = f"brake {brake['state']}"
        if brake.get("retry_in_s") is not None:
            text += f" (trial in {brake['retry_in_s']} s)"
        text += "; "
    text += (
        f"rescued {counted.get('rescued', 0)} ({counted.get('flows_deleted', 0)} conntrack "
        f"entries deleted), stale by broken "
        f"{counted.get('stale_by_broken', 0)}, suspended {counted.get('suspended', 0)}, "
        f"verdicts working "
        f"{counted.get('verdicts_working', 0)} broken {counted.get('verdicts_broken', 0)}, "
        f"probes {counted.get('probes', 0)}, brake engaged {counted.get('brake_engaged', 0)} "
        f"released {counted.get('brake_released', 0)}"
    )
    broken = [v for v in (safety or {}).get("verdicts", []) if v.get("verdict") == "broken"]
    if broken:
        shown = ", ".join(
            f"{v['target']} (for {v['age_s']} s, retry in {v.get('retry_in_s')} s)"
            for v in broken[:3]
        )
        text += f"; broken now: {shown}" + (
            f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        )
    held = (safety or {}).get("suspended") or []
    if held:  # static and provider destinations not steered now (core.suspend)
        shown = ", ".join(f"{d['ipv4']} (retry in {d['retry_in_s']} s)" for d in held[:3])
        total = (safety or {}).get("suspended_total", len(held))
        text += f"; suspended now: {shown}" + (f" and {total - 3} more" if total > 3 else "")
    if safety is not None and safety.get("error"):
        text += f"; ERROR {safety['error']}"
    return text


def _seen_text(seen: JSON) -> str:
    """The memory of answers seen (core.seen): how full, and whether it refuses for now."""
    text = (
        f"answers seen {seen['pairs']} of {seen['capacity']} (IPv4, name) pairs, "
        f"{seen['bytes'] // 1024} of {seen['max_bytes'] // 1024} KB of names"
    )
    if seen["blind_for"]:
        text += f"; FULL: new mappings refused for {seen['blind_for']} s more"
    return text + (f" ({seen['refused']} pairs not kept)" if seen["refused"] else "")


def provider_text(p: JSON) -> str:
    """The operator's table on one line: where from, what is in place, the last offer, the next
    fetch."""
    source = p["url"] or "pushed only"
    held = (
        f"serial {p['serial']}, {p['entries']} entries ({p['installed']} installed)"
        if p["serial"] is not None
        else "no table yet"
    )
    last = p["last"] or {}
    said = f"last {last['via']} {last['result']}" if last else "not fetched yet"
    if last.get("error"):
        said += f": {last['error']}"
    when = p["next_fetch_in"]
    upcoming = "" if when is None else f"; next fetch in {_duration(when)}"
    signed = ", signed" if p["signed"] else ""
    return f"{source}{signed}: {held}; {said}{upcoming}"


def mappings_text(rows: list[JSON]) -> str:
    return mappings_table(rows, flows=True)


def overview_text(overview: JSON) -> str:
    """The status, then the page of mappings with how many there are."""
    page = overview["mappings"]
    shown = f"mappings {page['offset'] + 1}-{page['offset'] + len(page['rows'])} of {page['total']}"
    parts = [status_text(overview["status"]), ""]
    parts += [mappings_text(page["rows"]), shown] if page["rows"] else [f"no {shown}"]
    return "\n".join(parts)


def check_text(verdict: JSON) -> str:
    if verdict["valid"]:
        return "valid"
    return "\n".join(p["text"] for p in verdict["problems"])


def hosts_text(rows: list[JSON]) -> str:
    if not rows:
        return "(no LAN hosts seen yet)"
    table = [
        [r["ipv4"] or "-", r["mac"], r["class"], f"{r['last_seen']:.0f}s ago", r["why"]]
        for r in rows
    ]
    return table_text(table, ["ipv4", "mac", "class", "seen", "why"])


def history_text(history: JSON) -> str:
    """The flow samples of the last hour, oldest first, local time."""
    points = history["points"]
    if not points:
        return f"(no samples yet: one every {history['interval']:.0f} s)"
    rows = [
        [time.strftime("%H:%M:%S", time.localtime(p["time"])), str(p["native"]), str(p["nat64"])]
        for p in points
    ]
    return table_text(rows, ["time", "native", "nat64"])


def config_text(cfg: JSON) -> str:
    """The effective configuration in UCI syntax (values as the daemon holds them)."""
    lines = [SECTION_SYNTAX[GLOBALS]]
    for name, value in cfg["globals"].items():
        lines += _option_lines(name, value)
    for entry in cfg["static"]:
        lines += [
            "",
            f"config {STATIC}" + (f" {quote(entry['name'])}" if entry.get("name") else ""),
        ]
        for option in STATIC_OPTIONS:
            if entry.get(option.name):
                lines += _option_lines(option.name, entry[option.name])
    return "\n".join(lines)


def _option_lines(name: str, value: Any) -> list[str]:
    """JSON values back to UCI words (booleans are 1/0 in UCI)."""
    values = value if isinstance(value, list) else [] if value is None else [value]
    keyword = "list" if isinstance(value, list) else "option"
    words = [("1" if v else "0") if isinstance(v, bool) else str(v) for v in values]
    return ["\t" + statement(keyword, name, w) for w in words]


def change_text(method: str, result: JSON) -> str:
    """One line for add / del / flush."""
    dataplane = result.get("dataplane", "none")
    installed = {
        "done": "installed",
        "none": "nothing to install",
        "late": "still being installed",
        "failed": "NOT installed: the dataplane failed (see `clat-eamt status`)",
    }.get(dataplane, dataplane)
    if method == "provider":
        return f"table taken: {provider_text(result['provider'])}; {installed}"
    if method == "flush":
        flushed = result["flushed"]
        return f"flushed {flushed} learned entries (running flows keep their path); {installed}"
    entries = result.get("added") or result.get("deleted") or []
    what = "; ".join(f"{e['ipv4']} -> {e['ipv6']} via {e['pool']}" for e in entries) or "no entry"
    verb = "added" if method == "add" else "deleted (running flows keep it until they end)"
    return f"{verb}: {what}; {installed}"
