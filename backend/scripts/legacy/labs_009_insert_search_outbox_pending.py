"""v3 `labs_009_insert_search_outbox_pending.py`, kept as the implementation: runs wordloom.commands.labs_insert_search_pending.

environment only, prints one id per line.
No logic grows here (DESIGN.md, the legacy fence): the command parses and does the work.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))  # backend/
from scripts import _forward  # noqa: E402

if __name__ == "__main__":
    sys.exit(_forward.run_command("labs_insert_search_pending", sys.argv[1:]))
