"""The market-data hub against the in-process simulator through ccxt's real binanceusdm websockets."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Sequence

import pytest

from tests.candle_queue import BoundedCandleQueue
from tests.simulator_helpers import MINUTE_MS, SimControl, flat_candles, minute_floor
from tests.timing import eventually
from tradebot.backoff import Backoff
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.runtime.candles import Candle
from tradebot.runtime.market_data_hub import MarketDataHub, Subscription

pytest_plugins = ("tests.simulator_fixtures",)

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
IDS = {BTC: "BTCUSDT", ETH: "ETHUSDT", SOL: "SOLUSDT"}
# A fixed, visible outage: every reconnect waits exactly this long (rng pinned to 1.0), long enough
# for a test to push candles while no websocket is subscribed.
OUTAGE_S = 0.6


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(port=0, mode="manual", history_candles=50, seed=7, symbols=tuple(IDS.values()))


@pytest.fixture
async def hub(simulator: RunningSimulator) -> AsyncIterator[MarketDataHub]:
    h = MarketDataHub(base_url=simulator.base_url, backoff=Backoff(base=OUTAGE_S, cap=OUTAGE_S), rng=lambda: 1.0)
    try:
        yield h
    finally:
        await h.close()
    assert all(t.done() for t in h.tasks())


def past_start(minutes_back: int = 500) -> int:
    """A minute boundary well in the past: pushed candles are provably closed by the exchange's clock."""
    return minute_floor(int(time.time() * 1000)) - minutes_back * MINUTE_MS


class Pusher:
    """Pushes consecutive closed 1m candles per symbol and remembers what each stream should deliver."""

    def __init__(self, sim: SimControl, start: int) -> None:
        self.sim = sim
        self.start = start
        self.next_index: dict[str, int] = {}
        self.pushed: dict[str, list[int]] = {}

    async def push(self, symbol: str, count: int) -> list[int]:
        i = self.next_index.get(symbol, 0)
        closes = [100.0 + i + j for j in range(count)]
        candles = flat_candles(self.start + i * MINUTE_MS, closes)
        await self.sim.push_klines(IDS[symbol], "1m", candles)
        self.next_index[symbol] = i + count
        times = [int(c[0]) for c in candles]
        self.pushed.setdefault(symbol, []).extend(times)
        return times


async def all_live(subs: Sequence[Subscription], within: float = 10.0) -> None:
    async def check() -> bool:
        return all(s.live.is_set() for s in subs)

    await eventually(check, timeout=within)


def times(candles: Sequence[Candle]) -> list[int]:
    return [c.open_time for c in candles]


async def wait_for_drop(hub: MarketDataHub, expected_reconnects: int) -> None:
    async def dropped() -> bool:
        return hub.reconnects >= expected_reconnects

    await eventually(dropped, timeout=5.0)


async def test_200_subscribers_get_every_closed_candle_once_in_order_across_two_drops(
    hub: MarketDataHub, sim: SimControl, simulator: RunningSimulator
) -> None:
    symbols = (BTC, ETH, SOL)
    queues: list[tuple[str, BoundedCandleQueue]] = []
    subs: list[Subscription] = []
    for i in range(200):
        symbol = symbols[i % 3]
        q = BoundedCandleQueue(maxsize=1000)
        queues.append((symbol, q))
        subs.append(hub.subscribe(symbol, "1m", q))
    await all_live(subs)
    # One exchange subscription per stream, whatever the number of subscribers: one task per stream
    # and, at the simulator, exactly one connection listening to each kline stream.
    assert len(hub.tasks()) == 3
    for symbol in symbols:
        stream = f"{IDS[symbol].lower()}@kline_1m"
        assert sum(stream in c.streams for c in simulator.state.hub._connections) == 1

    pusher = Pusher(sim, past_start())
    received: dict[int, list[Candle]] = {i: [] for i in range(len(queues))}

    async def everyone_has_everything() -> bool:
        for i, (symbol, q) in enumerate(queues):
            received[i].extend(q.drain())
            if times(received[i]) != pusher.pushed.get(symbol, []):
                return False
        return True

    for symbol in symbols:
        await pusher.push(symbol, 5)
    await eventually(everyone_has_everything, timeout=10)

    for drop in (1, 2):
        backfilled_before = hub.backfilled
        await sim.faults(drop_websockets=True)
        # Every stream saw its connection close and is waiting OUTAGE_S before reconnecting.
        await wait_for_drop(hub, expected_reconnects=3 * drop)
        during = 0
        for symbol in symbols:
            during += len(await pusher.push(symbol, 4))
        await eventually(everyone_has_everything, timeout=10)
        assert hub.backfilled - backfilled_before == during, "the outage's candles came over REST"
        for symbol in symbols:  # and the live stream works again afterwards
            await pusher.push(symbol, 3)
        await eventually(everyone_has_everything, timeout=10)

    for i, (symbol, q) in enumerate(queues):
        assert times(received[i]) == pusher.pushed[symbol], f"subscriber {i} ({symbol})"
        assert all(c.closed and c.symbol == symbol and c.timeframe == "1m" for c in received[i])
        assert q.dropped == 0
    assert all(s.reconnects == 2 for s in hub.streams())
    assert hub.candles == sum(len(v) for v in pusher.pushed.values())
    assert hub.delivered == sum(len(r) for r in received.values())
    assert hub.dropped == 0  # no candle arrived twice at the hub, none needed de-duplicating

    # The candles carry the pushed prices, not just the times.
    first = received[0][0]
    assert (first.open, first.close, first.volume) == (100.0, 100.0, 1.0)


