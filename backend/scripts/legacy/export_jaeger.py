"""v3 `export_jaeger.py`, kept as the implementation: runs wordloom.commands.labs_export_jaeger.

--lookback defaults to 1h when run directly (24h via cli.py).
The leading --lookback 1h keeps v3's behaviour; a flag given by the person still wins.
No logic grows here (DESIGN.md, the legacy fence): the command parses and does the work.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))))  # backend/
from scripts import _forward  # noqa: E402

if __name__ == "__main__":
    sys.exit(_forward.run_command("labs_export_jaeger", ["--lookback", "1h", *sys.argv[1:]]))
