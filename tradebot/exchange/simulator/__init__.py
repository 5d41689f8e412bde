"""A Binance USD-M futures-compatible exchange simulator (REST + websockets + a `/_sim/` control API).

Pieces, each in its own module: `accounts` (state dataclasses), `engine` (matching, pure), `candles`
(histories and the random walk, pure), `replay` (a CSV as pushed candles), `wire` (Binance JSON
shapes), `auth` (signatures), `rest`, `streams`, `control` (the aiohttp routes), `state` (ties them
together) and `app` (builds and runs the server).
"""

from tradebot.exchange.simulator.app import RunningSimulator, build_app, running_simulator
from tradebot.exchange.simulator.config import AccountSpec, ConfigError, SimulatorConfig
from tradebot.exchange.simulator.state import Simulator

__all__ = [
    "AccountSpec",
    "ConfigError",
    "RunningSimulator",
    "Simulator",
    "SimulatorConfig",
    "build_app",
    "running_simulator",
]
