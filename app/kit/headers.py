"""Security headers on every response, and the Content-Security-Policy of the HTML pages.

Every response says: don't sniff the type, don't frame me, send no referrer. An API answer (JSON, a
file) gets a policy that allows nothing to load; an HTML page (the dashboard, the printable statement
and report, /docs) one that allows only this origin's scripts and styles, plus the page's own inline
scripts named by their hashes (`page_policy`).
"""

from __future__ import annotations

import base64
import hashlib
import re

COMMON = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]
API_POLICY = b"default-src 'none'; frame-ancestors 'none'"
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)


def page_policy(html: str) -> str:
    """The policy of a page: this origin, and each inline script of the page by its SHA-256."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in _INLINE_SCRIPT.findall(html)
    )
    return PAGE_POLICY.format(hashes=hashes)


def secure(headers: list[tuple[bytes, bytes]]) -> None:
    """Add the security headers to a response's (an ASGI start message's), keeping a policy it set."""
    has_policy = html = False
    for name, value in headers:
        if name == b"content-security-policy":
            has_policy = True
        elif name == b"content-type":
            html = value.startswith(b"text/html")
    headers.extend(COMMON)
    if not has_policy:
        headers.append((b"content-security-policy", PAGE_POLICY.format(hashes="").encode() if html else API_POLICY))
