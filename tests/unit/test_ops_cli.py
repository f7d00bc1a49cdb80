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
