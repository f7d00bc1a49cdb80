"""The benchmark harness's own arithmetic and report writing (nothing here is timed)."""
import json
import math
import struct
import zlib

from wordloom.bench import charts, report
from wordloom.bench.harness import summarize
from wordloom.bench.stats import latency_summary, median, percentile, rate, ratio, spread, verdict


def test_percentile_interpolates_like_numpy_default():
    data = [10, 20, 30, 40]
    assert percentile(data, 0) == 10
    assert percentile(data, 100) == 40
    assert percentile(data, 50) == 25
    assert math.isclose(percentile(list(range(1, 101)), 99), 99.01)
    assert percentile([7], 99) == 7
    assert math.isnan(percentile([], 50))


def test_median_ignores_missing_runs_and_ratio_guards_zero():
    assert median([3.0, math.nan, 1.0, 2.0]) == 2.0
    assert math.isnan(ratio(1.0, 0))
    assert math.isnan(ratio(math.nan, 2.0))
    assert ratio(8.0, 10.0) == 0.8
    assert math.isnan(rate(10, 0))
    assert spread([1.0, 5.0, 3.0]) == {"min": 1.0, "median": 3.0, "max": 5.0, "n": 3}


def test_latency_summary_and_verdicts():
    s = latency_summary([float(x) for x in range(1, 101)])
    assert s["n"] == 100 and s["max"] == 100 and math.isclose(s["p50"], 50.5)
    assert verdict(0.85, 0.8) == "met" and verdict(0.7, 0.8) == "missed"
    assert verdict(120.0, 100.0, higher_is_better=False) == "missed"
    assert verdict(math.nan, 1.0) == "not measured"


def test_summarize_has_every_required_key_as_a_number():
    details = {
        "search_1kb": {"worker_events_per_s": 800.0, "raw_bulk_docs_per_s": 1000.0, "ratio": 0.8},
        "chronicle": {"worker_events_per_s": 1.0, "plain_upsert_rows_per_s": 2.0, "ratio": 0.5},
        "latency": {200: {"latency_p50_ms": 5.0, "latency_p95_ms": 8.0, "latency_p99_ms": 9.0, "achieved_rate": 199.0}},
        "claim": {"claim_ack_empty_per_s": 10.0, "claim_ack_history_per_s": 9.5, "claim_ack_after_prune_per_s": 9.9,
                  "ratio_history": 0.95, "ratio_after_prune": 0.99, "history": 100, "prune_rows_per_s": 5.0},
        "rss": {"rss_growth_mb": 3.0, "rss_peak_mb": 60.0, "events": 100},
        "rebuild": [{"rows": 10, "ratio": 0.9, "rebuild_docs_per_s": 9.0, "raw_bulk_docs_per_s": 10.0}],
    }
    r = summarize(details)
    for key in ("search_events_per_s", "raw_bulk_docs_per_s", "search_throughput_ratio", "chronicle_throughput_ratio",
                "latency_p50_ms_200", "latency_p99_ms_200", "claim_rate_ratio_1m_history", "rss_growth_mb",
                "rebuild_ratio"):
        assert isinstance(r[key], float), key
    assert r["latency_p99_ms_200"] == 9.0 and r["rebuild_ratio"] == 0.9
    assert math.isnan(summarize({})["search_throughput_ratio"])


def test_results_json_writes_nan_as_null_and_verdicts(tmp_path):
    results = {"search_throughput_ratio": 0.5, "rss_growth_mb": math.nan}
    path = report.write_results(tmp_path, results, {"x": [math.nan, 1.0]}, {"run_id": "t"})
    body = json.loads(path.read_text())  # strict JSON: NaN would not parse in other tools
    assert body["rss_growth_mb"] is None and body["details"]["x"] == [None, 1.0]
    verdicts = {t["key"]: t["verdict"] for t in body["targets"]}
    assert verdicts["search_throughput_ratio"] == "missed" and verdicts["rss_growth_mb"] == "not measured"


def test_benchmarks_md_block_is_replaced_in_place(tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(f"# Benchmarks\n\nhand-written\n\n{report.BEGIN}\nold\n{report.END}\n\ntail\n")
    report.update_benchmarks_md(doc, "new table")
    text = doc.read_text()
    assert "old" not in text and "new table" in text and "hand-written" in text and text.endswith("tail\n")
    fresh = tmp_path / "NEW.md"
    report.update_benchmarks_md(fresh, "t1")
    report.update_benchmarks_md(fresh, "t2")
    assert fresh.read_text().count(report.BEGIN) == 1 and "t2" in fresh.read_text()


def test_png_is_valid(tmp_path):
    path = charts.bar_chart(tmp_path / "c.png", "Title 1", ["a", "b"], {"x": [1.0, math.nan], "y": [2.0, 3.0]})
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", raw[8:16])
    width, height = struct.unpack(">II", raw[16:24])
    assert kind == b"IHDR" and (width, height) == (760, 380)
    idat_len = struct.unpack(">I", raw[33:37])[0]
    pixels = zlib.decompress(raw[41:41 + idat_len])
    assert len(pixels) == height * (1 + width * 3)
    charts.line_chart(tmp_path / "l.png", "rss", [(0, 1.0), (10, 2.0)], "x", "y")