async def test_streams_starting_together_share_subscribe_messages(hub: MarketDataHub, sim: SimControl) -> None:
    subs = [hub.subscribe(s, tf, BoundedCandleQueue()) for s in (BTC, ETH, SOL) for tf in ("1m", "3m", "5m", "15m")]
    await all_live(subs)
    assert len(hub.tasks()) == 12
    assert hub.subscribe_messages < 12  # batched; ccxt alone would send one per stream, 100 ms apart


async def test_stalled_and_broken_subscribers_do_not_delay_the_others(hub: MarketDataHub, sim: SimControl) -> None:
    class Broken:
        def offer(self, candle: Candle) -> None:
            raise RuntimeError("a bug in a subscriber")

    stalled = BoundedCandleQueue(maxsize=2)  # never drained
    healthy = [BoundedCandleQueue(maxsize=100) for _ in range(5)]
    subs = [hub.subscribe(BTC, "1m", stalled), hub.subscribe(BTC, "1m", Broken())]
    subs += [hub.subscribe(BTC, "1m", q) for q in healthy]
    await all_live(subs)

    pusher = Pusher(sim, past_start())
    pushed = await pusher.push(BTC, 20)

    async def healthy_done() -> bool:
        return all(len(q) == 20 for q in healthy)

    await eventually(healthy_done, timeout=5)
    assert all(times(q.drain()) == pushed for q in healthy)
    # The stalled one kept the newest and counted what it lost; the broken one cost nobody anything.
    assert times(stalled.drain()) == pushed[-2:] and stalled.dropped == 18
    assert hub.sink_errors == 20


async def test_unsubscribing_the_last_subscriber_stops_the_stream(
    hub: MarketDataHub, sim: SimControl, simulator: RunningSimulator
) -> None:
    q1, q2 = BoundedCandleQueue(), BoundedCandleQueue()
    s1, s2 = hub.subscribe(ETH, "1m", q1), hub.subscribe(ETH, "1m", q2)
    await all_live([s1, s2])
    assert simulator.state.hub.has_subscribers("ethusdt@kline_1m")
    task = hub.tasks()[0]

    hub.unsubscribe(s1)
    pusher = Pusher(sim, past_start())
    pushed = await pusher.push(ETH, 2)

    async def q2_has_them() -> bool:
        return len(q2) == 2

    await eventually(q2_has_them)
    assert len(q1) == 0 and times(q2.drain()) == pushed and not task.done()

    hub.unsubscribe(s2)
    hub.unsubscribe(s2)  # idempotent
    await asyncio.wait_for(asyncio.wait([task]), 5)
    assert task.done() and not task.cancelled() and task.exception() is None
    assert hub.streams() == [] and hub.tasks() == []

    async def unsubscribed_at_exchange() -> bool:
        return not simulator.state.hub.has_subscribers("ethusdt@kline_1m")

    await eventually(unsubscribed_at_exchange)

    # A new subscriber starts a new stream that works.
    q3 = BoundedCandleQueue()
    s3 = hub.subscribe(ETH, "1m", q3)
    await all_live([s3])
    pushed = await pusher.push(ETH, 1)

    async def q3_has_it() -> bool:
        return len(q3) == 1

    await eventually(q3_has_it)
    assert times(q3.drain()) == pushed


