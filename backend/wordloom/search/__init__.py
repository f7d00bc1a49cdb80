"""Search: the Elasticsearch index (index.py) and its queries (query.py)."""
