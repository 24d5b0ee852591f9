"""The ``clat-eamt`` command: explain on the five cases of issue 2, config check, errors."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from clat_eamt.cli import main
from clat_eamt.config import render
from clat_eamt.config.render import uci_defaults

LAB = ["--allow-documentation", "--pref64", "2001:db8:64::/96"]


def explain_json(capsys, *steps, flags=LAB):
    assert main(["explain", "--json", *flags, *steps]) == 0
    return json.loads(capsys.readouterr().out)


def test_explain_dual_stack_name_creates_a_mapping(capsys):
    out = explain_json(capsys, "www.example.com a=192.0.2.10 aaaa=2001:db8:1::10 ttl=120")
    (step,) = out["steps"]
    assert [e["kind"] for e in step["events"]] == ["added"]
    (entry,) = out["table"]
    assert (entry["ipv4"], entry["ipv6"], entry["state"], entry["origin"]) == (
        "192.0.2.10",
        "2001:db8:1::10",
        "valid",
        "dns",
    )
    assert entry["fqdn"] == "www.example.com" and entry["expires_in"] == 120
    assert step["ops"] == [
        f"ipv6 leg add {entry['pool']} -> 2001:db8:1::10",
        f"ipv4 leg add 192.0.2.10 -> {entry['pool']}",
    ]


def test_explain_ipv4_only_name_maps_nothing(capsys):
    out = explain_json(capsys, "v4only.example a=192.0.2.20 aaaa=nodata")
    assert out["table"] == [] and out["steps"][0]["ops"] == []
    assert out["steps"][0]["decision"]["refusals"][0]["reason"] == "no-aaaa"


def test_explain_dns64_synthesized_aaaa_maps_nothing(capsys):
    out = explain_json(capsys, "v4only.example a=192.0.2.20 aaaa=2001:db8:64::c000:214")
    assert out["table"] == []
    (refusal,) = out["steps"][0]["decision"]["refusals"]
    assert refusal["reason"] == "synthesized" and "2001:db8:64::/96" in refusal["detail"]


def test_explain_conflicting_second_name_makes_the_entry_stale(capsys):
    out = explain_json(
        capsys,
        "a.example a=192.0.2.10 aaaa=2001:db8:1::a",
        "b.example a=192.0.2.10 aaaa=2001:db8:1::b",
    )
    second = out["steps"][1]
    assert [e["kind"] for e in second["events"]] == ["stale"]
    assert second["decision"]["refusals"][0]["reason"] == "conflict"
    assert second["ops"] == ["ipv4 leg del 192.0.2.10"]
    (entry,) = out["table"]
    assert (entry["state"], entry["stale_reason"], entry["ipv6"]) == (
        "stale",
        "conflict",
        "2001:db8:1::a",
    )


def test_explain_special_purpose_aaaa_is_refused_with_its_reason(capsys):
    out = explain_json(capsys, "evil.example a=192.0.2.10 aaaa=fe80::1")
    (refusal,) = out["steps"][0]["decision"]["refusals"]
    assert refusal["reason"] == "special-purpose"
    assert "link-local" in refusal["detail"] and "RFC 4291" in refusal["detail"]
    assert out["table"] == []


def test_explain_text_output_is_readable(capsys):
    assert main(["explain", *LAB, "www.example.com a=192.0.2.10 aaaa=2001:db8:1::10"]) == 0
    text = capsys.readouterr().out
    assert "added: 192.0.2.10 -> 2001:db8:1::10 via pool 100.127.0.1" in text
    assert "ipv4 leg add 192.0.2.10 -> 100.127.0.1" in text and "table at t=0" in text


def test_explain_without_the_lab_switch_refuses_documentation_addresses(capsys):
    out = explain_json(capsys, "www.example.com a=192.0.2.10 aaaa=2001:db8:1::10", flags=[])
    reasons = {r["reason"] for r in out["steps"][0]["decision"]["refusals"]}
    assert reasons == {"special-purpose"} and out["table"] == []


def test_explain_flags_come_from_the_schema(capsys):
    out = explain_json(
        capsys,
        "www.example.com a=192.0.2.10 aaaa=2001:db8:1::10",
        flags=[*LAB, "--deny-name", "example.com"],
    )
    assert out["steps"][0]["decision"]["refusals"][0]["reason"] == "name-denied"


def test_explain_reads_a_uci_config(tmp_path, capsys):
    conf = tmp_path / "clat-eamt"
    conf.write_text(
        "config globals 'globals'\n"
        "\toption allow_documentation '1'\n"
        "\toption pool '198.51.100.0/24'\n\n"
        "config static\n"
        "\toption ipv4 '192.0.2.16/28'\n"
        "\toption ipv6 '2001:db8:5::/124'\n"
    )
    assert (
        main(
            [
                "explain",
                "--json",
                "--config",
                str(conf),
                "www.example.com a=192.0.2.17 aaaa=2001:db8:1::10",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["steps"][0]["decision"]["refusals"][0]["reason"] == "covered"
    assert [e["origin"] for e in out["table"]] == ["static"]
    assert out["table"][0]["pool"].startswith("198.51.100.")


def test_explain_bad_step_is_a_clear_error(capsys):
    assert main(["explain", "www.example.com a=192.0.2.300"]) == 1
    err = capsys.readouterr().err
    assert "a: '192.0.2.300' is not an IPv4 address" in err
    assert main(["explain", "www.example.com colour=blue"]) == 1
    assert "unknown word 'colour=blue'" in capsys.readouterr().err


def test_config_check_prints_the_effective_config(tmp_path, capsys):
    conf = tmp_path / "clat-eamt"
    conf.write_text("config globals 'globals'\n\toption ttl_min '60'\n")
    assert main(["config", "check", str(conf)]) == 0
    assert "option ttl_min '60'" in capsys.readouterr().out
    assert main(["config", "check", "--json", str(conf)]) == 0
    assert json.loads(capsys.readouterr().out)["globals"]["ttl_min"] == 60


def test_config_check_names_option_and_line_of_every_problem(tmp_path, capsys):
    conf = tmp_path / "clat-eamt"
    conf.write_text(
        "config globals 'globals'\n"
        "\toption ttl_min 'soon'\n"
        "\toption pool '8.8.8.0/24'\n"
        "\toption ttl_mx '5'\n"
    )
    assert main(["config", "check", str(conf)]) == 1
    err = capsys.readouterr().err
    assert f"{conf}:2" in err and "ttl_min" in err
    assert f"{conf}:3" in err and "pool" in err
    assert f"{conf}:4" in err and "ttl_max" in err  # did you mean


def test_config_check_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["config", "check", str(tmp_path / "absent")]) == 1
    assert "absent" in capsys.readouterr().err


def test_config_defaults_is_the_packaged_file(capsys):
    assert main(["config", "defaults"]) == 0
    packaged = Path(__file__).resolve().parents[2] / "files" / "etc" / "config" / "clat-eamt"
    assert capsys.readouterr().out == packaged.read_text()


def test_console_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "clat_eamt", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("config", "explain"):
        assert command in result.stdout


def test_the_daemons_process_loads_only_what_it_uses():
    """What ``run`` holds in memory (issue 14): argparse's formatters are told the width, so
    shutil (with bz2, lzma and their libraries: 0.6 MB) stays out; files are handled with os,
    not pathlib (0.35 MB); the CLI's tables, its client and the docs' renderers load only for
    their own commands."""
    unwanted = ("shutil", "lzma", "bz2", "pathlib", "clat_eamt.config.render",
                "clat_eamt.control.views", "clat_eamt.control.client",
                "_hashlib", "datetime", "clat_eamt.provider")  # fmt: skip  # the operator's table
    code = (
        "import sys; from clat_eamt.cli import build_parser; "
        "build_parser().parse_args(['run', '--config', '/nonexistent']); "
        "import clat_eamt.daemon, clat_eamt.dataplane.kernel, clat_eamt.dataplane.tayga; "
        f"print(sorted(m for m in {unwanted!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_follows_the_terminal_width_columns_gives():
    def lines(columns: str) -> list[str]:
        env = {**os.environ, "COLUMNS": columns}
        argv = [sys.executable, "-m", "clat_eamt", "run", "--help"]
        return subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout

    narrow, wide = lines("60").splitlines(), lines("160").splitlines()
    assert len(narrow) > len(wide)
    assert max(len(line) for line in narrow if not line.lstrip().startswith("[")) <= 60


@pytest.mark.parametrize("argv", [[], ["nonsense"], ["add", "192.0.2.1"], ["config", "nonsense"]])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_readme_explain_example_is_real_output(capsys):
    """The README's console excerpt is what the command prints today."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("```console\n$ ", 1)[1].split("```", 1)[0]
    command, _, expected = block.partition('"\n')  # the last step's closing quote ends it
    argv = shlex.split((command + '"').replace("\\\n", " "))
    assert argv[0] == "clat-eamt"
    assert main(argv[1:]) == 0
    assert capsys.readouterr().out == expected


