"""Typed keys for what the simulator keeps on its aiohttp application."""

from __future__ import annotations

from aiohttp import web

from tradebot.exchange.simulator.state import Simulator

SIMULATOR = web.AppKey("simulator", Simulator)
