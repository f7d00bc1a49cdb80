"""`cli.py labs export <scenario>`: add the Jaeger (or local-span) export to a drill run's folder."""
from __future__ import annotations

import os

from ..labs.drills.cli_args import EXIT_CODES_HELP, add_outdir, add_scenario
from .base import Command, CommandError


class LabsExport(Command):
    name = "labs export"
    help = "export the traces of a drill run (latest unless --run-id) into <run>/_exports/"

    def add_arguments(self, parser):
        parser.epilog = EXIT_CODES_HELP
        add_scenario(parser)
        parser.add_argument("--run-id", help="the run (default: the latest)")
        parser.add_argument("--since", help="lookback, e.g. 30m or 1h (default: since the run started)")
        parser.add_argument("--limit", type=int, default=20, help="max traces per service (default %(default)s)")
        parser.add_argument("--jaeger-url", help="Jaeger query API base (default $JAEGER_QUERY_URL; "
                                                 "without one, the run's local span files)")
        add_outdir(parser)

    def handle(self, args) -> int:
        from ..labs.drills import EXIT_NO_RUN, EXIT_USAGE
        from ..labs.drills.housekeeping import export_run
        from ..labs.drills.paths import NoSuchRun, evidence_base, find_run
        from ..observability.jaeger_export import lookback_seconds
        from ..settings import Env

        if args.since:
            try:
                lookback_seconds(args.since)
            except ValueError as exc:
                raise CommandError(str(exc), code=EXIT_USAGE) from None
        try:
            run_dir = find_run(evidence_base(args.outdir), args.scenario, args.run_id)
        except NoSuchRun as exc:
            raise CommandError(str(exc), code=EXIT_NO_RUN) from None
        paths, source = export_run(run_dir, args.jaeger_url or Env().str("JAEGER_QUERY_URL"), args.since, args.limit)
        print(f"exported from {source}:")
        for path in paths:
            rel = os.path.relpath(path)
            print(rel if not rel.startswith("..") else path)
        return 0


COMMAND = LabsExport()
