"""/api/v1/webhooks: thin handlers over the webhook service (CONTRACT.md "Webhooks")."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tradebot.http.appkeys import PRINCIPAL, WEBHOOKS
from tradebot.http.json_response import json_response
from tradebot.http.pagination import Page, PageQuery, build_page, decode_id_cursor
from tradebot.http.problems import not_found
from tradebot.http.request_body import parse_body, parse_query
from tradebot.http.routing import RouteTable
from tradebot.notifications.webhooks import Delivery, Webhook

routes = RouteTable()

PREFIX = "/api/v1/webhooks"
TAGS = ["webhooks"]
NO_STORE = {"Cache-Control": "no-store"}

Description = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)] = Field(
        description="http(s) URL; in production it must resolve to public addresses only")
    events: list[Annotated[str, StringConstraints(max_length=32)]] | None = Field(
        default=None, max_length=10, description="any of trade, state, error (default all)")
    description: Description = ""


class WebhookOut(BaseModel):
    """A webhook; `secret` only in the answer to its creation."""

    id: int
    url: str
    events: list[str]
    description: str
    created_at: dt.datetime

    @classmethod
    def of(cls, hook: Webhook) -> WebhookOut:
        return cls(id=hook.id, url=hook.url, events=list(hook.events), description=hook.description,
                   created_at=hook.created_at)


class WebhookCreated(WebhookOut):
    """The new webhook with its signing secret, shown this once."""

    secret: str


class WebhookPage(Page[WebhookOut]):
    """A page of the caller's webhooks, oldest first."""


class DeliveryOut(BaseModel):
    """One delivery of one event to one webhook; its `id` is the dedup id the receiver sees."""

    id: int
    event: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    next_attempt_at: dt.datetime | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(id=d.id, event=d.event, status=d.status, attempts=d.attempts, last_status_code=d.last_status_code,
                   last_error=d.last_error, created_at=d.created_at, delivered_at=d.delivered_at,
                   next_attempt_at=d.next_attempt_at)


class DeliveryPage(Page[DeliveryOut]):
    """A page of a webhook's deliveries, newest first."""


class PingOut(BaseModel):
    """The ping is queued: this delivery will carry it."""

    delivery_id: int


def _id(request: web.Request, name: str, what: str) -> int:
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 2**63:
        raise not_found(what)
    return int(raw)


@routes.route("POST", PREFIX, summary="Add a webhook (its secret is shown once)", body=WebhookCreate,
              responses={201: WebhookCreated}, errors=[409], tags=TAGS)
async def create_webhook(request: web.Request) -> web.Response:
    body = await parse_body(request, WebhookCreate)
    hook = await request.app[WEBHOOKS].create(request[PRINCIPAL].user_id, body.url, body.events, body.description)
    assert hook.secret is not None
    out = WebhookCreated(**WebhookOut.of(hook).model_dump(), secret=hook.secret)
    return json_response(out, status=201, headers={**NO_STORE, "Location": f"{PREFIX}/{hook.id}"})


@routes.route("GET", PREFIX, summary="The caller's webhooks", query=PageQuery, responses={200: WebhookPage}, tags=TAGS)
async def list_webhooks(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    rows = await request.app[WEBHOOKS].page(request[PRINCIPAL].user_id, after_id=decode_id_cursor(query.cursor),
                                            limit=query.limit + 1)
    items, cursor = build_page(rows, query.limit, lambda h: (h.id,))
    return json_response(WebhookPage(items=[WebhookOut.of(h) for h in items], next_cursor=cursor), headers=NO_STORE)


@routes.route("GET", PREFIX + "/{id}", summary="One webhook", responses={200: WebhookOut}, tags=TAGS)
async def get_webhook(request: web.Request) -> web.Response:
    hook = await request.app[WEBHOOKS].get(request[PRINCIPAL].user_id, _id(request, "id", "webhook"))
    return json_response(WebhookOut.of(hook), headers=NO_STORE)


@routes.route("DELETE", PREFIX + "/{id}", summary="Delete a webhook and its delivery log", responses={204: None},
              tags=TAGS)
async def delete_webhook(request: web.Request) -> web.Response:
    await request.app[WEBHOOKS].delete(request[PRINCIPAL].user_id, _id(request, "id", "webhook"))
    return web.Response(status=204)


@routes.route("POST", PREFIX + "/{id}/test", summary="Send the webhook a ping event", responses={202: PingOut},
              tags=TAGS)
async def ping_webhook(request: web.Request) -> web.Response:
    delivery = await request.app[WEBHOOKS].ping(request[PRINCIPAL].user_id, _id(request, "id", "webhook"))
    return json_response(PingOut(delivery_id=delivery), status=202)


@routes.route("GET", PREFIX + "/{id}/deliveries", summary="The webhook's delivery log, newest first",
              query=PageQuery, responses={200: DeliveryPage}, tags=TAGS)
async def list_deliveries(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    rows = await request.app[WEBHOOKS].deliveries(request[PRINCIPAL].user_id, _id(request, "id", "webhook"),
                                                  before_id=decode_id_cursor(query.cursor), limit=query.limit + 1)
    items, cursor = build_page(rows, query.limit, lambda d: (d.id,))
    return json_response(DeliveryPage(items=[DeliveryOut.of(d) for d in items], next_cursor=cursor), headers=NO_STORE)


@routes.route("POST", PREFIX + "/{id}/deliveries/{delivery_id}/retry",
              summary="Give a failed delivery one more attempt, now", responses={202: DeliveryOut}, errors=[409],
              tags=TAGS)
async def retry_delivery(request: web.Request) -> web.Response:
    delivery = await request.app[WEBHOOKS].retry(request[PRINCIPAL].user_id, _id(request, "id", "webhook"),
                                                 _id(request, "delivery_id", "delivery"))
    return json_response(DeliveryOut.of(delivery), status=202)
