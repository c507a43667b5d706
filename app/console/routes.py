"""Serves the console's bundle (built from console/ by `make console`) at /console/, same origin, no CDN.

The assets are served as files; every other path under /console/ answers the page itself, so the
console's history-mode routes (/console/households/12) survive a reload. The page gets the HTML
policy of the dashboard (this origin's scripts only), plus blob: frames for the printable statement
and PDFs it fetches with its token.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from app.kit.errors import NotFound
from app.kit.headers import page_policy

BUNDLE = Path(__file__).resolve().parents[1] / "static" / "console"
_MEDIA = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".woff2": "font/woff2", ".woff": "font/woff",
          ".ttf": "font/ttf", ".png": "image/png", ".ico": "image/x-icon"}

router = APIRouter(include_in_schema=False)


def _missing() -> NotFound:
    return NotFound("not_found", "找不到该文件", "No such file")


@router.get("/console")
def console_root():
    return RedirectResponse("/console/", status_code=308)


@router.get("/console/assets/{name}")
def console_asset(name: str):
    """A built asset: its name carries its content hash, so it may be cached for good."""
    path = (BUNDLE / "assets" / name).resolve()
    if path.parent != (BUNDLE / "assets").resolve() or not path.is_file():
        raise _missing()
    return FileResponse(path, media_type=_MEDIA.get(path.suffix, "application/octet-stream"),
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})


@router.get("/console/{rest:path}")
def console_page(rest: str = ""):
    index = BUNDLE / "index.html"
    if not index.is_file():
        raise _missing()
    html = index.read_text(encoding="utf-8")
    policy = page_policy(html).replace("frame-ancestors", "frame-src 'self' blob:; frame-ancestors")
    return HTMLResponse(html, headers={"Content-Security-Policy": policy, "Cache-Control": "no-cache"})
