"""Masking of secrets in anything we print.

v3 printed the full database URL at startup.  Every log line, error message and command output
goes through `redact` so a password, API key or token never reaches a terminal or a log file.
"""
from __future__ import annotations

import re

MASK = "***"

# user:password@host inside any URL-ish string (postgresql://, http://, ...)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
# key=value / key: value pairs whose key names a secret (libpq DSNs, headers, JSON-ish dumps)
_SECRET_PAIR = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|api[_-]?key|apikey|token|secret|authorization)\b\"?\s*[=:]\s*\"?)"
    r"(?P<value>(?:ApiKey |Bearer |Basic )?[^\s\"',;&}]+)",
    re.IGNORECASE,
)


def redact(text: object) -> str:
    """Return `text` as a string with URL passwords and secret-looking key/value pairs masked."""
    s = str(text)
    s = _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{MASK}@", s)
    s = _SECRET_PAIR.sub(lambda m: f"{m.group('key')}{MASK}", s)
    return s


def host_port(url: str) -> str:
    """`host:port` of a URL, for error lines that must say where without saying who."""
    m = re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://(?:[^@/]*@)?(?P<hp>[^/?#]*)", url or "")
    return m.group("hp") if m else "?"
