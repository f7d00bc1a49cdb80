"""`cli.py labs clean <scenario|all>`: take back what drill runs changed and prune old evidence."""
from __future__ import annotations

from ..labs.drills.cli_args import EXIT_CODES_HELP, add_outdir, add_scenario
from .base import Command


class LabsClean(Command):
    name = "labs clean"
    help = "drop drill databases and indexes, stop leftover drill workers, keep the last N run folders"

    def add_arguments(self, parser):
        parser.epilog = EXIT_CODES_HELP
        add_scenario(parser, allow_all=True)
        parser.add_argument("--keep-last", type=int, default=5, help="run folders to keep per scenario (default %(default)s)")
        add_outdir(parser)

    def handle(self, args) -> int:
        from ..labs.drills.housekeeping import clean_runs
        from ..labs.drills.paths import evidence_base
        from ..labs.drills.registry import SCENARIOS

        names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
        base = evidence_base(args.outdir)
        lines = [line for name in names for line in clean_runs(base, name, max(0, args.keep_last))]
        print("\n".join(lines) if lines else "nothing to clean")
        return 0


COMMAND = LabsClean()
