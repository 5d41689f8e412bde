"""The issue's "Done when": kill -9 of the only replica while a bot is long; a candle then crosses
its stop and the exchange (the simulator process) flattens the position at once, with no replica
alive. After a restart the bot records the stop fill (reason stop_loss), cancels the take profit,
places nothing else, and waits for a fresh signal."""

from __future__ import annotations

import signal
from typing import Any

from tests.cluster.harness import MINUTE, START_MS, Cluster, request
from tests.processes import wait_until


def _positions(cluster: Cluster, api_key: str) -> dict[str, Any]:
    status, body = request(f"{cluster.exchange_url}/_sim/positions?api_key={api_key}")
    assert status == 200, body
    return dict(body)


def _orders(cluster: Cluster, bot: int) -> list[tuple[str, str, str]]:
    rows = cluster.sql("SELECT client_order_id, type, status FROM orders WHERE bot_id = %s ORDER BY id", bot)
    return [(str(c), str(t), str(s)) for c, t, s in rows]


def test_a_stop_fires_with_no_replica_alive_and_the_restarted_bot_records_it(cluster: Cluster) -> None:
    cluster.start("r1")
    cluster.sign_up()
    api_key, secret = cluster.exchange_account()
    (bot,) = cluster.create_bots(1, cluster.api_key(api_key, secret), allow_short=False, stop_loss_pct=2.0,
                                 take_profit_pct=5.0, max_daily_loss_pct=100.0)
    cluster.start_bot(bot)
    wait_until(lambda: cluster.placement().get(bot) == "r1", 60, "the bot to run")
    # EMA(2): a seed, then a close above it targets long.
    cluster.push([[START_MS, 100.0, 100.5, 99.5, 100.0, 10.0]])
    cluster.push([[START_MS + MINUTE, 100.0, 101.5, 99.5, 101.0, 10.0]])

    def protected() -> bool:
        return [(t, s) for _, t, s in _orders(cluster, bot)] == [
            ("market", "filled"), ("stop_market", "open"), ("take_profit_market", "open"),
        ]

    wait_until(protected, 30, "the entry with its stop loss and take profit")
    entry, stop, take = (cid for cid, _, _ in _orders(cluster, bot))
    assert _positions(cluster, api_key)["BTCUSDT"]["side"] == "long"

    cluster.kill("r1", signal.SIGKILL)
    # Through the stop (entry × 0.98) and still above the EMA: the target stays long.
    cluster.push([[START_MS + 2 * MINUTE, 101.0, 101.5, 97.0, 101.2, 10.0]])
    assert _positions(cluster, api_key) == {}  # flat at once: the exchange held the stop
    listed = {o["client_order_id"]: o["status"] for o in cluster.sim_orders(api_key)}
    assert (listed[stop], listed[take]) == ("filled", "new")

    cluster.start("r1")

    def recorded() -> bool:
        return [s for _, _, s in _orders(cluster, bot)] == ["filled", "filled", "canceled"]

    wait_until(recorded, 60, "the restarted bot to record the stop fill and cancel the take profit")
    trades = cluster.sql("SELECT client_order_id, side, reason FROM trades WHERE bot_id = %s ORDER BY id", bot)
    assert trades == [(entry, "buy", "signal"), (stop, "sell", "stop_loss")]
    listed = {o["client_order_id"]: o["status"] for o in cluster.sim_orders(api_key)}
    assert listed == {entry: "filled", stop: "filled", take: "canceled"}
    wait_until(lambda: cluster.placement().get(bot) == "r1", 30, "the bot to run again")
    (state,) = cluster.sql("SELECT in_position, last_error_message FROM bot_state WHERE bot_id = %s", bot)
    assert state[0] is False

    # A later candle with the same long target: no re-entry until a fresh signal.
    cluster.push([[START_MS + 3 * MINUTE, 101.2, 102.0, 101.0, 101.8, 10.0]])
    wait_until(lambda: bool(cluster.sql("SELECT 1 FROM bot_state WHERE bot_id = %s AND strategy_state::text "
                                        "LIKE %s", bot, f"%{START_MS + 3 * MINUTE}%")), 30,
               "the bot to decide on the next candle")
    assert len(_orders(cluster, bot)) == 3 and len(cluster.sim_orders(api_key)) == 3
