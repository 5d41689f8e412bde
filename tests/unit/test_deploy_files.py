"""No Docker engine runs here, so the container files are checked by reading them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return compose


def test_compose_has_every_service_health_gated() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "simulator", "migrate", "app"}
    for name in ("postgres", "redis", "simulator"):
        assert "healthcheck" in services[name], name
    app = services["app"]
    assert app["deploy"]["replicas"] == 2
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_urls_point_at_its_own_services() -> None:
    compose = _compose()
    services = compose["services"]
    env = services["app"]["environment"]
    assert env == services["migrate"]["environment"]
    db_host = re.match(r"postgresql://(\w+):(\w+)@(\w+):(\d+)/(\w+)", env["DATABASE_URL"])
    assert db_host is not None
    user, password, host, port, dbname = db_host.groups()
    pg_env = services["postgres"]["environment"]
    assert (host, port) == ("postgres", "5432")
    assert (user, password, dbname) == (pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"])
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    sim_port = services["simulator"]["command"][services["simulator"]["command"].index("--port") + 1]
    assert env["TRADEBOT_EXCHANGE_URL"] == f"http://simulator:{sim_port}"
    assert env["TRADEBOT_ENV"] == "production"
    # Production needs real secrets; compose refuses to start without them rather than invent any.
    assert ":?" in env["TRADEBOT_JWT_SECRET"] and ":?" in env["TRADEBOT_FERNET_KEYS"]


def test_app_port_range_covers_every_replica() -> None:
    app = _compose()["services"]["app"]
    (mapping,) = app["ports"]
    host, container = mapping.split(":")
    low, high = (int(p) for p in host.split("-"))
    assert high - low + 1 == app["deploy"]["replicas"]
    assert container == "8080" and "--port" in app["command"] and "8080" in app["command"]


def test_dockerfile_is_slim_non_root_and_health_checked() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]-slim", text, re.M)
    assert re.search(r"^USER tradebot$", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    # Dependencies are installed from pyproject.toml alone, before the source is copied.
    assert text.index("COPY pyproject.toml") < text.index("COPY tradebot ")
    assert "COPY migrations" in text and "TRADEBOT_MIGRATIONS_DIR=/app/migrations" in text
