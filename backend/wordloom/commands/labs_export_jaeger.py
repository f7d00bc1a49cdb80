"""`cli.py labs export-jaeger`: Jaeger (or local-span) evidence files for a service."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ..envfile import REPO_ROOT
from ..observability import jaeger_export as jx
from ..settings import Env
from .base import Command, CommandError

DEFAULT_JAEGER_API = "http://localhost:16686/api"


def default_outdir(lab: str, run_id: str) -> Path:
    # The repo root is computed from this file's location (v3's wrapper went one level too high).
    return REPO_ROOT / "docs" / "labs" / "_snapshot" / "manual" / lab / run_id / "_exports"


class ExportJaeger(Command):
    name = "labs export-jaeger"
    help = "export services, operations and traces of a service from Jaeger (or local span files)"
    default_lookback = "24h"

    def add_arguments(self, parser):
        parser.add_argument("--service", required=True, help="e.g. wordloom-search-outbox-worker")
        parser.add_argument("--lookback", default=self.default_lookback, help="30m, 1h, 24h, 7d (default %(default)s)")
        parser.add_argument("--limit", type=int, default=20, help="max traces (default %(default)s)")
        parser.add_argument("--operation", help="span name, e.g. outbox.process")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--outbox-event-id", help="traces tagged wordloom.outbox_event_id=ID")
        which.add_argument("--claim-batch-id", help="traces tagged wordloom.claim_batch_id=ID")
        which.add_argument("--tags-json", help='raw Jaeger tag filter, e.g. \'{"wordloom.entity.id": "..."}\'')
        parser.add_argument("--outdir", help="output folder (default docs/labs/_snapshot/manual/<lab>/<run_id>/_exports)")
        parser.add_argument("--lab", default="labs-009", help="lab name for the default folder (default %(default)s)")
        parser.add_argument("--run-id", help="run id for the default folder (default: a UTC timestamp)")
        parser.add_argument("--jaeger-url", default=None,
                            help=f"Jaeger query API base (default $JAEGER_QUERY_URL or {DEFAULT_JAEGER_API})")
        parser.add_argument("--from-local", action="store_true", help="skip Jaeger; build the files from var/traces/")

    def handle(self, args) -> int:
        try:
            jx.lookback_seconds(args.lookback)
        except ValueError as exc:
            raise CommandError(str(exc), code=2) from None
        tags = None
        if args.outbox_event_id:
            tags = {"wordloom.outbox_event_id": args.outbox_event_id}
        elif args.claim_batch_id:
            tags = {"wordloom.claim_batch_id": args.claim_batch_id}
        elif args.tags_json:
            try:
                tags = json.loads(args.tags_json)
                assert isinstance(tags, dict)
            except (ValueError, AssertionError):
                raise CommandError("--tags-json must be a JSON object", code=2) from None
        q = jx.Query(service=args.service, lookback=args.lookback, limit=args.limit, operation=args.operation, tags=tags)
        run_id = args.run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        outdir = Path(args.outdir) if args.outdir else default_outdir(args.lab, run_id)
        base = args.jaeger_url or Env().str("JAEGER_QUERY_URL") or DEFAULT_JAEGER_API
        source = jx.LocalSpans() if args.from_local else jx.JaegerApi(base)
        try:
            paths = jx.export(source, q, outdir)
        except jx.JaegerUnavailable as exc:
            source = jx.LocalSpans()
            print(f"{exc}; exporting from local span files in {source.directory} instead", file=sys.stderr)
            paths = jx.export(source, q, outdir)
        # An empty export is still evidence (files written, exit 0), but a mistyped --service
        # must not look like "no traces happened": name the services the source does know.
        services_file = next(p for p in paths if p.name.startswith("jaeger-services-"))
        known = [str(name) for name in (json.loads(services_file.read_text(encoding="utf-8")).get("data") or [])]
        if args.service not in known:
            print(f"service {args.service!r} has no traces in {source.where}; "
                  f"known services: {', '.join(known) or '(none)'}", file=sys.stderr)
        for path in paths:
            print(os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path)
        return 0


COMMAND = ExportJaeger()
