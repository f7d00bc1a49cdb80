"""The outbox engine: one engine (store, retry policy, runner), two sinks (Elasticsearch, chronicle).

store.py    every SQL statement on the outbox tables (claim, lease, ack/retry/fail, reclaim, replay)
retry.py    RetryPolicy: (reason, attempts) -> retry in N seconds | terminal
runner.py   the loop: wake-up, batches, leases, health state, drain, reconnect (no Elasticsearch)
sinks/      elastic.py (search_index -> Elasticsearch), chronicle.py (chronicle_events -> entries)
worker.py   assembles a runner and its sink from WorkerSettings
"""
