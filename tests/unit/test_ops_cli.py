"""The ops commands are reachable through the router and refuse bad input before touching anything."""
from __future__ import annotations

import pytest

from wordloom.cli import GROUPS, main

OPS_COMMANDS = [("ops", "replay-failed"), ("ops", "rebuild-search-index"), ("ops", "rebuild-chronicle"),
                ("ops", "rebuild-es"), ("outbox", "status"), ("outbox", "prune")]


@pytest.mark.parametrize("group,name", OPS_COMMANDS)
def test_every_ops_command_has_help(group, name, capsys):
    assert name in GROUPS[group]
    with pytest.raises(SystemExit) as exit_info:
        main([group, name, "--help"], prog="cli.py")
    assert exit_info.value.code == 0
    assert f"usage: cli.py {group} {name}" in capsys.readouterr().out


@pytest.mark.parametrize("group,name", OPS_COMMANDS)
def test_unknown_flag_is_a_usage_error(group, name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([group, name, "--no-such-flag"], prog="cli.py")
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_python_dash_m_names_itself_in_usage_not_cli_py():
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.run([sys.executable, "-m", "wordloom.cli", "outbox", "status", "--help"],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m wordloom.cli outbox status"), proc.stdout
    assert "cli.py" not in proc.stdout


@pytest.mark.parametrize("argv0,expected", [("-m", "wordloom"), ("-c", "wordloom"), ("", "wordloom"),
                                            ("/x/site-packages/wordloom/__main__.py", "wordloom"),
                                            ("/venv/bin/wordloom", "wordloom"), ("tool.py", "tool.py")])
def test_default_prog_from_argv0(argv0, expected, monkeypatch):
    import sys

    from wordloom.cli import default_prog

    monkeypatch.setattr(sys, "argv", [argv0])
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)
    assert default_prog() == expected


def test_replay_error_reason_typo_is_a_usage_error_listing_the_valid_reasons(capsys):
    from wordloom.outbox.retry import ALL_REASONS

    with pytest.raises(SystemExit) as exit_info:
        main(["ops", "replay-failed", "--outbox", "search", "--by", "me", "--reason", "r",
              "--error-reason", "es_999"], prog="cli.py")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "unknown error_reason 'es_999'" in err
    for reason in ("es_429", "es_4xx", "es_5xx", "es_other", "es_timeout", "es_connect", "es_request_error",
                   "es_unknown", "deterministic_exception", "unknown_exception", "unknown_op", "reclaim_exhausted"):
        assert reason in ALL_REASONS and reason in err


def test_error_reason_type_accepts_every_known_reason():
    from wordloom.ops.argtypes import error_reason
    from wordloom.outbox.retry import ALL_REASONS

    assert all(error_reason(f" {r} ") == r for r in ALL_REASONS)


def test_an_entry_path_that_fixes_the_outbox_hides_it_and_overrides_a_typed_value(capsys, monkeypatch):
    """search_outbox_replay_failed.py stands for the search outbox: --outbox is neither asked for
    nor shown, and a runbook line that spelled out another value still replays the file's outbox."""
    from wordloom.commands import replay_failed
    from wordloom.commands.base import run_command

    with pytest.raises(SystemExit):
        run_command("replay_failed", ["--help"], prog="search_outbox_replay_failed.py", fixed={"--outbox": "search"})
    help_text = capsys.readouterr().out
    assert "--outbox" not in help_text.split("This entry path")[0]
    assert "This entry path always uses --outbox search." in help_text
    seen = []
    monkeypatch.setattr(replay_failed.COMMAND, "handle", lambda args: seen.append(args.outbox) or 0)
    monkeypatch.setattr(replay_failed.COMMAND, "guards_environment", False)
    for typed in ([], ["--outbox", "chronicle"]):
        assert run_command("replay_failed", ["--env-file", "", "--by", "x", "--reason", "y", *typed],
                           prog="p", fixed={"--outbox": "search"}) == 0
    assert seen == ["search", "search"]
    # Without a fixed value the option stays required.
    with pytest.raises(SystemExit) as exit_info:
        run_command("replay_failed", ["--by", "x", "--reason", "y"], prog="cli.py ops replay-failed")
    assert exit_info.value.code == 2
