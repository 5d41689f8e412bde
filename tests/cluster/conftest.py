"""Cluster tests: real replica processes sharing one simulator process, PostgreSQL and a Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster, simulator_process
from tests.processes import drop_redis_keys


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
        drop_redis_keys(redis_url, c.prefix)
