"""Drift reports: a bot's own candles of a window replayed through the backtest engine with the
bot's settings, compared fill by fill with the fills it recorded (the comparison itself is pure:
tradebot.strategies.drift).

- Candles come through the backtests' history loader (the PostgreSQL candle cache, then the
  exchange's klines), starting the strategy's warm-up before the window so the replay's indicator
  equals the live one at the window's first candle (the same warm-up rule a starting bot follows).
- The replay uses the bot's strategy, parameters, sizing (order_size_pct, leverage, allow_short,
  stop loss, take profit), and the fee and slippage the backtest would charge it: a paper bot's own
  paper_fee_rate / paper_slippage_bps; a live bot's fee is TRADEBOT_DRIFT_FEE_RATE and its
  slippage 0, so the report's slippage is what the exchange really took.
- A recorded fill is keyed by the candle its order answered (orders.candle_time); an order from
  before that column existed is keyed by the last candle closed when its trade was recorded.

`store_nightly` keeps the last report per bot and sets or clears the bot's `drift_warning` (shown
in its state object); the leader's nightly job calls it (tradebot.runtime.drift_job).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from tradebot.backtests.errors import BacktestError, HistoryUnavailable, InvalidBacktest
from tradebot.backtests.history import HistoryLoader
from tradebot.backtests.models import EXCHANGE, to_ms
from tradebot.bots.errors import BotNotFound
from tradebot.strategies import (
    BacktestSettings,
    CandleDataError,
    Candles,
    ParameterError,
    UnknownStrategyError,
    simulate,
)
from tradebot.strategies.base import get_strategy
from tradebot.strategies.drift import DriftReport, Fill, compare, gap_warning, replay_fills
from tradebot.strategies.render import iso_time
from tradebot.timeframes import candle_open, candles_between, duration_ms, shift

__all__ = ["DriftConfig", "DriftService", "DriftUnavailable", "InvalidDriftWindow"]

# The replay's starting balance when the bot has no paper balance: sizes cancel out of every figure
# (matched fills are taken at the bot's own amounts), so this only sizes missing signals.
REPLAY_BALANCE: Final = 10_000.0


class InvalidDriftWindow(InvalidBacktest):
    """The window asked for cannot be replayed (empty, too long, in the future)."""


class DriftUnavailable(BacktestError):
    """The candles of the window could not be read from the exchange; the message is for the user."""


@dataclass(frozen=True, slots=True)
class DriftConfig:
    fee_rate: float = 0.0004
    warn_gap_bps: float = 50.0
    max_candles: int = 50_000


@dataclass(frozen=True, slots=True)
class Window:
    since_ms: int
    until_ms: int


class DriftService:
    def __init__(self, pool: asyncpg.Pool, loader: HistoryLoader, config: DriftConfig) -> None:
        self._pool = pool
        self._loader = loader
        self._config = config

    @property
    def config(self) -> DriftConfig:
        return self._config

    async def report(self, user_id: int, bot_id: int, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
        """The drift of one of the user's bots over ``[since, until)``. Raises BotNotFound (also for
        someone else's bot), InvalidDriftWindow naming the field, DriftUnavailable."""
        row = await self._pool.fetchrow(
            "SELECT * FROM bot_configs WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL", bot_id, user_id
        )
        if row is None:
            raise BotNotFound()
        window = self._window(row["timeframe"], to_ms(since), to_ms(until))
        report = await self._build(row, window)
        return self.view(row, window, report)

    async def store_nightly(self, bot_id: int, until: dt.datetime, hours: int) -> DriftReport | None:
        """The report over the ``hours`` before ``until`` for any (not deleted) bot, stored as its last
        report, with its state's drift warning set or cleared; None when the bot is gone. The window
        is the operator's (TRADEBOT_DRIFT_WINDOW_HOURS), not a request's: max_candles does not apply."""
        row = await self._pool.fetchrow("SELECT * FROM bot_configs WHERE id = $1 AND deleted_at IS NULL", bot_id)
        if row is None:
            return None
        until_ms = to_ms(until)
        window = Window(until_ms - hours * 3_600_000, until_ms)
        report = await self._build(row, window)
        warning = gap_warning(report.summary, self._config.warn_gap_bps)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO bot_drift_reports (bot_id, since, until, pnl_gap_bps, report) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (bot_id) DO UPDATE SET since = EXCLUDED.since, until = EXCLUDED.until, "
                "pnl_gap_bps = EXCLUDED.pnl_gap_bps, report = EXCLUDED.report, created_at = now()",
                bot_id,
                _time(window.since_ms),
                _time(window.until_ms),
                report.summary.pnl_gap_bps,
                self.view(row, window, report),
            )
            # Not a trading write (the actor never sets this column), so it needs no fencing token.
            await conn.execute("UPDATE bot_state SET drift_warning = $2 WHERE bot_id = $1", bot_id, warning)
        return report

    async def last_report(self, user_id: int, bot_id: int) -> dict[str, Any] | None:
        """The nightly job's last stored report of one of the user's bots (None before the first)."""
        found: dict[str, Any] | None = await self._pool.fetchval(
            "SELECT r.report FROM bot_drift_reports r JOIN bot_configs c ON c.id = r.bot_id "
            "WHERE r.bot_id = $1 AND c.user_id = $2 AND c.deleted_at IS NULL",
            bot_id,
            user_id,
        )
        return found

    def view(self, row: Mapping[str, Any], window: Window, report: DriftReport) -> dict[str, Any]:
        out = report.to_dict()
        for line in out["trades"]:
            line["decided_at"] = iso_time(line["decided_at"])
        out["warning"] = gap_warning(report.summary, self._config.warn_gap_bps)
        out["threshold_bps"] = self._config.warn_gap_bps
        return {
            "bot_id": row["id"],
            "symbol": row["symbol"],
            "timeframe": row["timeframe"],
            "strategy": row["strategy"],
            "since": iso_time(window.since_ms),
            "until": iso_time(window.until_ms),
            **out,
        }

    # -- building a report ------------------------------------------------------------------------

    def _window(self, timeframe: str, since_ms: int, until_ms: int) -> Window:
        if until_ms <= since_ms:
            raise InvalidDriftWindow([("until", "must be after since")])
        if candles_between(timeframe, since_ms, until_ms) > self._config.max_candles:
            raise InvalidDriftWindow(
                [("since", f"the window holds more than {self._config.max_candles:,} {timeframe} candles")]
            )
        return Window(since_ms, until_ms)

    async def _build(self, row: Mapping[str, Any], window: Window) -> DriftReport:
        timeframe: str = row["timeframe"]
        settings, strategy, params = self._replay_settings(row)
        warmup = get_strategy(strategy).warmup_candles(get_strategy(strategy).parse_params(params))
        start = shift(timeframe, candle_open(timeframe, window.since_ms), -warmup)
        try:
            history = await self._loader.load(EXCHANGE, row["symbol"], timeframe, start, window.until_ms)
        except HistoryUnavailable as e:
            raise DriftUnavailable(str(e)) from e
        actual = await self._recorded_fills(row["id"], timeframe, window)
        # CPU work (signals over the warm-up and the window, the engine, the comparison of thousands
        # of fills): off the event loop.
        try:
            return await asyncio.to_thread(_replay_and_compare, history.candles, settings, strategy, params, window,
                                           actual)
        except CandleDataError as e:
            raise DriftUnavailable(f"the exchange's candles are not usable: {e}") from e

    def _replay_settings(self, row: Mapping[str, Any]) -> tuple[BacktestSettings, str, dict[str, Any]]:
        paper = _column(row, "mode") == "paper"
        fee_rate = _column(row, "paper_fee_rate") if paper else None
        slippage = _column(row, "paper_slippage_bps") if paper else None
        balance = _column(row, "paper_balance") if paper else None
        try:
            settings = BacktestSettings(
                initial_balance=float(balance) if balance is not None else REPLAY_BALANCE,
                fee_rate=float(fee_rate) if fee_rate is not None else self._config.fee_rate,
                slippage_bps=float(slippage) if slippage is not None else 0.0,
                order_size_pct=float(row["order_size_pct"]),
                leverage=float(row["leverage"]),
                stop_loss_pct=_float_or_none(row["stop_loss_pct"]),
                take_profit_pct=_float_or_none(row["take_profit_pct"]),
            )
            strategy: str = row["strategy"]
            params = {**(row["parameters"] or {}), "allow_short": bool(row["allow_short"])}
            get_strategy(strategy).parse_params(params)
        except (ParameterError, UnknownStrategyError) as e:  # a plugin uninstalled since the bot was made
            raise DriftUnavailable(f"the bot's strategy cannot be replayed here: {e}") from e
        return settings, strategy, params

    async def _recorded_fills(self, bot_id: int, timeframe: str, window: Window) -> list[Fill]:
        # Two candles of margin each side for fills keyed by their time; the exact cut is below.
        margin = 2 * duration_ms(timeframe, candle_open(timeframe, window.until_ms))
        rows = await self._pool.fetch(
            "SELECT t.id, t.side, t.price, t.amount, t.fee, t.realized_pnl, t.created_at, o.candle_time "
            "FROM trades t JOIN orders o ON o.id = t.order_id "
            "WHERE t.bot_id = $1 AND ((o.candle_time >= $2 AND o.candle_time < $3) OR (o.candle_time IS NULL "
            "AND t.created_at >= $4 AND t.created_at < $5)) ORDER BY t.created_at, t.id",
            bot_id,
            window.since_ms,
            window.until_ms,
            _time(window.since_ms - margin),
            _time(window.until_ms + margin),
        )
        fills = []
        for r in rows:
            decided = r["candle_time"]
            if decided is None:  # the candle that had closed last when the fill was recorded
                decided = shift(timeframe, candle_open(timeframe, to_ms(r["created_at"])), -1)
            if not window.since_ms <= decided < window.until_ms:
                continue
            fee = r["fee"]
            fills.append(Fill(int(decided), r["side"], float(r["price"]), float(r["amount"]),
                              None if fee is None else float(fee), float(r["realized_pnl"]), int(r["id"])))
        fills.sort(key=lambda f: f.decided_at)  # stable: a reversal's legs keep their order
        return fills


def _replay_and_compare(
    candles: Candles | None,
    settings: BacktestSettings,
    strategy: str,
    params: Mapping[str, Any],
    window: Window,
    actual: list[Fill],
) -> DriftReport:
    expected: list[Fill] = []
    if candles is not None:  # no candles (the exchange has none for the window): nothing expected
        impl = get_strategy(strategy)
        candles.validate()
        signals = impl.signals(candles, impl.parse_params(params))
        sim = simulate(candles, signals.target, settings)
        expected = replay_fills(candles, sim, window.since_ms, window.until_ms)
    return compare(expected, actual, settings.fee_rate)


def _column(row: Mapping[str, Any], name: str) -> Any:
    """A bot column that not every schema version has (paper trading's)."""
    try:
        return row[name]
    except KeyError:
        return None


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
