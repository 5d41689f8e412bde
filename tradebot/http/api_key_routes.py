"""/api/v1/api-keys: thin handlers over the API-key service (CONTRACT.md "Exchange API keys")."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tradebot.accounts.api_keys import ApiKey
from tradebot.http.appkeys import API_KEYS, PRINCIPAL
from tradebot.http.json_response import json_response
from tradebot.http.pagination import Page, PageQuery, build_page, decode_id_cursor
from tradebot.http.problems import path_id
from tradebot.http.request_body import parse_body, parse_query
from tradebot.http.routing import RouteTable

routes = RouteTable()

PREFIX = "/api/v1/api-keys"
TAGS = ["api keys"]
# Account data stays out of shared caches (OWASP ASVS 8.1.1).
NO_STORE = {"Cache-Control": "no-store"}

# Exchange keys and secrets are printable ASCII without spaces; anything else is a paste mistake.
Credential = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[\x21-\x7e]+$")]
# Printable text with at least one visible character (PostgreSQL text cannot hold NUL, and control
# characters in a label only serve to confuse a log or a UI).
Label = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"),
]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    label: Label
    exchange: Literal["binanceusdm"]
    api_key: Credential
    secret_key: Credential = Field(json_schema_extra={"writeOnly": True})


class ApiKeyOut(BaseModel):
    """An exchange API key as its owner sees it: never the key or the secret themselves."""

    id: int
    label: str
    exchange: str
    api_key_hint: str
    is_valid: bool | None
    validated_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id,
            label=key.label,
            exchange=key.exchange,
            api_key_hint=key.api_key_hint,
            is_valid=key.is_valid,
            validated_at=key.validated_at,
            created_at=key.created_at,
            updated_at=key.updated_at,
        )


class ApiKeyPage(Page[ApiKeyOut]):
    """A page of the caller's API keys, oldest first."""


def _key_id(request: web.Request) -> int:
    return path_id(request.match_info["id"], "api key")


@routes.route(
    "POST",
    PREFIX,
    summary="Store an exchange API key (encrypted)",
    body=ApiKeyCreate,
    responses={201: ApiKeyOut},
    errors=[409],
    tags=TAGS,
)
async def create_api_key(request: web.Request) -> web.Response:
    body = await parse_body(request, ApiKeyCreate)
    key = await request.app[API_KEYS].create(
        request[PRINCIPAL].user_id,
        label=body.label,
        exchange=body.exchange,
        api_key=body.api_key,
        secret_key=body.secret_key,
    )
    return json_response(ApiKeyOut.of(key), status=201, headers={**NO_STORE, "Location": f"{PREFIX}/{key.id}"})


@routes.route("GET", PREFIX, summary="The caller's API keys", query=PageQuery, responses={200: ApiKeyPage}, tags=TAGS)
async def list_api_keys(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    after = decode_id_cursor(query.cursor)
    rows = await request.app[API_KEYS].page(request[PRINCIPAL].user_id, after_id=after, limit=query.limit + 1)
    items, next_cursor = build_page(rows, query.limit, lambda k: (k.id,))
    return json_response(ApiKeyPage(items=[ApiKeyOut.of(k) for k in items], next_cursor=next_cursor), headers=NO_STORE)


@routes.route("GET", PREFIX + "/{id}", summary="One API key", responses={200: ApiKeyOut}, tags=TAGS)
async def get_api_key(request: web.Request) -> web.Response:
    key = await request.app[API_KEYS].get(request[PRINCIPAL].user_id, _key_id(request))
    return json_response(ApiKeyOut.of(key), headers=NO_STORE)


@routes.route(
    "POST",
    PREFIX + "/{id}/validate",
    summary="Check the key against the exchange",
    responses={200: ApiKeyOut},
    errors=[429, 503],
    tags=TAGS,
)
async def validate_api_key(request: web.Request) -> web.Response:
    key = await request.app[API_KEYS].validate(request[PRINCIPAL].user_id, _key_id(request))
    return json_response(ApiKeyOut.of(key), headers=NO_STORE)


@routes.route(
    "DELETE",
    PREFIX + "/{id}",
    summary="Delete an API key (not while a running bot uses it)",
    responses={204: None},
    errors=[409],
    tags=TAGS,
)
async def delete_api_key(request: web.Request) -> web.Response:
    await request.app[API_KEYS].delete(request[PRINCIPAL].user_id, _key_id(request))
    return web.Response(status=204)
