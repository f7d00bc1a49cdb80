"""Settings of the v3 names this engine reads differently on purpose (see settings.WorkerSettings)."""
from wordloom.settings import worker_settings

BASE = {"DATABASE_URL": "postgresql://u@127.0.0.1:1/x_test"}


def test_use_es_bulk_defaults_to_bulk_and_an_explicit_0_selects_per_event():
    assert worker_settings("search", BASE).use_es_bulk is True
    assert worker_settings("search", {**BASE, "OUTBOX_USE_ES_BULK": ""}).use_es_bulk is True  # empty = unset
    assert worker_settings("search", {**BASE, "OUTBOX_USE_ES_BULK": "0"}).use_es_bulk is False
    assert worker_settings("search", {**BASE, "OUTBOX_USE_ES_BULK": "yes"}).use_es_bulk is True


def test_concurrency_is_parsed_and_validated_even_though_one_batch_runs_at_a_time():
    assert worker_settings("search", {**BASE, "OUTBOX_CONCURRENCY": "4"}).concurrency == 4
    import pytest

    from wordloom.settings import ConfigError

    with pytest.raises(ConfigError, match="OUTBOX_CONCURRENCY"):
        worker_settings("search", {**BASE, "OUTBOX_CONCURRENCY": "many"})


def test_pipeline_depth_is_a_positive_number_of_batches_at_the_sink():
    import pytest

    from wordloom.settings import PIPELINE_DEPTH, ConfigError

    assert worker_settings("search", BASE).pipeline_depth == PIPELINE_DEPTH
    assert worker_settings("search", {**BASE, "OUTBOX_PIPELINE_DEPTH": "3"}).pipeline_depth == 3
    for bad in ("0", "two"):
        with pytest.raises(ConfigError, match="OUTBOX_PIPELINE_DEPTH"):
            worker_settings("search", {**BASE, "OUTBOX_PIPELINE_DEPTH": bad})
