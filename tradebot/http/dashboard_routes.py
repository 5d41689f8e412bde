"""The web dashboard: its pages (one HTML shell, rendered by ES modules from /static/js/) and the security
headers every response carries (the charts' API additions are tradebot.http.chart_routes).

Pages are plain routes, not API operations: they are public (the shell holds no data; the modules
call the API with the bearer token kept in sessionStorage) and stay out of the OpenAPI document.
The shell has no inline script or style, so the Content-Security-Policy can be strict: same-origin
scripts, styles, images and connections only, no eval, no framing.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SERVER_NAME = "tradebot"

# Client-side routes: each serves the same shell; /static/js/main.js picks the page from the path.
PAGE_PATHS = (
    "/",
    "/login",
    "/register",
    "/forgot-password",
    "/reset-password",
    "/keys",
    "/notifications",
    "/bots",
    "/bots/new",
    "/bots/{id:\\d{1,19}}",
    "/bots/{id:\\d{1,19}}/edit",
    "/backtests",
    "/backtests/new",
    "/backtests/{id:\\d{1,19}}",
    "/overview",
    "/optimizations",
    "/optimizations/new",
    "/optimizations/{id:\\d{1,19}}",
)


def install(app: web.Application) -> None:
    """Adds the page routes and the security-header hook (before the app freezes)."""
    shell = (STATIC_DIR / "index.html").read_bytes()

    async def page(request: web.Request) -> web.Response:
        resp = web.Response(body=shell, content_type="text/html", charset="utf-8")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    for path in PAGE_PATHS:
        app.router.add_get(path, page)
    app.on_response_prepare.append(_security_headers)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    # aiohttp's default names its own and Python's versions, a free hint for an attacker.
    headers["Server"] = SERVER_NAME
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/static/"):
        # Unversioned file names: revalidate each time (a 304 when unchanged), so an upgrade is seen at once.
        headers.setdefault("Cache-Control", "no-cache")
    if headers.get("Content-Type", "").startswith("text/html"):
        # A page that sets its own policy (the Swagger UI page) keeps it.
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
