"""The HTTP skeleton: operations endpoints and the problem error model, through a real app."""

from __future__ import annotations

import io

from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import BaseModel, ConfigDict, Field
from pytest_aiohttp import AiohttpClient

from tradebot.config import Secrets, Settings
from tradebot.http.app import create_app
from tradebot.http.appkeys import OPERATIONS
from tradebot.http.request_body import parse_body
from tradebot.http.routing import RouteTable

PROBLEM = "application/problem+json"


async def test_healthz_and_readyz(client: TestClient[web.Request, web.Application]) -> None:
    r = await client.get("/healthz")
    assert r.status == 200
    assert (await r.json())["status"] == "ok"
    r = await client.get("/readyz")
    assert r.status == 200
    assert await r.json() == {"status": "ready", "postgres": "ok", "redis": "ok"}


async def test_every_response_has_a_request_id(client: TestClient[web.Request, web.Application]) -> None:
    r = await client.get("/healthz")
    assert len(r.headers["X-Request-ID"]) >= 8
    r = await client.get("/healthz", headers={"X-Request-ID": "abcdef0123456789"})
    assert r.headers["X-Request-ID"] == "abcdef0123456789"
    # A hostile id is replaced, not echoed.
    r = await client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert r.headers["X-Request-ID"] != "<script>"


async def test_unknown_route_is_a_404_problem(client: TestClient[web.Request, web.Application]) -> None:
    r = await client.get("/api/v1/nothing-here")
    assert r.status == 404
    assert r.content_type == PROBLEM
    body = await r.json()
    assert body["status"] == 404 and body["title"] == "Not Found" and body["type"] == "about:blank"
    assert body["request_id"] == r.headers["X-Request-ID"]


async def test_wrong_method_is_a_405_problem_with_allow(client: TestClient[web.Request, web.Application]) -> None:
    r = await client.post("/healthz")
    assert r.status == 405
    assert r.content_type == PROBLEM
    assert "GET" in r.headers["Allow"]


async def test_metrics_count_requests_by_route_template(client: TestClient[web.Request, web.Application]) -> None:
    await client.get("/healthz")
    await client.get("/no/such/route/12345")
    text = await (await client.get("/metrics")).text()
    assert 'tradebot_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "/no/such/route/12345" not in text
    assert "tradebot_http_request_duration_seconds_bucket" in text


async def test_openapi_document_and_docs_page(client: TestClient[web.Request, web.Application]) -> None:
    r = await client.get("/api/openapi.json")
    assert r.status == 200
    doc = await r.json()
    assert doc["openapi"].startswith("3.1")
    for path in ("/healthz", "/readyz", "/metrics", "/api/openapi.json"):
        assert path in doc["paths"]
    assert "Problem" in doc["components"]["schemas"]
    page = await client.get("/api/docs")
    html = await page.text()
    assert page.status == 200 and "swagger-ui" in html
    # Every asset the page needs is served by the app itself (the docs work offline).
    for asset in ("/api/docs/assets/swagger-ui.css", "/api/docs/assets/swagger-ui-bundle.js", "/static/docs-init.js"):
        assert (await client.get(asset)).status == 200, asset


class _Echo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=10)
    size: int = Field(ge=1)


async def _echo_client(aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, database_url: str,
                       redis_url: str) -> TestClient[web.Request, web.Application]:
    app = create_app(settings, test_secrets, database_url=database_url, redis_url=redis_url, replica_id="t")
    table = RouteTable()

    @table.route("POST", "/echo", summary="echo", body=_Echo, responses={200: _Echo}, public=True)
    async def echo(request: web.Request) -> web.Response:
        body = await parse_body(request, _Echo)
        return web.json_response(body.model_dump())

    app[OPERATIONS].update(table.install(app))
    return await aiohttp_client(app)


async def test_body_errors_are_problems(
    aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, database_url: str, redis_url: str
) -> None:
    c = await _echo_client(aiohttp_client, settings, test_secrets, database_url, redis_url)
    ok = await c.post("/echo", json={"name": "a", "size": 1})
    assert ok.status == 200

    r = await c.post("/echo", data=b'{"name": "a",', headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.content_type == PROBLEM
    assert "malformed JSON" in (await r.json())["detail"]

    r = await c.post("/echo", data=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert r.status == 422 and r.content_type == PROBLEM

    r = await c.post("/echo", json={"name": "", "size": 0, "id": 5})
    assert r.status == 422
    body = await r.json()
    assert {e["field"] for e in body["errors"]} == {"name", "size", "id"}
    assert next(e for e in body["errors"] if e["field"] == "id")["message"] == "unknown field"

    big = b'{"name": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    r = await c.post("/echo", data=io.BytesIO(big), headers={"Content-Type": "application/json"})
    assert r.status == 413 and r.content_type == PROBLEM

    r = await c.post("/echo", data=b"name=a", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 415 and r.content_type == PROBLEM


async def test_internal_errors_hide_details(
    aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, database_url: str, redis_url: str
) -> None:
    app = create_app(settings, test_secrets, database_url=database_url, redis_url=redis_url, replica_id="t")
    table = RouteTable()

    @table.route("GET", "/boom", summary="boom", responses={200: None}, public=True)
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app[OPERATIONS].update(table.install(app))
    c = await aiohttp_client(app)
    r = await c.get("/boom")
    assert r.status == 500 and r.content_type == PROBLEM
    body = await r.json()
    assert "secret internals" not in body["detail"] and "Traceback" not in body["detail"]
    assert body["request_id"] == r.headers["X-Request-ID"] and body["request_id"] in body["detail"]
