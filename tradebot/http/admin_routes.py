"""/api/v1/admin: what operators (TRADEBOT_ADMIN_EMAILS) do to accounts.

Everybody else gets the same 404 as a route that does not exist, as for /api/v1/cluster.
"""

from __future__ import annotations

from aiohttp import web

from tradebot.http.appkeys import ACCOUNTS, PRINCIPAL, SETTINGS
from tradebot.http.problems import Problem, not_found, path_id
from tradebot.http.routing import RouteTable

routes = RouteTable()

TAGS = ["admin"]


def _operator_only(request: web.Request) -> None:
    if request[PRINCIPAL].email.strip().lower() not in request.app[SETTINGS].admin_email_set:
        raise Problem(404, f"no route for {request.path}")


def _user_id(request: web.Request) -> int:
    return path_id(request.match_info["user_id"], "user")


async def _set_active(request: web.Request, active: bool) -> web.Response:
    _operator_only(request)
    if not await request.app[ACCOUNTS].set_active(_user_id(request), active):
        raise not_found("user")
    return web.Response(status=204)


@routes.route(
    "POST",
    "/api/v1/admin/users/{user_id}/deactivate",
    summary="Deactivate an account",
    description="Operators only; 404 for everybody else. The user's tokens are refused on every replica "
    "within a second and their open streams end; logging in is refused until reactivated.",
    responses={204: None},
    errors=[404],
    tags=TAGS,
)
async def deactivate_user(request: web.Request) -> web.Response:
    return await _set_active(request, False)


@routes.route(
    "POST",
    "/api/v1/admin/users/{user_id}/activate",
    summary="Reactivate an account",
    description="Operators only; 404 for everybody else. Tokens issued before the deactivation stay "
    "refused: the user logs in again.",
    responses={204: None},
    errors=[404],
    tags=TAGS,
)
async def activate_user(request: web.Request) -> web.Response:
    return await _set_active(request, True)