async def test_backfill_after_reconnect_delivers_the_missed_candles_before_live_ones(
    hub: MarketDataHub, sim: SimControl
) -> None:
    q = BoundedCandleQueue()
    await all_live([hub.subscribe(SOL, "1m", q)])
    pusher = Pusher(sim, past_start())
    await pusher.push(SOL, 2)

    await sim.faults(drop_websockets=True)
    await wait_for_drop(hub, 1)
    missed = await pusher.push(SOL, 5)
    got: list[Candle] = []

    async def caught_up() -> bool:
        got.extend(q.drain())
        return len(got) == 7

    await eventually(caught_up, timeout=5)
    assert times(got) == pusher.pushed[SOL]
    assert times(got[2:]) == missed and hub.backfilled == 5
    live = await pusher.push(SOL, 1)

    async def live_arrived() -> bool:
        got.extend(q.drain())
        return len(got) == 8

    await eventually(live_arrived)
    assert times(got[-1:]) == live


async def test_backfill_after_a_drop_before_any_live_candle(hub: MarketDataHub, sim: SimControl) -> None:
    # The history is empty when the stream starts (manual mode); nothing was delivered when the drop
    # came; what was pushed during the outage is still owed.
    q = BoundedCandleQueue()
    await all_live([hub.subscribe(BTC, "1m", q)])
    await sim.faults(drop_websockets=True)
    await wait_for_drop(hub, 1)
    pusher = Pusher(sim, past_start())
    pushed = await pusher.push(BTC, 3)

    async def arrived() -> bool:
        return len(q) == 3

    await eventually(arrived, timeout=5)
    assert times(q.drain()) == pushed


async def test_a_future_dated_candle_from_an_outage_arrives_with_the_next_live_one(
    hub: MarketDataHub, sim: SimControl
) -> None:
    # Manual mode may date candles in the future. REST has no closed flag, so after the reconnect the
    # newest row cannot be told from a forming candle and is held back; the next live (final) candle
    # proves it closed, and the gap fill delivers it first.
    q = BoundedCandleQueue()
    await all_live([hub.subscribe(BTC, "1m", q)])
    pusher = Pusher(sim, minute_floor(int(time.time() * 1000)) + 30 * MINUTE_MS)
    before = await pusher.push(BTC, 2)

    async def delivered_live() -> bool:
        return len(q) == 2

    await eventually(delivered_live)
    await sim.faults(drop_websockets=True)
    await wait_for_drop(hub, 1)
    during = await pusher.push(BTC, 1)

    async def live_again() -> bool:
        return [s.state for s in hub.streams()] == ["live"]

    await eventually(live_again)
    assert times(q.drain()) == before and hub.backfilled == 0
    after = await pusher.push(BTC, 1)

    async def arrived() -> bool:
        return len(q) == 2

    await eventually(arrived)
    assert times(q.drain()) == during + after and hub.backfilled == 1


async def test_subscriber_with_after_catches_up_from_history_then_goes_live(
    hub: MarketDataHub, sim: SimControl
) -> None:
    pusher = Pusher(sim, past_start())
    early = await pusher.push(BTC, 10)
    first = BoundedCandleQueue()
    await all_live([hub.subscribe(BTC, "1m", first)])
    more = await pusher.push(BTC, 3)

    async def first_has_them() -> bool:
        return len(first) == 3

    await eventually(first_has_them)
    # A bot that warmed up on history up to early[3] joins a running stream.
    late = BoundedCandleQueue()
    sub = hub.subscribe(BTC, "1m", late, after=early[3])
    await all_live([sub])
    live = await pusher.push(BTC, 2)
    expected = early[4:] + more + live

    async def late_has_all() -> bool:
        return len(late) == len(expected)

    await eventually(late_has_all)
    assert times(late.drain()) == expected
    assert times(first.drain()) == more + live


async def test_subscriber_with_after_zero_gets_the_whole_short_history(hub: MarketDataHub, sim: SimControl) -> None:
    # A bot with no warm-up candles subscribes with after=0: everything the exchange has, then live.
    pusher = Pusher(sim, past_start())
    early = await pusher.push(ETH, 5)
    q = BoundedCandleQueue()
    await all_live([hub.subscribe(ETH, "1m", q, after=0)])
    live = await pusher.push(ETH, 2)

    async def has_all() -> bool:
        return len(q) == 7

    await eventually(has_all)
    assert times(q.drain()) == early + live


