"""`cli.py labs report`: one table of the drills' latest runs, printed and written as Markdown."""
from __future__ import annotations

from ..labs.drills.cli_args import EXIT_CODES_HELP, add_outdir
from .base import Command


class LabsReport(Command):
    name = "labs report"
    help = "table of scenario, last run, ok, key figures (also written to <base>/REPORT.md)"

    def add_arguments(self, parser):
        parser.epilog = EXIT_CODES_HELP
        parser.add_argument("scenarios", nargs="*", help="limit to these scenarios (default: all)")
        add_outdir(parser)

    def handle(self, args) -> int:
        from ..labs.drills.housekeeping import markdown_table, report_rows
        from ..labs.drills.paths import evidence_base
        from ..labs.drills.registry import SCENARIOS
        from .base import CommandError

        unknown = [s for s in args.scenarios if s not in SCENARIOS]
        if unknown:
            raise CommandError(f"unknown scenario(s): {', '.join(unknown)}", code=2)
        base = evidence_base(args.outdir)
        table = markdown_table(report_rows(base, args.scenarios or list(SCENARIOS)))
        base.mkdir(parents=True, exist_ok=True)
        (base / "REPORT.md").write_text("# Drill report (S3A-2A-3A)\n\n" + table, encoding="utf-8")
        print(table, end="")
        print(f"written: {base / 'REPORT.md'}")
        return 0


COMMAND = LabsReport()
