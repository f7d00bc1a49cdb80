"""v3 `rebuild_chronicle_entries.py`, kept as the implementation: runs wordloom.commands.rebuild_chronicle_entries.

--truncate --emit-outbox --limit.
No logic grows here (DESIGN.md, the legacy fence): the command parses and does the work.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))  # backend/
from scripts import _forward  # noqa: E402

if __name__ == "__main__":
    sys.exit(_forward.run_command("rebuild_chronicle_entries", sys.argv[1:]))
