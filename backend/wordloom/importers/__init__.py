"""Real input for the write path: Markdown directories and CPython's pydoc help topics."""
from .runner import BookSource, ImportSummary, import_books

__all__ = ["BookSource", "ImportSummary", "import_books"]
