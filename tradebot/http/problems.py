"""RFC 9457 problem details: the one shape every API error takes.

Handlers and domain code raise `Problem` (or one of the helpers); the error middleware turns it,
and anything unexpected, into an `application/problem+json` response.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

PROBLEM_CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


@dataclass(slots=True)
class Problem(Exception):
    status: int
    detail: str
    title: str = ""
    type: str = "about:blank"
    errors: Sequence[FieldError] = field(default_factory=tuple)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.title:
            self.title = HTTPStatus(self.status).phrase

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        if self.errors:
            out["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        if request_id:
            out["request_id"] = request_id
        return out


def problem_response(problem: Problem, request_id: str | None = None) -> web.Response:
    return web.Response(
        status=problem.status,
        body=orjson.dumps(problem.body(request_id)),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=problem.headers,
    )


def not_found(what: str = "resource") -> Problem:
    return Problem(404, f"{what} not found")


def path_id(raw: str, what: str) -> int:
    """A resource id from the URL path. A non-numeric or out-of-range id cannot exist: the same 404
    as another user's resource, so ids reveal nothing."""
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 2**63:
        raise not_found(what)
    return int(raw)


def conflict(detail: str) -> Problem:
    return Problem(409, detail)


def unauthorized(detail: str = "missing or invalid credentials") -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="tradebot"'})


def validation_problem(errors: Sequence[FieldError], detail: str | None = None) -> Problem:
    names = ", ".join(sorted({e.field for e in errors}))
    return Problem(422, detail or f"invalid value for: {names}", title="Unprocessable Content", errors=tuple(errors))


def field_problem(field_name: str, message: str) -> Problem:
    return validation_problem([FieldError(field_name, message)])


def from_validation_error(exc: ValidationError) -> Problem:
    errors = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        errors.append(FieldError(loc, message))
    return validation_problem(errors)
