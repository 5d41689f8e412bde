"""The backtest job runner: an aiojobs scheduler per replica, the numpy work in a thread pool.

Each job goes pending -> running -> done | failed in the backtests table (the table is the truth;
the scheduler only holds what this replica is working on). The engine runs in a thread: numpy
releases the GIL for most of it, and the event loop keeps serving the API and the bots meanwhile.

Interrupted jobs: a backtest is a pure computation, cheap to ask for again, so an interrupted one is
marked **failed** with a message saying so, never silently re-run (a job that kills its replica,
say by memory, would otherwise kill every replica in turn). Two cases:

- graceful shutdown: the runner fails its own pending and running jobs as it closes;
- a replica that died (SIGKILL, lost host): while a replica runs it touches its jobs' updated_at
  every ``heartbeat_s``; every replica, at start and then every ``stale_after_s / 2``, fails the
  live jobs nobody touched for ``stale_after_s``.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import functools
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import aiojobs

from tradebot.backtests.errors import HistoryUnavailable
from tradebot.backtests.history import HistoryLoader
from tradebot.backtests.models import History, to_ms
from tradebot.backtests.repository import BacktestsRepo
from tradebot.strategies import (
    BacktestSettings,
    CandleDataError,
    Candles,
    ParameterError,
    UnknownStrategyError,
    result_to_dict,
    run_backtest,
    split_parameters,
)
from tradebot.strategies.render import iso_time
from tradebot.strategies.selection import DEFAULT_STRATEGY

log = logging.getLogger(__name__)

INTERRUPTED: Final = "interrupted: the server running this backtest shut down before it finished; submit it again"
ABANDONED: Final = "interrupted: the server running this backtest stopped responding; submit it again"
# Fields of result_to_dict that the backtests row already holds (as requested, not as found).
_ROW_FIELDS: Final = frozenset(
    {
        "status",
        "strategy",
        "timeframe",
        "parameters",
        "initial_balance",
        "fee_rate",
        "slippage_bps",
        "start_time",
        "end_time",
        "candles_count",
    }
)


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    concurrency: int = 2
    queue_limit: int = 8
    heartbeat_s: float = 15.0
    stale_after_s: float = 120.0
    # Trades kept in a result: the API answers with all of them, and a tiny EMA period over two
    # million candles makes hundreds of thousands. trades_count always counts them all.
    max_trades: int = 10_000
    close_wait_s: float = 1.0  # at shutdown, how long running jobs may take to finish
    close_timeout_s: float = 5.0  # then, how long a cancelled job has to record that it failed


class JobFailed(Exception):
    """A job cannot complete; the message is shown to the user as error_message."""


def compute_result(
    candles: Candles,
    settings: BacktestSettings,
    params: Mapping[str, Any],
    timeframe: str,
    max_trades: int,
    strategy: str = DEFAULT_STRATEGY,
) -> dict[str, Any]:
    """The engine run and its JSON rendering: CPU work, called in the thread pool."""
    try:
        candles.validate()
    except CandleDataError as e:
        raise JobFailed(f"the exchange's candles are not usable: {e}") from e
    result = run_backtest(candles, settings, strategy=strategy, params=params, timeframe=timeframe)
    rendered = result_to_dict(result)
    out = {k: v for k, v in rendered.items() if k not in _ROW_FIELDS}
    trades = out.pop("trades")
    out["trades_truncated"] = len(trades) > max_trades
    out["trades"] = trades[:max_trades]
    return out


class BacktestRunner:
    def __init__(self, repo: BacktestsRepo, loader: HistoryLoader, config: RunnerConfig) -> None:
        self._repo = repo
        self._loader = loader
        self._config = config
        self._live: set[int] = set()  # this replica's pending and running jobs
        self._reserved = 0  # places taken by requests whose rows are being written
        self._scheduler: aiojobs.Scheduler | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.outcomes: collections.Counter[str] = collections.Counter()  # "done" / "failed", for /metrics

    @property
    def loader(self) -> HistoryLoader:
        return self._loader

    @property
    def live_count(self) -> int:
        """Jobs this replica holds, queued or running."""
        return len(self._live)

    async def start(self) -> None:
        self._scheduler = aiojobs.Scheduler(
            limit=self._config.concurrency,
            pending_limit=max(1, self._config.queue_limit),
            wait_timeout=self._config.close_wait_s,
            close_timeout=self._config.close_timeout_s,
            exception_handler=self._job_crashed,
        )
        self._executor = ThreadPoolExecutor(max_workers=self._config.concurrency, thread_name_prefix="backtest")
        await self._sweep()
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="backtest-heartbeat")

    def reserve(self) -> bool:
        """Takes a place for one more job (running plus queued), or returns False when the replica
        is full: it refuses instead of piling up. The place is held from before the job's row is
        written, so concurrent requests cannot overfill the queue and ``submit`` never waits."""
        if len(self._live) + self._reserved >= self._config.concurrency + self._config.queue_limit:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        """Gives back a place taken by ``reserve`` that will not be used."""
        self._reserved -= 1

    async def submit(self, backtest_id: int) -> None:
        """Queues a job on a place taken by ``reserve``."""
        assert self._scheduler is not None, "runner not started"
        self._reserved -= 1
        self._live.add(backtest_id)
        job = self._run(backtest_id)
        try:
            await self._scheduler.spawn(job, name=f"backtest-{backtest_id}")
        except BaseException:
            # Closing for shutdown: the row is written, so say why it will never run.
            job.close()
            self._live.discard(backtest_id)
            await asyncio.shield(self._repo.fail(backtest_id, INTERRUPTED))
            raise

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.wait([self._heartbeat])
        if self._scheduler is not None:
            await self._scheduler.wait_and_close()
        # Jobs still queued were dropped by the scheduler without running: fail them here.
        if self._live:
            try:
                await self._repo.fail_many(tuple(self._live), INTERRUPTED)
            except Exception:  # the stale sweep of the next replica catches them anyway
                log.exception("could not mark %d interrupted backtests failed", len(self._live))
            self._live.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- one job ----------------------------------------------------------------------------------

    async def _run(self, backtest_id: int) -> None:
        try:
            row = await self._repo.claim(backtest_id)
            if row is None:
                return  # failed meanwhile (stale sweep): nothing to do
            log.info("backtest started", extra={"backtest_id": backtest_id})
            result = await self._execute(row)
            await self._repo.finish(backtest_id, result)
            self.outcomes["done"] += 1
            log.info("backtest done", extra={"backtest_id": backtest_id, "trades": result["trades_count"]})
        except asyncio.CancelledError:
            try:
                await self._repo.fail(backtest_id, INTERRUPTED)
            except Exception:  # the next replica's stale sweep fails it instead
                log.exception("could not mark interrupted backtest %d failed", backtest_id)
            raise
        except JobFailed as e:
            log.info("backtest failed: %s", e, extra={"backtest_id": backtest_id})
            self.outcomes["failed"] += 1
            await self._repo.fail(backtest_id, str(e))
        except Exception:
            log.exception("backtest crashed", extra={"backtest_id": backtest_id})
            self.outcomes["crashed"] += 1
            await self._repo.fail(backtest_id, f"internal error while running the backtest (id {backtest_id})")
        finally:
            self._live.discard(backtest_id)

    async def _execute(self, row: Mapping[str, Any]) -> dict[str, Any]:
        start_ms, end_ms = to_ms(row["start_time"]), to_ms(row["end_time"])
        try:
            settings, params = split_parameters(
                row["parameters"],
                initial_balance=float(row["initial_balance"]),
                fee_rate=row["fee_rate"],
                slippage_bps=row["slippage_bps"],
                strategy=row["strategy"],
            )
        except ParameterError as e:  # checked when it was accepted; only a changed engine lands here
            raise JobFailed(f"invalid parameters: {e}") from e
        except UnknownStrategyError as e:  # a plugin uninstalled since the job was accepted
            raise JobFailed(str(e)) from e
        try:
            history = await self._loader.load(row["exchange"], row["symbol"], row["timeframe"], start_ms, end_ms)
        except HistoryUnavailable as e:
            raise JobFailed(str(e)[:1000]) from e
        if history.candles is None:
            raise JobFailed(_no_candles_message(row, history))
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            self._executor,
            functools.partial(
                compute_result,
                history.candles,
                settings,
                params,
                row["timeframe"],
                self._config.max_trades,
                row["strategy"],
            ),
        )
        result.update(
            candles_count=history.count,
            expected_candles=history.expected,
            missing_candles=history.missing,
            first_candle_time=iso_time(int(history.candles.ts[0])),
            last_candle_time=iso_time(int(history.candles.ts[-1])),
        )
        return result

    # -- liveness ---------------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        # The sweep scans the live jobs of every replica: twice per stale_after is soon enough.
        sweep_every = max(self._config.heartbeat_s, self._config.stale_after_s / 2)
        next_sweep = loop.time() + sweep_every
        while True:
            await asyncio.sleep(self._config.heartbeat_s)
            try:
                await self._repo.heartbeat(tuple(self._live))
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + sweep_every
                    await self._sweep()
            except Exception:  # the database is away: try again next beat
                log.exception("backtest heartbeat failed")

    async def _sweep(self) -> None:
        stale = await self._repo.fail_stale(
            dt.timedelta(seconds=self._config.stale_after_s), ABANDONED, keep=tuple(self._live)
        )
        if stale:
            log.warning("failed %d backtests abandoned by a replica that stopped: %s", len(stale), stale)

    def _job_crashed(self, scheduler: aiojobs.Scheduler, context: dict[str, Any]) -> None:
        # _run handles every exception itself; reaching here is a bug worth a loud log line.
        log.error(
            "backtest job crashed outside its handler: %s", context.get("message"), exc_info=context.get("exception")
        )


def _no_candles_message(row: Mapping[str, Any], history: History) -> str:
    where = f"{row['symbol']} {row['timeframe']} between {row['start_time']:%Y-%m-%d %H:%M} and {row['end_time']:%Y-%m-%d %H:%M} UTC"
    if history.expected == 0:
        return f"no closed candles yet for {where}: the range lies in the future"
    return f"the exchange has no candles for {where}"
