"""Failure drills (`cli.py labs run|verify|export|clean|report <scenario>`).

A drill `run` starts what it needs as real processes (workers via `python -m wordloom.cli ops
search-worker` with the fault knobs in their environment, private servers when the drill must stop
one), injects its fault, produces load, waits and records evidence under
<base>/<scenario>/<run_id>/.  `verify` turns that evidence plus the current database and index
state into checks (_result.json).  See docs/labs/S3A-2A-3A.md.

Isolation: every run gets its own database on the configured PostgreSQL server
(`wordloom_lab_<run>_<env>`, created and migrated by the drill) and its own index
(`<ELASTIC_INDEX>-lab-<run>`), so a drill never touches the dev pipeline's rows or documents and
`clean` can take everything back by dropping both.
"""

# Exit codes of every `labs` drill verb (documented in docs/labs/README.md).
EXIT_OK = 0
EXIT_CHECK_FAILED = 1   # verify: at least one check is not ok
EXIT_USAGE = 2          # bad flags / unknown scenario (argparse)
EXIT_NO_RUN = 3         # verify/export: no such run (or no run yet) for the scenario
EXIT_ENVIRONMENT = 4    # a server is unreachable, a database cannot be created, a binary is missing
EXIT_RUN_ABORTED = 5    # run: the drill could not complete (timeout, a process died unexpectedly)
