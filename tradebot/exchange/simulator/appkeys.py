"""Typed keys for what the simulator keeps on its aiohttp application."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tradebot.exchange.simulator.state import Simulator

SIMULATOR = web.AppKey("simulator", Simulator)
BACKGROUND_TASKS = web.AppKey("background_tasks", list[asyncio.Task[None]])
