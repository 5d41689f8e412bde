"""/metrics carries what the soak test watches: the loop's task count, resident memory and open fds."""

from __future__ import annotations

import sys

import pytest

from tests.integration.auth_helpers import Client


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_metrics_expose_asyncio_tasks_memory_and_fds(client: Client) -> None:
    text = await (await client.get("/metrics")).text()
    assert _value(text, "tradebot_asyncio_tasks") >= 1  # at least the task serving this request
    if sys.platform.startswith("linux"):
        assert _value(text, "process_resident_memory_bytes") > 1_000_000
        assert _value(text, "process_open_fds") > 0
    else:  # pragma: no cover - the process collector reads /proc
        pytest.skip("process_* metrics come from /proc")
