"""Read a JSON request body into a pydantic model, with problem responses for every way it fails."""

from __future__ import annotations

from typing import TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from tradebot.http.problems import Problem, from_validation_error

M = TypeVar("M", bound=BaseModel)


async def parse_json(request: web.Request) -> object:
    # aiohttp enforces client_max_size while reading and raises 413 itself.
    raw = await request.read()
    if not raw.strip():
        raise Problem(400, "request body must be a JSON document")
    ctype = request.content_type
    if ctype not in ("application/json", "application/octet-stream", "text/plain") and not ctype.endswith("+json"):
        raise Problem(415, f"content type {ctype!r} is not supported; send application/json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise Problem(400, f"malformed JSON: {e.msg} at position {e.pos}") from e


async def parse_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """Validate the body against `model`; an empty body is `{}` when `optional`."""
    if optional and not (await request.read()).strip():
        data: object = {}
    else:
        data = await parse_json(request)
    if not isinstance(data, dict):
        raise Problem(422, "request body must be a JSON object", title="Unprocessable Content")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise from_validation_error(e) from e


def parse_query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as e:
        raise from_validation_error(e) from e
