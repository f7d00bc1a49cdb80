"""v3 `chronicle_outbox_replay_failed.py`, kept as the implementation: runs wordloom.commands.replay_failed.

search's flags plus --ids.
--outbox is fixed to chronicle, the outbox this v3 file name stood for (a typed --outbox is accepted and overridden).
No logic grows here (DESIGN.md, the legacy fence): the command parses and does the work.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))  # backend/
from scripts import _forward  # noqa: E402

if __name__ == "__main__":
    sys.exit(_forward.run_command("replay_failed", sys.argv[1:], fixed={"--outbox": "chronicle"}))
