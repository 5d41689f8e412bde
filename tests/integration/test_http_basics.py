"""The HTTP skeleton: operations endpoints and the problem error model, through a real app."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

PROBLEM = "application/problem+json"


async def test_healthz_and_readyz(client: TestClient) -> None:  # type: ignore[type-arg]
    r = await client.get("/healthz")
    assert r.status == 200
    assert (await r.json())["status"] == "ok"
    r = await client.get("/readyz")
    assert r.status == 200
    assert await r.json() == {"status": "ready", "postgres": "ok", "redis": "ok"}


async def test_every_response_has_a_request_id(client: TestClient) -> None:  # type: ignore[type-arg]
    r = await client.get("/healthz")
    assert len(r.headers["X-Request-ID"]) >= 8
    r = await client.get("/healthz", headers={"X-Request-ID": "abcdef0123456789"})
    assert r.headers["X-Request-ID"] == "abcdef0123456789"
    # A hostile id is replaced, not echoed.
    r = await client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert r.headers["X-Request-ID"] != "<script>"


async def test_unknown_route_is_a_404_problem(client: TestClient) -> None:  # type: ignore[type-arg]
    r = await client.get("/api/v1/nothing-here")
    assert r.status == 404
    assert r.content_type == PROBLEM
    body = await r.json()
    assert body["status"] == 404 and body["title"] == "Not Found" and body["type"] == "about:blank"
    assert body["request_id"] == r.headers["X-Request-ID"]


async def test_wrong_method_is_a_405_problem_with_allow(client: TestClient) -> None:  # type: ignore[type-arg]
    r = await client.post("/healthz")
    assert r.status == 405
    assert r.content_type == PROBLEM
    assert "GET" in r.headers["Allow"]


async def test_metrics_count_requests_by_route_template(client: TestClient) -> None:  # type: ignore[type-arg]
    await client.get("/healthz")
    await client.get("/no/such/route/12345")
    text = await (await client.get("/metrics")).text()
    assert 'tradebot_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "/no/such/route/12345" not in text
    assert "tradebot_http_request_duration_seconds_bucket" in text


async def test_openapi_document_and_docs_page(client: TestClient) -> None:  # type: ignore[type-arg]
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