async def test_fetch_closed_history_pages_and_excludes_nothing_closed(hub: MarketDataHub, sim: SimControl) -> None:
    pusher = Pusher(sim, past_start(3000))
    pushed = await pusher.push(ETH, 2500)

    page = await hub.fetch_closed_history(ETH, "1m", pushed[5], 1500)  # more than one REST page
    assert times(page) == pushed[5:1505]
    assert times(await hub.fetch_closed_history(ETH, "1m", pushed[0], 1)) == pushed[:1]
    latest = await hub.fetch_closed_history(ETH, "1m", None, 4)
    assert times(latest) == pushed[-4:]
    assert times(await hub.fetch_closed_history(ETH, "1m", None, 2000)) == pushed[-2000:]
    assert all(c.closed for c in latest)
    assert await hub.fetch_closed_history(ETH, "1m", pushed[-1] + MINUTE_MS, 10) == []


@pytest.mark.parametrize("simulator_config", [SimulatorConfig(port=0, mode="random_walk", history_candles=30)])
async def test_fetch_closed_history_leaves_out_the_forming_candle(
    hub: MarketDataHub, simulator: RunningSimulator
) -> None:
    forming = simulator.state.walk.forming("BTCUSDT").open_time
    latest = await hub.fetch_closed_history(BTC, "1m", None, 5)
    assert times(latest) == [forming - (5 - i) * MINUTE_MS for i in range(5)]


@pytest.mark.parametrize(
    "simulator_config", [SimulatorConfig(port=0, mode="random_walk", candle_seconds=0.2, history_candles=30)]
)
async def test_random_walk_stream_is_contiguous_across_a_drop(hub: MarketDataHub, sim: SimControl) -> None:
    # Like the real exchange: forming klines (x=false) several times per candle, the forming candle last
    # in REST, and here simulated time running ahead of the wall clock (a candle every 0.2 s).
    q = BoundedCandleQueue()
    await all_live([hub.subscribe(BTC, "1m", q)])
    got: list[Candle] = []

    async def at_least(n: int) -> bool:
        got.extend(q.drain())
        return len(got) >= n

    await eventually(lambda: at_least(4), timeout=10)
    await sim.faults(drop_websockets=True)
    await wait_for_drop(hub, 1)
    count = len(got)
    await eventually(lambda: at_least(count + 6), timeout=15)
    opens = times(got)
    assert all(b - a == MINUTE_MS for a, b in itertools.pairwise(opens)), opens
    assert all(c.closed for c in got)
    assert hub.backfilled >= 1  # the candles that closed during the outage came over REST


async def test_close_cancels_and_awaits_every_task(simulator: RunningSimulator, sim: SimControl) -> None:
    hub = MarketDataHub(base_url=simulator.base_url)
    subs = [hub.subscribe(s, tf, BoundedCandleQueue()) for s in (BTC, ETH, SOL) for tf in ("1m", "5m")]
    await all_live(subs)
    # One stream is being retired (unsubscribing at the exchange) when close() comes.
    hub.unsubscribe(subs[0])
    tasks = hub.tasks()
    assert len(tasks) == 6
    await hub.close()
    assert all(t.done() for t in tasks)
    leftovers = [t for t in asyncio.all_tasks() if t.get_name().startswith("market-data") and not t.done()]
    assert leftovers == []
    with pytest.raises(RuntimeError):
        hub.subscribe(BTC, "1m", BoundedCandleQueue())
    await hub.close()  # idempotent


async def test_newest_closed_is_the_streams_newest_candle(hub: MarketDataHub, sim: SimControl) -> None:
    q = BoundedCandleQueue(maxsize=100)
    sub = hub.subscribe(SOL, "1m", q)
    await all_live([sub])
    pushed = await Pusher(sim, past_start()).push(SOL, 3)

    async def delivered() -> bool:
        return len(q) == 3

    await eventually(delivered)
    assert hub.newest_closed(sub) == pushed[-1]
    hub.unsubscribe(sub)
    assert hub.newest_closed(sub) is None  # no stream: nothing the subscriber is owed
