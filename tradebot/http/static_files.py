"""Static files (the dashboard's modules, Swagger UI's assets) served so that a miss is a problem.

aiohttp's own static resource answers a missing file with an empty `application/octet-stream` 404
(decided inside the file response, after every middleware has run) and a directory with a 403; here
the file is looked up first, so anything that is not a regular file under the root is the API's
usual problem+json 404. FileResponse still does the rest (conditional requests, ranges, sendfile).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from tradebot.http.problems import Problem


def add_static_dir(app: web.Application, prefix: str, root: Path) -> None:
    """Serve the regular files under `root` at `prefix` + their relative path (GET and HEAD)."""
    base = root.resolve()

    async def static_file(request: web.Request) -> web.StreamResponse:
        found = await asyncio.to_thread(_regular_file_under, base, request.match_info["path"])
        if found is None:
            raise Problem(404, f"no file at {request.path}")
        return web.FileResponse(found)

    app.router.add_get(prefix.rstrip("/") + "/{path:.+}", static_file)


def _regular_file_under(base: Path, relative: str) -> Path | None:
    try:
        candidate = (base / relative).resolve()
        if candidate.is_relative_to(base) and candidate.is_file():
            return candidate
    except (OSError, ValueError):  # a NUL or an over-long name
        pass
    return None
