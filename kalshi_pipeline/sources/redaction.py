"""Keeping the collector's credentials out of every message.

libpq quotes what it cannot parse: a URL whose password holds an unescaped ``%`` comes back
as ``invalid dsn: invalid percent-encoded token: "<password>"``, an unbalanced IPv6 bracket
as the whole URL. So no text that may carry a database error is shown before
:func:`redact` has removed from it:

* the whole URL (or key=value DSN) string;
* its password as written and percent-decoded. It is found with plain patterns, not urllib,
  so a URL that urllib (or libpq) cannot parse still gives up its password; where the
  ``user:password@`` part is ambiguous (an unescaped ``@`` or ``/``), every reading is
  masked;
* the value of a ``password=`` key (key=value DSN or URL query), quoted or not;
* any other ``scheme://user:password@`` or ``password=...`` in the text, so a credential
  the URL did not name is still masked.

:func:`describe_url` gives what may be shown of a URL: host, port and database.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import psycopg2
import psycopg2.extensions

MASK = "***"
MALFORMED_URL = "(malformed URL)"

_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*:)[^@\s]*@")
_PASSWORD_KEY = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)", re.IGNORECASE)


def redact(text: str, url: str | None) -> str:
    """``text`` with the credentials of ``url`` (and any other visible password) masked.

    With no ``url`` only the patterns are applied (a password in some URL or DSN the text
    quotes)."""
    for secret in sorted(_secrets(url) if url else (), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(rf"\1{MASK}@", text)
    return _PASSWORD_KEY.sub(rf"\1{MASK}", text)


def has_credentials(url: str) -> bool:
    """Whether ``url`` may hold a user or password: a ``user@`` part or a ``password=``
    key (a URL without either, ``sqlite:////tmp/x.db``, may be shown whole)."""
    return "@" in url.partition("://")[2] or _PASSWORD_KEY.search(url) is not None


def describe_url(url: str) -> str:
    """``host:port/database`` of a libpq URL or DSN, never its user or password."""
    try:
        params = psycopg2.extensions.parse_dsn(url)
    except psycopg2.Error:
        return MALFORMED_URL
    host = params.get("host") or params.get("hostaddr") or "(local socket)"
    port = params.get("port") or "5432"
    database = params.get("dbname") or "(default database)"
    return redact(f"{host}:{port}/{database}", url)


def _secrets(url: str) -> set[str]:
    """Every string of ``url`` that is, or may be, its password; the URL itself too."""
    found = {url, url.strip()}
    scheme_end = url.find("://")
    if scheme_end >= 0:
        rest = url[scheme_end + 3 :]
        # libpq ends the user info at the first '@' or '/'; urllib at the last '@'.
        first = re.match(r"[^@/]*", rest).group()
        readings = [first] + ([rest[: rest.rindex("@")]] if "@" in rest else [])
        for userinfo in readings:
            if ":" in userinfo:
                found.add(userinfo.partition(":")[2])
        found.update(m.group(1) for m in re.finditer(r"[?&]password=([^&#]*)", url, re.I))
    for match in _PASSWORD_KEY.finditer(url):
        value = match.group(2)
        quoted = value.strip("'")
        found.update((value, quoted, re.sub(r"\\(.)", r"\1", quoted)))
    return {form for secret in found if secret for form in (secret, unquote(secret)) if form}
