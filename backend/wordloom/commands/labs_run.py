"""`cli.py labs run <scenario>`: run a failure drill and record its evidence (docs/labs/S3A-2A-3A.md)."""
from __future__ import annotations

from ..labs.drills.cli_args import EXIT_CODES_HELP, add_outdir, add_run_flags, add_scenario
from .base import Command


class LabsRun(Command):
    name = "labs run"
    help = "run a failure drill: start workers with the fault knobs, inject, load, wait, record evidence"

    def add_arguments(self, parser):
        parser.epilog = EXIT_CODES_HELP
        add_scenario(parser)
        add_run_flags(parser)
        add_outdir(parser)

    def handle(self, args) -> int:
        from ..labs.drills.core import run_drill
        from ..labs.drills.paths import evidence_base
        from ..labs.drills.registry import SCENARIOS

        code, _ = run_drill(SCENARIOS[args.scenario], args, evidence_base(args.outdir))
        return code


COMMAND = LabsRun()
