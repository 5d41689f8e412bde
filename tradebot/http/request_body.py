"""Read a JSON request body into a pydantic model, with problem responses for every way it fails.

Every request model is filled through `parse_body` or `parse_query`, so the rules here hold for every
endpoint at once: only JSON media types (a cross-site "simple" request can send text/plain or a form,
never application/json, so refusing those keeps register and reset out of reach of other sites'
pages); only content codings aiohttp decoded; no duplicate object keys (which parser's reading of
`{"a": 1, "a": 2}` wins is an ambiguity a proxy and this API could disagree on); and no NUL
character in any string (PostgreSQL's text cannot hold one, so it would be a 500 deep inside).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from tradebot.http.problems import Problem, field_problem, from_validation_error

M = TypeVar("M", bound=BaseModel)

# What aiohttp decodes itself (br and zstd only with optional packages this project does not ship).
_DECODED_CODINGS = frozenset({"", "identity", "gzip", "deflate"})
_NUL = "\x00"
# Larger bodies are checked (duplicate keys, NUL) in a worker thread: those checks run at Python speed,
# ~40 ms for a 1 MiB body of small objects, where orjson's parse takes ~5 ms.
_INLINE_CHECK_BYTES = 64 * 1024


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


async def _read(request: web.Request) -> bytes:
    coding = request.headers.get("Content-Encoding", "").strip().lower()
    if coding not in _DECODED_CODINGS:
        raise Problem(415, "content encoding is not supported; send the body uncompressed, gzip or deflate")
    try:
        # aiohttp enforces client_max_size while reading and raises 413 itself.
        return await request.read()
    except web.RequestPayloadError as e:  # a broken gzip/deflate stream, a truncated chunk
        # The stream is dead: mark it finished so aiohttp does not try to drain it after the answer,
        # and close the connection, whose framing can no longer be trusted.
        request.content.feed_eof()
        request.protocol.close()
        raise Problem(400, "the request body could not be decoded (a corrupt compressed stream?)",
                      headers={"Connection": "close"}) from e


async def parse_json(request: web.Request) -> object:
    raw = await _read(request)
    if not raw.strip():
        raise Problem(400, "request body must be a JSON document")
    ctype = request.content_type
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise Problem(415, f"content type {ctype!r} is not supported; send application/json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise Problem(400, f"malformed JSON: {e.msg} at position {e.pos}") from e
    if len(raw) > _INLINE_CHECK_BYTES:
        await asyncio.to_thread(_check_document, raw, data)
    else:
        _check_document(raw, data)
    return data


def _check_document(raw: bytes, data: object) -> None:
    if _has_objects(data):
        _refuse_duplicate_keys(raw)
    # JSON can only carry U+0000 escaped (orjson refuses a raw control character), so a body without
    # the escape needs no walk.
    if b"\\u0000" in raw:
        _refuse_nul(data, "")


def _has_objects(data: object) -> bool:
    if isinstance(data, dict):
        return True
    return isinstance(data, list) and any(_has_objects(item) for item in data)


def _refuse_duplicate_keys(raw: bytes) -> None:
    # orjson keeps the last of repeated keys silently; the standard parser lets a hook see every pair.
    # orjson has already checked the document (UTF-8, syntax), so only duplicates can fail here.
    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        out = dict(items)
        if len(out) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    raise _DuplicateKey(key)
                seen.add(key)
        return out

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except _DuplicateKey as e:
        shown = e.key.replace(_NUL, "\\u0000")[:64]
        raise Problem(400, f"malformed JSON: duplicate key {shown!r}") from None
    except (ValueError, RecursionError) as e:  # limits of the standard parser orjson does not share
        raise Problem(400, "malformed JSON: too deeply nested or a number too long") from e


def _refuse_nul(value: object, path: str) -> None:
    if isinstance(value, str):
        if _NUL in value:
            raise field_problem(path or "body", "must not contain the NUL character (U+0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if _NUL in key:
                raise field_problem(path or "body", "a key must not contain the NUL character (U+0000)")
            _refuse_nul(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_nul(item, f"{path}.{i}" if path else str(i))


async def parse_body(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    """Validate the body against `model`; an empty body is `{}` when `optional`."""
    if optional and not (await _read(request)).strip():
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
    params: Mapping[str, str] = request.query
    for name, value in params.items():
        if _NUL in name or _NUL in value:
            raise field_problem(name.replace(_NUL, "\\u0000")[:64], "must not contain the NUL character (U+0000)")
    try:
        return model.model_validate(dict(params))
    except ValidationError as e:
        raise from_validation_error(e) from e
