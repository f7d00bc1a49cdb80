"""`cli.py ops rebuild-es [--rollback]`: rebuild Elasticsearch behind the alias <ELASTIC_INDEX>
with no downtime (see wordloom.ops.rebuild_es for the steps)."""
from __future__ import annotations

import logging

from elastic_transport import ConnectionError as EsConnectionError, ConnectionTimeout

from ..db import connect
from ..ops.argtypes import positive_int
from ..ops.rebuild_es import RebuildEsOptions, VerificationFailed, rebuild_es, rollback_es
from ..ops.rebuild_runs import RebuildError
from ..redact import host_port
from ..settings import Env, database_url
from .base import Command, CommandError


class RebuildEs(Command):
    name = "ops rebuild-es"
    help = "rebuild Elasticsearch into <ELASTIC_INDEX>_v<N> and move the alias <ELASTIC_INDEX> atomically"
    guards_environment = True
    description = (
        "Builds <ELASTIC_INDEX>_v<N> with the explicit mapping, bulk-loads it from search_index (refresh off, "
        "external versions), catches up with outbox events that arrived meanwhile, verifies counts and a "
        "sample of versions, then moves the alias in one _aliases request. Any verification failure stops "
        "before the move (exit 1). The previous index is kept for --rollback. A concrete index named "
        "<ELASTIC_INDEX> is converted on the first run. Searches and workers keep running throughout. "
        "Set WORDLOOM_REBUILD_ES_FORCE_VERIFY_FAILURE=1 to rehearse a failed verification."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rollback", action="store_true",
                            help="move the alias back to the previous index (caught up first)")
        parser.add_argument("--batch-size", type=positive_int, default=500, help="documents per bulk request (default 500)")
        parser.add_argument("--sample-size", type=positive_int, default=100,
                            help="rows whose document version is checked before the swap (default 100)")
        parser.add_argument("--keep", type=positive_int, default=2,
                            help="indices kept: the live one + previous ones (default 2)")

    def handle(self, args) -> int:
        env = Env()
        url = env.str("ELASTIC_URL", "http://localhost:9200")
        alias = env.str("ELASTIC_INDEX", "wordloom-search-index")
        opts = RebuildEsOptions(batch_size=args.batch_size, sample_size=args.sample_size, keep=args.keep)
        from elasticsearch import Elasticsearch

        # The transport logs every retry with a traceback; a person needs the one line below.
        logging.getLogger("elastic_transport").setLevel(logging.ERROR)
        es = Elasticsearch(url, api_key=env.str("ELASTIC_API_KEY"), request_timeout=60)
        try:
            with connect(database_url(), autocommit=True) as conn:
                if args.rollback:
                    r = rollback_es(conn, es, alias, opts)
                    print(f"Rollback OK: alias {alias} -> {r.index} (was {', '.join(r.previous)}); "
                          f"docs={r.doc_count} caught_up={r.caught_up}")
                    return 0
                r = rebuild_es(conn, es, alias, opts)
        except (EsConnectionError, ConnectionTimeout):
            raise CommandError(f"cannot reach Elasticsearch at {host_port(url)}") from None
        except VerificationFailed as exc:
            raise CommandError(f"{exc}; alias {alias} was not moved") from None
        except RebuildError as exc:
            raise CommandError(str(exc)) from None
        finally:
            es.close()
        print(f"Rebuild ES OK: alias {alias} -> {r.index} (previous: {', '.join(r.previous) or 'none'}); "
              f"loaded={r.loaded} caught_up={r.caught_up} docs={r.doc_count} converted={r.converted}"
              + (f" deleted_old={','.join(r.deleted)}" if r.deleted else ""))
        return 0


COMMAND = RebuildEs()
