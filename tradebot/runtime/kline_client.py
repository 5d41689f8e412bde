"""The hub's ccxt.pro client: binanceusdm with a kline tap, an ack tap and batched kline SUBSCRIBEs.

Kept apart from the hub because it leans on ccxt internals (`handle_message`, `watch_multiple`, the
websocket client's `connected`, `throttle` and `send`) that a ccxt upgrade may move; the hub's own
logic only sees the two taps.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import ccxt.pro as ccxt_pro
from ccxt.async_support.base.exchange import Exchange

from tradebot.exchange import rate_limit
from tradebot.exchange.ccxt_factory import SUPPORTED_EXCHANGES, point_at

log = logging.getLogger(__name__)

# ccxt spaces the messages it sends on a connection by rateLimit (50 ms) x this cost; its default of 5
# (4 messages/s) is below what Binance allows (10 incoming messages/s per connection).
WS_MESSAGE_COST = 2


KlineTap = Callable[[dict[str, Any]], bool]
AckTap = Callable[[str], None]


class TappedBinanceUsdm(ccxt_pro.binanceusdm):  # type: ignore[misc]
    """ccxt's binanceusdm with hooks: raw klines (with their `x` flag) and subscription acks go to the hub,
    and kline SUBSCRIBEs are batched.

    A kline the tap consumed is not passed on to ccxt: the hub never reads ccxt's candle cache, and
    skipping ccxt's parse halves the per-message cost. Klines of streams the hub does not know (a late
    message after an unsubscribe) go to ccxt as usual.

    Batching: ccxt sends one SUBSCRIBE per `watch_ohlcv`, spaced by its per-connection throttle, so
    after a drop 50 streams need 50 spacings (5 s) to be subscribed again. Here each kline subscription
    is registered with ccxt as usual but its message is queued; one sender per connection sends what
    has queued up as one SUBSCRIBE per throttle slot (the first at once), and an ack of the combined
    id is reported as the ack of every request it carried.
    """

    kline_tap: KlineTap | None = None
    ack_tap: AckTap | None = None
    subscribe_messages = 0  # SUBSCRIBE messages sent (each may carry many streams)
    MAX_PARAMS_PER_SUBSCRIBE = 100

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._subscribe_queues: dict[Any, list[tuple[list[str], str]]] = {}  # ws client -> (params, id)
        self._subscribe_senders: set[asyncio.Task[None]] = set()
        self._subscribe_sending: set[Any] = set()  # ws clients with a sender running
        self._ack_aliases: OrderedDict[str, list[str]] = OrderedDict()

    def handle_message(self, client: Any, message: Any) -> None:
        # Plain kline events go straight to the tap: ccxt's generic dispatch (a 35-entry handler table
        # built per message, several safe_* lookups) costs more than everything the hub does after it.
        if type(message) is dict and message.get("e") == "kline":
            tap = self.kline_tap
            if tap is not None and tap(message):
                return
        super().handle_message(client, message)

    def handle_ohlcv(self, client: Any, message: dict[str, Any]) -> None:
        tap = self.kline_tap
        if tap is not None and tap(message):
            return
        super().handle_ohlcv(client, message)

    def handle_subscription_status(self, client: Any, message: dict[str, Any]) -> Any:
        tap = self.ack_tap
        request_id = message.get("id") if isinstance(message, dict) else None
        if tap is not None and request_id is not None:
            for each in self._ack_aliases.pop(str(request_id), [str(request_id)]):
                tap(each)
        return super().handle_subscription_status(client, message)

    def watch_multiple(
        self,
        url: str,
        message_hashes: list[str],
        message: Any = None,
        subscribe_hashes: list[str] | None = None,
        subscription: Any = None,
    ) -> Any:
        batchable = (
            isinstance(message, dict)
            and message.get("method") == "SUBSCRIBE"
            and subscribe_hashes is not None
            and all(str(h).startswith("ohlcv::") for h in message_hashes)
        )
        if not batchable:
            return super().watch_multiple(url, message_hashes, message, subscribe_hashes, subscription)
        ws = self.client(url)
        missing = [h for h in subscribe_hashes or [] if h not in ws.subscriptions]
        # Without a message ccxt registers the futures and subscriptions as usual but sends nothing:
        # the batched SUBSCRIBE below carries it.
        future = super().watch_multiple(url, message_hashes, None, subscribe_hashes, subscription)
        if missing:
            self._subscribe_queues.setdefault(ws, []).append((list(message["params"]), str(message["id"])))
            if ws not in self._subscribe_sending:
                self._subscribe_sending.add(ws)
                sender = asyncio.create_task(self._send_subscribes(ws), name=f"market-data-subscribe:{url}")
                self._subscribe_senders.add(sender)
                sender.add_done_callback(self._subscribe_senders.discard)
        return future

    async def _send_subscribes(self, ws: Any) -> None:
        cost = (self.options.get("ws") or {}).get("cost", 1)
        try:
            async with asyncio.timeout(30):
                await ws.connected
            while self._subscribe_queues.get(ws):
                if self.enableRateLimit:
                    await ws.throttle(cost)
                queue = self._subscribe_queues[ws]
                batch, queue[:] = queue[: self.MAX_PARAMS_PER_SUBSCRIBE], queue[self.MAX_PARAMS_PER_SUBSCRIBE :]
                combined = batch[0][1]
                self._ack_aliases[combined] = [request_id for _, request_id in batch]
                while len(self._ack_aliases) > 1024:
                    self._ack_aliases.popitem(last=False)
                params = [p for batch_params, _ in batch for p in batch_params]
                await ws.send({"method": "SUBSCRIBE", "params": params, "id": int(combined)})
                self.subscribe_messages += 1
        except Exception as e:
            # The connection failed or closed: ccxt rejects the watches, and the hub's streams retry.
            log.debug("sending kline subscriptions failed: %s", e)
        finally:
            # Normally empty by now; after a failure what is left belongs to a dead connection.
            self._subscribe_sending.discard(ws)
            self._subscribe_queues.pop(ws, None)

    async def close(self) -> None:
        senders = list(self._subscribe_senders)
        for sender in senders:
            sender.cancel()
        if senders:
            await asyncio.wait(senders)
        await super().close()


TAPPED_CLASSES: dict[str, type[Exchange]] = {"binanceusdm": TappedBinanceUsdm}


def build_streaming_client(exchange: str, base_url: str | None) -> Exchange:
    """A ccxt.pro public client of the tapped class, configured like `ccxt_factory.build_client`'s."""
    if exchange not in SUPPORTED_EXCHANGES or exchange not in TAPPED_CLASSES:
        raise ValueError(f"unsupported exchange {exchange!r}")
    client = TAPPED_CLASSES[exchange](
        {"enableRateLimit": True, "options": {"fetchCurrencies": False, "ws": {"cost": WS_MESSAGE_COST}}}
    )
    if base_url is not None:
        point_at(client, base_url)
    rate_limit.install(client)
    return client
