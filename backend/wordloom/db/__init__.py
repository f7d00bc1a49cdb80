"""Database access: connections, migrations and named SQL queries kept in .sql files."""
from .connect import connect, DatabaseUnavailable
from .queries import query

__all__ = ["connect", "DatabaseUnavailable", "query"]
