"""The operator page: `GET /` and its files under `/static/`, plain HTML, CSS and ES modules
(no build step). It reads and drives runs through the JSON routes of `app.py`, so it
needs nothing the API does not offer; the files ship inside the wheel."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

__all__ = ["PAGE_PATHS", "STATIC", "page_router"]

STATIC = Path(__file__).with_name("static")
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_FILES = {p.name: p for p in STATIC.iterdir() if p.suffix in _TYPES}
PAGE_PATHS = frozenset({"/", *(f"/static/{name}" for name in _FILES)})
"""Open without the token: a browser loads a page with no header, and the page holds no data
(it asks for the token, then sends it with every API call)."""


def page_router() -> APIRouter:
    """`GET /` (the page) and `GET /static/{name}` (its files, by name only)."""
    router = APIRouter(tags=["operator page"])

    @router.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return _file(_FILES["index.html"])

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        found = _FILES.get(name)
        if found is None:
            raise HTTPException(404, f"no file {name!r}")
        return _file(found)

    return router


def _file(path: Path) -> FileResponse:
    # no-cache: a browser asks again (cheaply, by ETag) so a new version is never stale.
    return FileResponse(
        path,
        media_type=f"{_TYPES[path.suffix]}; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )
