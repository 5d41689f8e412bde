"""Backtests as a service: requests checked and queued, candle history downloaded and cached in
PostgreSQL, the engine (tradebot.strategies) run in a thread pool by a bounded job runner; and the
offline side: the candle CSV format and the ``tradebot backtest`` command.

Nothing is re-exported here: the CSV reader and the command must not pull in ccxt and asyncpg
(the simulator and ``tradebot backtest --csv`` import them), so import from the modules.
"""
