"""Wordloom backend: PostgreSQL writes carried through transactional outboxes into search and the chronicle."""

__version__ = "4.0.0"