def test_the_router_cli_cannot_rewrite_a_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config docs` prints; writing the derived files is `make docs` (tools/docs.py), which
    is not installed on a router."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("<!-- BEGIN options -->\n<!-- END options -->\n")
    with pytest.raises(SystemExit):
        main(["config", "docs", "--write"])
    assert main(["config", "docs"]) == 0
    assert "| `ttl_min` |" in capsys.readouterr().out
    assert "ttl_min" not in (tmp_path / "README.md").read_text()


def test_make_docs_writes_the_derived_files_of_a_checkout(tmp_path: Path) -> None:
    from tools.docs import write  # noqa: PLC0415  # a development tool, not in the package

    (tmp_path / "README.md").write_text("<!-- BEGIN options -->\n<!-- END options -->\n")
    (tmp_path / "files" / "etc" / "config").mkdir(parents=True)
    write(tmp_path)
    assert (tmp_path / "files" / "etc" / "config" / "clat-eamt").read_text() == uci_defaults()
    assert (tmp_path / render.LUCI_SCHEMA_JS).read_text() == render.luci_schema_js()
    assert "| `ttl_min` |" in (tmp_path / "README.md").read_text()


def test_config_get_prints_the_effective_value_for_scripts(tmp_path, capsys):
    """What the init script asks instead of restating a default in shell: the file's value, or
    the schema's default, as UCI words; an unknown option or a bad file is an error."""
    path = tmp_path / "clat-eamt"
    path.write_text(
        "config globals 'globals'\n\toption port '5454'\n\tlist upstream '192.0.2.53'\n"
    )
    assert main(["config", "get", "port", "--file", str(path)]) == 0
    assert main(["config", "get", "listen", "--file", str(path)]) == 0
    assert main(["config", "get", "upstream", "--file", str(path)]) == 0
    assert capsys.readouterr().out == "5454\n127.0.0.1\n192.0.2.53\n"
    assert main(["config", "get", "no_such", "--file", str(path)]) == 2
    path.write_text("config globals 'globals'\n\toption port '70000'\n")
    assert main(["config", "get", "port", "--file", str(path)]) == 1
