"""The single write path.  API, importer, labs and tests all write through these functions.

Every write runs in ONE transaction that commits together: the business row, the search_index row
(or its removal), the search outbox row, the chronicle event and its chronicle outbox row.  Each
function takes an *idle* psycopg connection (autocommit, or no open transaction) and owns the
transaction; `ctx` (WriteContext) carries traceparent/tracestate and provenance onto the rows.
Failures raise NotFound / Conflict (or a psycopg error) and leave nothing behind.
"""
from .blocks import add_blocks, create_block, get_block, restore_block, soft_delete_block, update_block
from .books import (
    create_book, create_book_with_blocks, get_book, list_blocks, purge_book, replace_book_by_title,
    restore_book, soft_delete_book, update_book,
)
from .bookshelves import create_bookshelf, delete_bookshelf, get_bookshelf, rename_bookshelf
from .context import WriteContext
from .errors import Conflict, DomainError, NotFound
from .libraries import create_library, delete_library, find_library_by_name, get_library, rename_library
from .tags import attach_tag, create_tag, delete_tag, detach_tag, get_tag, list_book_tags, rename_tag

__all__ = [
    "WriteContext", "DomainError", "NotFound", "Conflict",
    "create_library", "rename_library", "delete_library", "get_library", "find_library_by_name",
    "create_bookshelf", "rename_bookshelf", "delete_bookshelf", "get_bookshelf",
    "create_book", "create_book_with_blocks", "replace_book_by_title", "update_book",
    "soft_delete_book", "restore_book", "purge_book", "get_book", "list_blocks",
    "create_block", "add_blocks", "update_block", "soft_delete_block", "restore_block", "get_block",
    "create_tag", "rename_tag", "delete_tag", "attach_tag", "detach_tag", "get_tag", "list_book_tags",
]
