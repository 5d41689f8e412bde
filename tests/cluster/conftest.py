"""Cluster tests: real replica processes sharing one simulator process, PostgreSQL and a Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster, simulator_process


@pytest.fixture
def exchange_url(tmp_path: Path) -> Iterator[str]:
    with simulator_process(tmp_path) as url:
        yield url


@pytest.fixture
def cluster(clean_db: str, redis_url: str, exchange_url: str, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(clean_db, redis_url, exchange_url, tmp_path)
    try:
        yield c
    finally:
        c.close()
        _drop_keys(redis_url, c.prefix)


def _drop_keys(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
