"""Declared API operations: one record per route drives routing, authentication and OpenAPI.

A handler is registered with the models it validates and answers with; the OpenAPI document is
generated from exactly those models, so the spec cannot drift from what the handlers accept.
Operations are authenticated unless declared `public=True`: forgetting is safe.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ResponseSpec = type[BaseModel] | str | None  # a model, a media type such as "text/event-stream", or no body


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tags: tuple[str, ...]
    body: type[BaseModel] | None
    body_required: bool
    query: type[BaseModel] | None
    responses: Mapping[int, ResponseSpec]
    public: bool
    errors: tuple[int, ...]
    description: str = ""
    # Browsers' EventSource cannot send headers: such routes also accept ?access_token= (never logged).
    query_token: bool = False
    # Media types the success response may also come in, as text (a list's CSV export).
    also_media: tuple[str, ...] = ()

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


@dataclass
class RouteTable:
    """Collects operations from the resource modules; `install` adds them to an app's router."""

    operations: list[Operation] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        responses: Mapping[int, ResponseSpec],
        body: type[BaseModel] | None = None,
        body_required: bool = True,
        query: type[BaseModel] | None = None,
        public: bool = False,
        tags: Sequence[str] = (),
        errors: Sequence[int] = (),
        description: str = "",
        query_token: bool = False,
        also_media: Sequence[str] = (),
    ) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method.upper(),
                    path,
                    handler,
                    summary,
                    tuple(tags),
                    body,
                    body_required,
                    query,
                    dict(responses),
                    public,
                    tuple(errors),
                    description,
                    query_token,
                    tuple(also_media),
                )
            )
            return handler

        return decorator

    def extend(self, other: RouteTable) -> None:
        self.operations.extend(other.operations)

    def install(self, app: web.Application) -> dict[web.AbstractRoute, Operation]:
        """Add every operation to the router; returns route → operation for the middlewares."""
        index: dict[web.AbstractRoute, Operation] = {}
        for op in self.operations:
            route = app.router.add_route(op.method, op.path, op.handler, name=op.operation_id)
            index[route] = op
        return index


_PATH_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing, invalid, expired or revoked token",
    403: "Forbidden",
    404: "Not found (or not yours)",
    409: "Conflict with the current state",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Validation failed; `errors` names each field",
    429: "Rate limited; see Retry-After",
    503: "A dependency is unavailable",
}


def build_openapi(operations: Sequence[Operation], *, title: str, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = set()
    for op in operations:
        for spec in (op.body, op.query, *op.responses.values()):
            if isinstance(spec, type) and issubclass(spec, BaseModel):
                models.add(spec)
    ordered = sorted(models, key=lambda m: m.__name__)
    keyed, top = models_json_schema(
        [(m, "validation" if _is_input(m, operations) else "serialization") for m in ordered],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas["Problem"] = _PROBLEM_SCHEMA

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        mode: Literal["validation", "serialization"] = (
            "validation" if _is_input(model, operations) else "serialization"
        )
        return dict(keyed[(model, mode)])

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        path = _PATH_PARAM.sub(r"{\1}", op.path)
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": list(op.tags),
            "parameters": [],
            "responses": {},
        }
        if op.description:
            entry["description"] = op.description
        for name in _PATH_PARAM.findall(op.path):
            entry["parameters"].append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
                    if name == "id" or name.endswith("_id")
                    else {"type": "string"},
                }
            )
        if op.query is not None:
            for fname, finfo in op.query.model_fields.items():
                prop = op.query.model_json_schema()["properties"][finfo.alias or fname]
                entry["parameters"].append(
                    {"name": finfo.alias or fname, "in": "query", "required": finfo.is_required(), "schema": prop}
                )
        if op.body is not None:
            entry["requestBody"] = {
                "required": op.body_required,
                "content": {"application/json": {"schema": ref(op.body)}},
            }
        for status, spec in op.responses.items():
            if spec is None:
                entry["responses"][str(status)] = {"description": "No content"}
            elif isinstance(spec, str):
                entry["responses"][str(status)] = {"description": spec, "content": {spec: {"schema": {"type": "string"}}}}
            else:
                entry["responses"][str(status)] = {
                    "description": spec.__doc__.strip().splitlines()[0] if spec.__doc__ else spec.__name__,
                    "content": {"application/json": {"schema": ref(spec)},
                                **{media: {"schema": {"type": "string"}} for media in op.also_media}},
                }
        errors = set(op.errors)
        if op.body is not None:
            errors |= {400, 413, 415, 422}
        if op.query is not None:
            errors.add(422)
        if not op.public:
            errors.add(401)
        if _PATH_PARAM.search(op.path) and not op.public:
            errors.add(404)
        for status in sorted(errors):
            entry["responses"][str(status)] = {
                "description": _ERROR_TEXT.get(status, "Error"),
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
        if not op.public:
            entry["security"] = [{"bearerAuth": []}]
        if not entry["parameters"]:
            del entry["parameters"]
        paths.setdefault(path, {})[op.method.lower()] = entry

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def _is_input(model: type[BaseModel], operations: Sequence[Operation]) -> bool:
    return any(model is op.body or model is op.query for op in operations)
