"""The simulator can lack an endpoint the way a real exchange does, and counts what it was asked."""

from __future__ import annotations

from typing import Any

import ccxt.async_support as ccxt
import pytest
from ccxt.async_support.base.exchange import Exchange

from tests.simulator_helpers import SimControl

pytest_plugins = ("tests.simulator_fixtures",)

SYMBOL = "BTC/USDT:USDT"
USER_TRADES = "GET /fapi/v1/userTrades"


async def test_a_missing_endpoint_answers_like_a_route_that_does_not_exist(
    sim: SimControl, private_exchange: Exchange
) -> None:
    await private_exchange.load_markets()
    assert await private_exchange.fetch_my_trades(SYMBOL) == []
    await sim.faults(missing_endpoints=["/fapi/v1/userTrades"])
    with pytest.raises(ccxt.ExchangeNotAvailable) as info:
        await private_exchange.fetch_my_trades(SYMBOL)
    assert " 404 " in str(info.value) and '"code"' not in str(info.value)
    # Other endpoints still answer; each request is counted once, answered or not.
    await private_exchange.fetch_balance()
    counts = await sim.requests()
    assert counts[USER_TRADES] == 2 and counts["GET /fapi/v3/account"] >= 1
    assert not any(k.startswith("GET /_sim/") or k.startswith("POST /_sim/") for k in counts)

    await sim.faults(missing_endpoints=[])
    assert await private_exchange.fetch_my_trades(SYMBOL) == []
    assert (await sim.requests())[USER_TRADES] == 3


@pytest.mark.parametrize(
    "body", [{"missing_endpoints": "/fapi/v1/userTrades"}, {"missing_endpoints": ["fapi"]},
             {"missing_endpoints": ["/_sim/orders"]}, {"missing_endpoints": [1]}]
)
async def test_a_bad_missing_endpoints_field_is_a_400_that_changes_nothing(
    sim: SimControl, private_exchange: Exchange, body: dict[str, Any]
) -> None:
    status, payload = await sim.post_raw("/_sim/faults", {**body, "latency_ms": 5000})
    assert status == 400 and "missing_endpoints" in payload["error"]
    await private_exchange.load_markets()
    assert await private_exchange.fetch_my_trades(SYMBOL) == []  # no latency applied either
