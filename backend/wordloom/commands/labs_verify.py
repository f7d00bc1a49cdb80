"""`cli.py labs verify <scenario>`: evaluate a drill run's checks, write _result.json."""
from __future__ import annotations

from ..labs.drills.cli_args import EXIT_CODES_HELP, add_outdir, add_scenario
from .base import Command, CommandError


class LabsVerify(Command):
    name = "labs verify"
    help = "evaluate a drill run (the latest unless --run-id) and write _result.json"

    def add_arguments(self, parser):
        parser.epilog = EXIT_CODES_HELP
        add_scenario(parser)
        parser.add_argument("--run-id", help="the run to verify (default: the latest)")
        parser.add_argument("--json", action="store_true", help="print _result.json instead of the table")
        add_outdir(parser)

    def handle(self, args) -> int:
        import json

        from ..labs.drills import EXIT_CHECK_FAILED, EXIT_NO_RUN
        from ..labs.drills.core import verify_run
        from ..labs.drills.paths import NoSuchRun, evidence_base, find_run
        from ..labs.drills.registry import SCENARIOS

        try:
            run_dir = find_run(evidence_base(args.outdir), args.scenario, args.run_id)
        except NoSuchRun as exc:
            raise CommandError(str(exc), code=EXIT_NO_RUN) from None
        result = verify_run(SCENARIOS[args.scenario], run_dir)
        if args.json:
            print(json.dumps(result, indent=2, default=str))
        else:
            print(f"{args.scenario} {result['run_id']} ({result['state_source']} state): "
                  f"{'OK' if result['ok'] else 'FAILED'}")
            for c in result["checks"]:
                print(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: observed {json.dumps(c['observed'], default=str)[:160]}"
                      f" (expected {c['expected']})")
            print(f"result: {run_dir / '_result.json'}")
        return 0 if result["ok"] else EXIT_CHECK_FAILED


COMMAND = LabsVerify()
