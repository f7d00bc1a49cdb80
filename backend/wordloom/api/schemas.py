"""Request and response bodies.  Unknown fields are refused, so a typo is a 422 naming it."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
MAX_SUMMARY = 20_000
MAX_CONTENT = 1_000_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LibraryIn(Strict):
    name: Name


class LibraryPatch(Strict):
    name: Name


class Library(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    updated_at: datetime


class LibraryDeleted(BaseModel):
    id: uuid.UUID
    books: int
    blocks: int


class BookshelfIn(Strict):
    library_id: uuid.UUID
    name: Name


class BookshelfPatch(Strict):
    name: Name


class Bookshelf(BaseModel):
    id: uuid.UUID
    library_id: uuid.UUID
    name: str
    created_at: datetime
    updated_at: datetime


class BookIn(Strict):
    library_id: uuid.UUID
    title: Title
    summary: str = Field("", max_length=MAX_SUMMARY)
    bookshelf_id: uuid.UUID | None = None


class BookPatch(Strict):
    title: str | None = Field(None, min_length=1, max_length=1000)
    summary: str | None = Field(None, max_length=MAX_SUMMARY)


class Book(BaseModel):
    id: uuid.UUID
    library_id: uuid.UUID
    bookshelf_id: uuid.UUID | None
    title: str
    summary: str
    deleted_at: datetime | None
    created_at: datetime
    updated_at: datetime


class BlockIn(Strict):
    book_id: uuid.UUID
    content: str = Field(min_length=1, max_length=MAX_CONTENT)
    position: int | None = Field(None, ge=0, le=2**31 - 1)


class BlockPatch(Strict):
    content: str | None = Field(None, min_length=1, max_length=MAX_CONTENT)
    position: int | None = Field(None, ge=0, le=2**31 - 1)


class Block(BaseModel):
    id: uuid.UUID
    book_id: uuid.UUID
    position: int
    content: str
    deleted_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TagIn(Strict):
    library_id: uuid.UUID
    name: Name


class TagPatch(Strict):
    name: Name


class Tag(BaseModel):
    id: uuid.UUID
    library_id: uuid.UUID
    name: str
    created_at: datetime
    updated_at: datetime


class TagLink(BaseModel):
    book_id: uuid.UUID
    tag_id: uuid.UUID
    changed: bool


class SearchHit(BaseModel):
    entity_type: Literal["book", "block"]
    entity_id: uuid.UUID
    book_id: uuid.UUID
    book_title: str
    snippet: str
    score: float


class SearchResult(BaseModel):
    total: int
    hits: list[SearchHit]


class ChronicleItem(BaseModel):
    id: uuid.UUID
    event_type: str
    book_id: uuid.UUID
    block_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    occurred_at: datetime
    created_at: datetime
    payload: dict[str, Any]
    summary: str


class ChroniclePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[ChronicleItem]
