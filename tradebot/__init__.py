"""tradebot: EMA-strategy trading bots on exchange websockets, one asyncio process per replica."""

__version__ = "0.1.0"
