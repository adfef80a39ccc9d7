"""The optional API key: when set, every request must carry it (else HTTP 401).

A client sends it as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``. A browser cannot
put headers on ``<img>`` requests, so the web page is opened once as ``/?api_key=KEY``: the
server answers with an HttpOnly, SameSite=Strict cookie and a redirect to ``/`` (the key
leaves the address bar), and the page's later requests carry the cookie.
"""

from __future__ import annotations

import hmac

COOKIE = "convir_api_key"
HEADER = "x-api-key"


def presented_keys(
    headers: dict[str, str], cookies: dict[str, str], query: dict[str, str], path: str
) -> list[str]:
    """Every key the request offers; the query string counts only on the page itself."""
    keys = [headers.get(HEADER, ""), cookies.get(COOKIE, "")]
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        keys.append(token.strip())
    if path == "/":
        keys.append(query.get("api_key", ""))
    return [k for k in keys if k]


def key_matches(expected: str, offered: list[str]) -> bool:
    """Constant-time comparison, so response timing does not leak the key."""
    want = expected.encode()
    return any(hmac.compare_digest(want, k.encode("utf-8", "replace")) for k in offered)
