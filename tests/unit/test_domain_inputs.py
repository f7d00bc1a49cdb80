"""Pure pieces of the write path and its inputs: trace headers, paragraphs, titles, search hits."""
from __future__ import annotations

import uuid

from wordloom.domain import WriteContext
from wordloom.importers.markdown import read_markdown_book
from wordloom.importers.runner import split_paragraphs
from wordloom.search.query import _parse_hit, build_query

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_write_context_keeps_a_valid_traceparent_and_its_tracestate():
    ctx = WriteContext.from_headers(" " + TP.upper() + " ", "a=1,b=2")
    assert (ctx.traceparent, ctx.tracestate) == (TP, "a=1,b=2")


def test_write_context_drops_a_malformed_traceparent_and_the_orphan_tracestate():
    for junk in ("garbage", "00-xyz-00f067aa0ba902b7-01", TP + "-extra", "", None):
        ctx = WriteContext.from_headers(junk, "a=1")
        assert (ctx.traceparent, ctx.tracestate) == (None, None), junk


def test_paragraphs_split_on_blank_lines_of_any_ending():
    assert split_paragraphs("a\r\n\r\nb\n \t\nc\n\n\n") == ["a", "b", "c"]
    assert split_paragraphs("one\nparagraph") == ["one\nparagraph"]
    assert split_paragraphs("\n\n") == []


def test_markdown_title_is_the_first_heading_and_not_a_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("### Heading ###\n\ntext\n\n# Later heading\n", encoding="utf-8")
    book = read_markdown_book(page)
    assert (book.title, book.paragraphs) == ("Heading", ["text", "# Later heading"])
    plain = tmp_path / "plain-notes.md"
    plain.write_text("just text\n", encoding="utf-8")
    assert read_markdown_book(plain).title == "plain-notes"


def test_search_filters_match_keyword_fields_under_either_mapping():
    lib = uuid.uuid4()
    query = build_query("context manager", "block", lib)
    assert query["bool"]["must"] == [{"match": {"text": "context manager"}}]
    fields = [{next(iter(t["term"])) for t in f["bool"]["should"]} for f in query["bool"]["filter"]]
    assert fields == [{"entity_type", "entity_type.keyword"}, {"library_id", "library_id.keyword"}]
    assert build_query("x", None, None)["bool"]["filter"] == []


def test_search_hit_parsing_prefers_highlight_and_skips_foreign_documents():
    eid = uuid.uuid4()
    hit = _parse_hit({"_id": f"block:{eid}", "_score": 1.5, "_source": {"snippet": "plain"},
                      "highlight": {"text": ["a <em>context</em> manager"]}})
    assert (hit.entity_type, hit.entity_id, hit.snippet, hit.score) == ("block", eid, "a <em>context</em> manager", 1.5)
    assert _parse_hit({"_id": "book:not-a-uuid", "_source": {}}) is None
    fallback = _parse_hit({"_id": "x", "_score": None, "_source": {"entity_type": "book", "entity_id": str(eid),
                                                                   "snippet": "s" * 300}})
    assert fallback.snippet == "s" * 200 and fallback.score == 0.0
