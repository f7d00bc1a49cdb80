"""wordloom.redact: every shape a secret takes in our output is masked.

Each case also checks that the raw text DOES contain the secret, so a case can never pass because
the fixture was already harmless; and `test_a_broken_redactor_is_caught` shows the same check fails
when the redactor does nothing.
"""
from __future__ import annotations

import pytest

from wordloom.redact import MASK, host_port, known_secrets, redact

# (text, secret that must disappear, text that must survive)
CASES = [
    ("postgresql://wordloom:S3cr3t@127.0.0.1:5435/wordloom_dev", "S3cr3t", "127.0.0.1:5435/wordloom_dev"),
    ("postgres://u:p@ss/w:rd@db.local:5432/x?sslmode=require", "p@ss/w:rd", "db.local:5432/x"),
    ("postgresql+psycopg://u:p%40ss%2Fw@h:1/db", "p%40ss%2Fw", "h:1/db"),
    ("postgresql://u:!#$^&*()-=+[]{};,.<>~|@h/db", "!#$^&*()-=+[]{};,.<>~|", "@h/db"),
    ("http://elastic:Es-Pw:9@127.0.0.1:19200/_bulk", "Es-Pw:9", "127.0.0.1:19200/_bulk"),
    ("two urls: http://a:first-pw@h1:1/ and https://b:second-pw@h2:2/", "first-pw", "h2:2"),
    ("two urls: http://a:first-pw@h1:1/ and https://b:second-pw@h2:2/", "second-pw", "h1:1"),
    ('{"database": "postgresql://u:json-pw@h/db"}', "json-pw", '"database"'),
    ("host=127.0.0.1 port=5432 user=w password=libpq-pw dbname=w", "libpq-pw", "dbname=w"),
    ("host=h password='quoted libpq pw' dbname=w", "quoted libpq pw", "dbname=w"),
    ("PGPASSWORD=env-pw psql -h h", "env-pw", "psql -h h"),
    ("ELASTIC_API_KEY=some-key-value next", "some-key-value", "next"),
    ("api_key: abc123def456", "abc123def456", "api_key"),
    ("token=tok_0123456789&x=1", "tok_0123456789", "&x=1"),
    ("secret: shh-its-secret", "shh-its-secret", "secret"),
    ('{"password": "json pass \\"with quote\\"", "user": "u"}', "json pass", '"user": "u"'),
    ("{'password': 'single-quoted-pw', 'port': 5432}", "single-quoted-pw", "'port': 5432"),
    ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig", "Authorization"),
    ("Authorization: ApiKey dGhlLWtleTp2YWx1ZQ==", "dGhlLWtleTp2YWx1ZQ==", "Authorization"),
    ("authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==", "authorization"),
    ("{'authorization': 'ApiKey header-dict-key'}", "header-dict-key", "authorization"),
    ("headers sent: ApiKey c29tZS1rZXktdmFsdWU= to /_bulk", "c29tZS1rZXktdmFsdWU=", "to /_bulk"),
    ("retrying with Bearer abcdefghijklmnop", "abcdefghijklmnop", "retrying with"),
]


def assert_masked(text: str, secret: str, survivor: str, redactor=redact) -> None:
    assert secret in text, "the fixture must contain the secret, or the case proves nothing"
    out = redactor(text)
    assert secret not in out, f"secret leaked: {out!r}"
    assert survivor in out, f"over-masked: {out!r}"


@pytest.mark.parametrize("text,secret,survivor", CASES)
def test_secret_is_masked(text, secret, survivor):
    assert_masked(text, secret, survivor)
    assert MASK in redact(text)


@pytest.mark.parametrize("text,secret,survivor", CASES[:6] + CASES[8:12] + CASES[17:20])
def test_a_broken_redactor_is_caught(text, secret, survivor):
    """The check above is meaningful: with a redactor that does nothing, it fails."""
    with pytest.raises(AssertionError, match="secret leaked"):
        assert_masked(text, secret, survivor, redactor=lambda t: str(t))


def test_the_old_redactor_would_have_leaked():
    """Shapes the first version missed (cut at the first `@`, quoted libpq values, prefixed env
    names, header dicts): a regression guard with concrete reasons."""
    for text, secret in [("postgres://u:p@ss@h/db", "ss"), ("password='a b'", "a b"),
                         ("ELASTIC_API_KEY=k-1234", "k-1234"), ("{'authorization': 'ApiKey zz-zz-zz'}", "zz-zz-zz")]:
        assert secret not in redact(text)


def test_plain_text_and_urls_without_credentials_are_untouched():
    for text in ["http://127.0.0.1:9200/wordloom-test-search-index/_bulk", "postgresql://localhost/wordloom_dev",
                 "Matched failed rows: 3; will replay: 2 (limit=1000)", "worker wordloom-search-outbox-worker ready",
                 "tokenizer standard", "3 passed"]:
        assert redact(text) == text


def test_known_secret_values_are_masked_wherever_they_appear(monkeypatch):
    monkeypatch.setenv("ELASTIC_API_KEY", "bare-api-key-value")
    monkeypatch.setenv("DATABASE_URL", "postgresql://w:Bare%2FPw-42@h:5432/w_test")
    text = "invalid key bare-api-key-value; auth failed for Bare/Pw-42 and Bare%2FPw-42"
    out = redact(text)
    assert "bare-api-key-value" not in out and "Bare/Pw-42" not in out and "Bare%2FPw-42" not in out
    assert "bare-api-key-value" in known_secrets()


def test_a_password_that_is_also_the_user_or_db_name_is_not_masked_everywhere(monkeypatch):
    """dev's `wordloom:wordloom@.../wordloom_dev`: masking the word everywhere would garble every
    logger and index name; it is still masked inside URLs."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://wordloom:wordloom@127.0.0.1:5435/wordloom_dev")
    assert redact("logger wordloom.api index wordloom-dev-search-index") == \
        "logger wordloom.api index wordloom-dev-search-index"
    assert redact("postgresql://wordloom:wordloom@127.0.0.1:5435/wordloom_dev") == \
        "postgresql://wordloom:***@127.0.0.1:5435/wordloom_dev"


def test_pwd_and_boolean_secret_env_values_do_not_mask_ordinary_text(monkeypatch):
    monkeypatch.setenv("PWD", "/work/main")
    monkeypatch.setenv("SOME_TOKEN", "true")
    assert redact("/work/main/var is true") == "/work/main/var is true"


def test_host_port_never_contains_credentials():
    assert host_port("postgresql://u:p@ss@db:5432/x") == "db:5432"
    assert host_port("http://elastic:pw@127.0.0.1:19200") == "127.0.0.1:19200"
    assert host_port("http://localhost:9200") == "localhost:9200"
