"""Masking of secrets in anything we print.

v3 printed the full database URL at startup.  Every log line, error message and command output
goes through `redact` so a password, API key or token never reaches a terminal or a log file.

Three layers, because no single pattern catches everything:
1. URL credentials: `scheme://user:password@host` (the password may hold `@`, `/`, `:` or `%xx`).
2. key/value pairs whose key names a secret: libpq `password=...` (quoted or not), `token: ...`,
   JSON `"password": "..."`, `ELASTIC_API_KEY=...`, `Authorization: Bearer ...`, and the header
   dicts libraries print (`{'authorization': 'ApiKey ...'}`).
3. the secret *values* this process was given: passwords inside URL-valued environment variables
   and the values of secret-named variables (ELASTIC_API_KEY, PGPASSWORD, ...) are masked wherever
   they appear, even bare inside a driver's error message.
"""
from __future__ import annotations

import os
import re
from urllib.parse import unquote

MASK = "***"

# user:password@host inside any URL-ish string (postgresql://, http://, ...).  The password runs to
# the LAST `@` of the authority: "p@ss" and "p/ss" are masked whole, not cut at the first `@`.
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^\s'\"]*)"
    r"@(?=[^@\s/?#'\"]*(?:[/?#\s'\"]|$))"
)
_SECRET_KEY = r"[A-Za-z0-9_.\-]*(?:password|passwd|pwd|passphrase|secret|token|api[_\-]?key|apikey|authorization|auth[_\-]?header)"
# key=value / key: value pairs whose key names a secret (libpq DSNs, headers, JSON, env dumps).
_SECRET_PAIR = re.compile(
    r"(?P<key>(?<![A-Za-z0-9])" + _SECRET_KEY + r"[\"']?\s*[=:]\s*)"
    r"(?P<value>"
    r"(?P<q>[\"'])(?:\\.|(?!(?P=q)).)*(?P=q)"  # a quoted value, escapes included
    r"|(?:(?:ApiKey|Bearer|Basic|Token)\s+)?[^\s\"',;&}\])]+"  # a bare value, maybe with its scheme
    r")",
    re.IGNORECASE,
)
# An Authorization scheme followed by its credentials, wherever it stands.
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>ApiKey|Bearer|Basic)\s+(?P<cred>[A-Za-z0-9._~+/=\-]{6,})")
# Environment variables whose value is a secret as a whole (ELASTIC_API_KEY, PGPASSWORD, ...).
# Not `PWD`: that is the working directory.
_SECRET_ENV = re.compile(r"(?:password|passwd|secret|token|api_?key)$", re.IGNORECASE)
_MIN_SECRET_LEN = 4  # shorter values ("x", "1") would mask ordinary text
_NOT_SECRETS = {"true", "false", "none", "null", "unset", "changeme"}

_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask this exact value from now on (for secrets that come from somewhere else than the
    environment, e.g. a flag)."""
    if value and len(value) >= _MIN_SECRET_LEN:
        _extra_secrets.add(value)


def _mask_pair(m: re.Match) -> str:
    q = m.group("q")
    return f"{m.group('key')}{q}{MASK}{q}" if q else f"{m.group('key')}{MASK}"


def known_secrets(environ=None) -> list[str]:
    """Secret values this process holds: URL passwords in the environment and secret-named
    variables.  Longest first, so a secret containing another one is masked whole."""
    env = os.environ if environ is None else environ
    found = set(_extra_secrets)
    for key, value in list(env.items()):
        if not value:
            continue
        if _SECRET_ENV.search(key) and "://" not in value:
            found.add(value)
        if "://" in value:
            for m in _URL_PASSWORD.finditer(value):
                pw = m.group("pw")
                rest = value[:m.start("pw")] + value[m.end("pw"):]
                # `wordloom:wordloom@.../wordloom_dev`: a password that is also the user or the
                # database name is no secret, and masking the word everywhere would garble every
                # logger and index name.  Layers 1 and 2 still mask it inside URLs and pairs.
                for candidate in {pw, unquote(pw)}:
                    if candidate not in rest:
                        found.add(candidate)
    return sorted((s for s in found if len(s) >= _MIN_SECRET_LEN and s.lower() not in _NOT_SECRETS),
                  key=len, reverse=True)


def redact(text: object) -> str:
    """Return `text` as a string with URL passwords, secret key/value pairs, authorization
    credentials and this process's known secret values masked."""
    s = str(text)
    s = _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{MASK}@", s)
    s = _SECRET_PAIR.sub(_mask_pair, s)
    s = _AUTH_SCHEME.sub(lambda m: f"{m.group('scheme')} {MASK}", s)
    for secret in known_secrets():
        if secret in s:
            s = s.replace(secret, MASK)
    return s


def host_port(url: str) -> str:
    """`host:port` of a URL, for error lines that must say where without saying who."""
    m = re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://(?:[^\s'\"]*@(?=[^@\s/?#]*(?:[/?#\s]|$)))?(?P<hp>[^/?#@\s]*)",
                 url or "")
    return m.group("hp") if m else "?"
