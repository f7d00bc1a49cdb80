"""Operations tools an on-call person runs from a runbook: audited replay of failed outbox rows,
resumable rebuilds of the search and chronicle projections, the zero-downtime Elasticsearch
rebuild, outbox status and pruning.  Commands in wordloom.commands wrap these modules; the SQL
lives in db/queries/ops.sql."""
