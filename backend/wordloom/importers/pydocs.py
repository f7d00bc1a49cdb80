"""CPython's help topics (`pydoc_data.topics.topics`): a book per topic key, a block per paragraph."""
from __future__ import annotations

from .runner import BookSource, split_paragraphs

DEFAULT_LIBRARY = "Python docs"


def python_doc_books() -> list[BookSource]:
    from pydoc_data.topics import topics

    return [BookSource(key, split_paragraphs(text)) for key, text in sorted(topics.items())]
