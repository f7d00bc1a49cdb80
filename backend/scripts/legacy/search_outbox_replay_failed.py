"""v3 `search_outbox_replay_failed.py`, kept as the implementation: runs wordloom.commands.replay_failed.

--by --reason --limit --entity-type --since-hours --dry-run.
--outbox is fixed to search, the outbox this v3 file name stood for (a typed --outbox is accepted and overridden).
No logic grows here (DESIGN.md, the legacy fence): the command parses and does the work.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))  # backend/
from scripts import _forward  # noqa: E402

if __name__ == "__main__":
    sys.exit(_forward.run_command("replay_failed", sys.argv[1:], fixed={"--outbox": "search"}))
