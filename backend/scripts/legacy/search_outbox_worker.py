"""v3 `search_outbox_worker.py`, kept as the implementation: runs wordloom.commands.search_worker.

v3 search worker: environment only.
No logic grows here (DESIGN.md, the legacy fence): the command parses and does the work.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))  # backend/
from scripts import _forward  # noqa: E402

if __name__ == "__main__":
    sys.exit(_forward.run_command("search_worker", sys.argv[1:]))
