"""Request id, access log and metrics, problem errors, authentication: in that order, outermost first."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from tradebot.http.appkeys import AUTHENTICATOR, HTTP_METRICS, OPERATIONS, PRINCIPAL, REQUEST_ID
from tradebot.http.domain_problems import problem_for
from tradebot.http.problems import Problem, problem_response, unauthorized
from tradebot.logs import request_id_var

log = logging.getLogger("tradebot.http")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Assign a request id (or keep a well-formed incoming one), log the request, count it."""
    incoming = request.headers.get("X-Request-ID", "")
    rid = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else secrets.token_hex(16)
    request[REQUEST_ID] = rid
    token = request_id_var.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = rid
        return response
    except web.HTTPException as e:
        status = e.status
        e.headers["X-Request-ID"] = rid
        raise
    finally:
        elapsed = time.perf_counter() - started
        request.app[HTTP_METRICS].request_done(request.method, _route_label(request), status, elapsed)
        # The path only: query strings may carry an SSE access token.
        log.info(
            "%s %s %d",
            request.method,
            request.path,
            status,
            extra={"duration_ms": round(elapsed * 1000, 2), "remote": request.remote},
        )
        request_id_var.reset(token)


def _route_label(request: web.Request) -> str:
    # Label by template, never by raw path: a client cannot blow up the metric's cardinality.
    info = request.match_info.route.resource
    if info is None:
        return "unmatched"
    return info.canonical


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as application/problem+json: a domain refusal as its entry in
    domain_problems says (handlers let them through), internal errors hiding their details."""
    try:
        return await handler(request)
    except Problem as p:
        return problem_response(p, request.get(REQUEST_ID))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        detail = {
            404: f"no route for {request.path}",
            405: f"method {request.method} not allowed on {request.path}",
            413: "request body too large",
        }.get(e.status, e.reason)
        resp = problem_response(Problem(e.status, detail), request.get(REQUEST_ID))
        for name in ("Allow", "Retry-After", "WWW-Authenticate"):
            if name in e.headers:
                resp.headers[name] = e.headers[name]
        return resp
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        raise
    except ConnectionResetError:
        raise
    except Exception as e:
        problem = problem_for(e)
        if problem is not None:
            return problem_response(problem, request.get(REQUEST_ID))
        rid = request.get(REQUEST_ID)
        log.exception("unhandled error in %s %s", request.method, request.path)
        return problem_response(Problem(500, f"internal error; quote request id {rid} when reporting it"), rid)


@web.middleware
async def authentication(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate every declared operation that is not public; routes default to protected."""
    op = request.app[OPERATIONS].get(request.match_info.route)
    if op is not None and not op.public:
        authenticator = request.app.get(AUTHENTICATOR)
        if authenticator is None:
            raise unauthorized("authentication is not configured")
        request[PRINCIPAL] = await authenticator(request)
    return await handler(request)
