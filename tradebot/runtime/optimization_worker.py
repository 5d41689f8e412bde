"""Every replica's optimisation workers: a bounded pool that takes chunks of trials from PostgreSQL.

Each of the ``workers`` loops claims one chunk (``FOR UPDATE SKIP LOCKED``, a lease and a fencing
token, see tradebot.optimizations.repository), loads the optimisation's candles (the backtests'
history loader and candle cache; the last few ranges are kept in memory), evaluates the chunk's
trials in a process pool of the same size, renewing the lease meanwhile, and records them. A
process, not a thread: a sweep is many numpy calls with Python between them, and a thread holding
the GIL for those stretches delayed the bots' decisions in the same process (bench_runtime
--during-sweep: median 22 -> 36 ms, p99 46 -> 108 ms); the candles travel to the child with each
chunk (pickled arrays, a few ms per million bars against a chunk's hundreds).  a finish whose lease was lost is dropped, since another replica took the chunk
over. A replica killed mid-chunk stops renewing: the lease lapses and another replica's worker
claims the chunk again. For tpe, the worker that finishes a round's last chunk asks for the next
round (in the process pool too); a round nobody asked for because that worker died is picked up by
any idle worker once the run has been quiet for a lease.

A chunk claimed more than ``max_attempts`` times (it crashed or killed its replicas each time)
fails its optimisation instead of going round the cluster for ever.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import functools
import logging
import multiprocessing
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tradebot.backtests.errors import HistoryUnavailable
from tradebot.backtests.history import HistoryLoader
from tradebot.backtests.models import to_ms
from tradebot.optimizations.evaluate import TrialResult, evaluate_chunk, split_index
from tradebot.optimizations.models import TPE_ROUND, TrialRules, chunked, parse_space
from tradebot.optimizations.repository import Chunk, OptimizationsRepo
from tradebot.optimizations.search import tpe_round
from tradebot.runtime.supervised import BackgroundTasks
from tradebot.strategies import CandleDataError, Candles
from tradebot.strategies.plugins import load_plugins

log = logging.getLogger(__name__)

CANDLE_CACHE_SIZE: Final = 2  # optimisations whose candles a replica keeps in memory
CHILD_NICENESS: Final = 19  # added to a pool process's nice value (batch work yields to the bots)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    workers: int = 1
    lease_s: float = 15.0
    poll_s: float = 1.0
    max_attempts: int = 3


def child_start() -> None:
    """A pool process's start: a lower CPU priority, so that on a busy machine the scheduler runs
    the replica's event loop (the bots' decisions) first and sweeps with what is left; then the
    strategies a replica knows, plugins included."""
    os.nice(CHILD_NICENESS)
    load_plugins()


class ChunkFailed(Exception):
    """The optimisation cannot go on; the message is shown as its error_message."""


@dataclass(frozen=True, slots=True)
class _Data:
    candles: Candles
    split: int


class OptimizationWorkers:
    def __init__(self, repo: OptimizationsRepo, loader: HistoryLoader, replica_id: str, config: WorkerConfig) -> None:
        self._repo = repo
        self._loader = loader
        self._replica_id = replica_id
        self._config = config
        self._lease = dt.timedelta(seconds=config.lease_s)
        self._tasks = BackgroundTasks("optimization-workers")
        self._executor: ProcessPoolExecutor | None = None
        self._wake = asyncio.Event()
        self._data: collections.OrderedDict[int, _Data] = collections.OrderedDict()
        self._data_lock = asyncio.Lock()
        self.busy = 0  # workers evaluating a chunk now (for /metrics and tests)
        self.outcomes: collections.Counter[str] = collections.Counter()

    def wake(self) -> None:
        """New chunks are waiting: idle workers look at once instead of at their next poll."""
        self._wake.set()

    async def start(self) -> None:
        if self._config.workers <= 0:
            return
        # spawn: a forked child of a process running threads and an event loop inherits their locks
        # mid-use; a spawned one imports tradebot afresh, plugins included, like a replica starting.
        self._executor = ProcessPoolExecutor(max_workers=self._config.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=child_start)  # fmt: skip
        for i in range(self._config.workers):
            self._tasks.spawn(f"optimization-worker-{i}", self._loop())

    async def close(self) -> None:
        await self._tasks.close()
        if self._executor is not None:
            # A child still computing would hold the exit up until its chunk is done, for a result
            # nobody records (the lease lapses and another replica re-runs the chunk): it is
            # ended. (Python 3.14 names this terminate_workers(); 3.11 has only the mapping.)
            children = list(getattr(self._executor, "_processes", {}).values())
            self._executor.shutdown(wait=False, cancel_futures=True)
            for child in children:
                if child.is_alive():
                    child.terminate()

    # -- the loop ---------------------------------------------------------------------------------

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_stall_check = loop.time()
        while True:
            try:
                chunk = await self._repo.claim(self._replica_id, self._lease)
            except Exception:  # the database is away: try again at the next poll
                log.exception("could not claim an optimization chunk")
                chunk = None
            if chunk is not None:
                await self._run(chunk)
                continue
            if loop.time() >= next_stall_check:
                next_stall_check = loop.time() + self._config.lease_s
                await self.resume_stalled()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._config.poll_s)
            except TimeoutError:
                pass

    async def _run(self, chunk: Chunk) -> None:
        self.busy += 1
        try:
            if chunk.attempts > self._config.max_attempts:
                raise ChunkFailed(f"trials {chunk.first_trial}-{chunk.first_trial + len(chunk.trials) - 1} were "
                                  f"started {chunk.attempts - 1} times without finishing")  # fmt: skip
            row = await self._repo.optimization(chunk.optimization_id)
            if row is None:
                return
            data = await self._data_of(row)
            results = await self._evaluate(chunk, row, data)
            if results is None:
                self.outcomes["lease_lost"] += 1
                return
            outcome = await self._repo.complete(chunk, results, self._replica_id)
            if not outcome.accepted:
                self.outcomes["lease_lost"] += 1
                return
            self.outcomes["chunks"] += 1
            if outcome.needs_round:
                await self._next_round(chunk.optimization_id)
        except ChunkFailed as e:
            log.info("optimization failed: %s", e, extra={"optimization_id": chunk.optimization_id})
            self.outcomes["failed"] += 1
            await self._repo.fail(chunk.optimization_id, str(e))
        except Exception:
            # The lease lapses and the chunk is tried again (at most max_attempts times in all).
            log.exception("optimization chunk crashed", extra={"optimization_id": chunk.optimization_id,
                                                                "chunk_id": chunk.id})  # fmt: skip
            self.outcomes["crashed"] += 1
        finally:
            self.busy -= 1

    async def _evaluate(self, chunk: Chunk, row: Mapping[str, Any], data: _Data) -> list[TrialResult] | None:
        """The chunk's results, or None when its lease was lost while computing."""
        loop = asyncio.get_running_loop()
        job = functools.partial(
            evaluate_chunk, data.candles, data.split, strategy=row["strategy"], timeframe=row["timeframe"],
            objective=row["objective"], initial_balance=float(row["initial_balance"]), fee_rate=row["fee_rate"],
            slippage_bps=row["slippage_bps"], trials=chunk.trials,
        )  # fmt: skip
        future = loop.run_in_executor(self._executor, job)
        renew_every = self._config.lease_s / 3
        while True:
            done, _ = await asyncio.wait([future], timeout=renew_every)
            if done:
                return future.result()
            if not await self._repo.renew(chunk, self._lease):
                # Cancelled, or this replica stalled past its lease and another took the chunk.
                future.cancel()
                return None

    async def _data_of(self, row: Mapping[str, Any]) -> _Data:
        opt_id = int(row["id"])
        async with self._data_lock:  # one download per range, however many workers want it
            hit = self._data.get(opt_id)
            if hit is not None:
                self._data.move_to_end(opt_id)
                return hit
            try:
                history = await self._loader.load(row["exchange"], row["symbol"], row["timeframe"],
                                                   to_ms(row["start_time"]), to_ms(row["end_time"]))  # fmt: skip
            except HistoryUnavailable as e:
                raise ChunkFailed(str(e)[:1000]) from e
            candles = history.candles
            if candles is None:
                raise ChunkFailed(f"the exchange has no candles for {row['symbol']} {row['timeframe']} in that range")
            try:
                candles.validate()
            except CandleDataError as e:
                raise ChunkFailed(f"the exchange's candles are not usable: {e}") from e
            n = len(candles)
            split = split_index(n, float(row["test_fraction"]))
            if split < 2 or (float(row["test_fraction"]) > 0 and n - split < 2):
                raise ChunkFailed(f"{n} candles are too few to split into train and test windows")
            split_time = None if split == n else dt.datetime.fromtimestamp(int(candles.ts[split]) / 1000, tz=dt.UTC)
            await self._repo.record_data(opt_id, n, split_time)
            data = _Data(candles, split)
            self._data[opt_id] = data
            while len(self._data) > CANDLE_CACHE_SIZE:
                self._data.popitem(last=False)
            return data

    # -- tpe rounds -------------------------------------------------------------------------------

    async def _next_round(self, opt_id: int) -> None:
        row = await self._repo.optimization(opt_id)
        if row is None or row["method"] != "tpe" or row["status"] not in ("pending", "running"):
            return
        finished = await self._repo.finished_trials(opt_id)
        done = len(finished)
        count = min(TPE_ROUND, int(row["trials_total"]) - done)
        if count <= 0:
            return
        dims, errors = parse_space(row["strategy"], row["space"], row["fixed"], row["method"])
        if errors:  # accepted once; only a changed strategy lands here
            raise ChunkFailed("the search space is no longer valid: " + "; ".join(f"{f}: {m}" for f, m in errors))
        rules = TrialRules(row["strategy"], float(row["initial_balance"]), row["fee_rate"], row["slippage_bps"])
        loop = asyncio.get_running_loop()
        trials = await loop.run_in_executor(
            self._executor, tpe_round, dims, dict(row["fixed"]), rules.valid, finished, count, int(row["seed"])
        )
        if await self._repo.add_round(opt_id, done, chunked(trials, first=done), len(trials)):
            self._wake.set()

    async def resume_stalled(self) -> None:
        """Adds the next round of every tpe run whose round was never added (its worker died
        between finishing the last chunk and asking for more). Every idle worker calls it once a
        lease."""
        try:
            stalled = await self._repo.stalled_rounds(self._lease)
            for opt_id in stalled:
                log.warning("resuming a tpe run whose next round was never added", extra={"optimization_id": opt_id})
                try:
                    await self._next_round(opt_id)
                except ChunkFailed as e:
                    await self._repo.fail(opt_id, str(e))
        except Exception:
            log.exception("could not check for stalled optimizations")


class OptimizationWorkersCollector(Collector):
    """The workers' figures on the app's Prometheus registry, read when /metrics is scraped."""

    def __init__(self, workers: OptimizationWorkers) -> None:
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("tradebot_optimizer_busy_workers", "Optimisation workers evaluating a chunk now",
                                value=self._workers.busy)  # fmt: skip
        chunks = CounterMetricFamily("tradebot_optimizer_chunks", "Chunks this replica's workers ended, by outcome",
                                     labels=["outcome"])  # fmt: skip
        for outcome in ("chunks", "lease_lost", "failed", "crashed"):
            chunks.add_metric(["done" if outcome == "chunks" else outcome], self._workers.outcomes[outcome])
        yield chunks
