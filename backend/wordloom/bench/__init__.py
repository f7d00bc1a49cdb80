"""The benchmark harness behind `make bench` / `cli.py bench` (issue 8).

Measures the outbox pipeline against the limit of the same machine, side by side in one run:
throughput of the search and chronicle workers against plain `helpers.bulk` / a plain batched
upsert, commit -> Elasticsearch latency under open-loop load, how claim+ack cost and worker memory
grow, worker scaling, and `rebuild-es` against plain bulk.  Not a test suite: nothing here asserts a
*target*; it fails only on a crash or a broken invariant (a row not delivered, a document missing).

Modules: stack (servers, databases, worker subprocesses), data (seeding with set-based SQL),
stats (percentiles, medians, ratios), scenarios (the measurements), charts (PNG without
matplotlib), report (results.json and docs/BENCHMARKS.md), harness (the run).
"""
