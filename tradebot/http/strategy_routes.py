"""/api/v1/strategies: the registered strategies and their parameters' JSON Schema (CONTRACT.md, Strategies).

The list is read from the registry (built-ins and the plugins loaded at start), so it is what the
bots, backtests and CLI of this replica accept.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from tradebot.http.json_response import json_response
from tradebot.http.routing import RouteTable
from tradebot.strategies import get_strategy, strategy_names

routes = RouteTable()


class StrategyOut(BaseModel):
    """One strategy: what a bot or backtest names, and how to fill in its ``parameters``."""

    name: str
    title: str
    description: str
    parameters: dict[str, Any] = Field(description="JSON Schema of the strategy's parameters")
    defaults: dict[str, Any] = Field(description="every parameter's default value")


class StrategyList(BaseModel):
    items: list[StrategyOut]


def strategy_out(name: str) -> StrategyOut:
    impl = get_strategy(name)
    schema = impl.parameters_schema()
    defaults = {k: v["default"] for k, v in schema.get("properties", {}).items() if "default" in v}
    return StrategyOut(
        name=impl.name, title=impl.title, description=impl.description, parameters=schema, defaults=defaults
    )


@routes.route(
    "GET",
    "/api/v1/strategies",
    summary="The strategies bots and backtests can use",
    responses={200: StrategyList},
    tags=["strategies"],
)
async def list_strategies(request: web.Request) -> web.Response:
    return json_response(StrategyList(items=[strategy_out(n) for n in strategy_names()]))
