"""Manual commands in a real cluster: replica processes, one simulator process, PostgreSQL, Redis.

A command sent to any replica's API reaches the replica that owns the bot; a command whose order
reached the exchange before its owner was killed (kill -9 right after sending) is settled by the
next owner from the exchange and never sent again.
"""

from __future__ import annotations

from typing import Any

from tests.cluster.harness import MINUTE, START_MS, Cluster, candles
from tests.processes import wait_until


def _bot(cluster: Cluster) -> tuple[int, str]:
    """A running EMA(5) long-only bot on a fresh exchange account, with five flat candles decided."""
    cluster.sign_up()
    api_key, secret = cluster.exchange_account()
    (bot,) = cluster.create_bots(1, cluster.api_key(api_key, secret), ema_period=5, allow_short=False,
                                 max_daily_loss_pct=100.0)
    cluster.start_bot(bot)
    wait_until(lambda: bot in cluster.placement(), 60, "the bot to run")
    cluster.push(candles([100.0] * 5, START_MS))
    last = START_MS + 4 * MINUTE
    wait_until(lambda: cluster.sql("SELECT last_candle_time FROM bot_state WHERE bot_id = %s", bot)[0][0] == last,
               30, "the bot to decide on the flat candles")
    return bot, api_key


def _trades(cluster: Cluster, bot: int) -> list[tuple[Any, ...]]:
    return cluster.sql("SELECT side, reason, client_order_id, amount FROM trades WHERE bot_id = %s ORDER BY id", bot)


def test_a_command_sent_to_another_replica_reaches_the_owner(cluster: Cluster) -> None:
    cluster.start("a", "b")
    bot, api_key = _bot(cluster)
    owner = cluster.placement()[bot]
    other = cluster.nodes["b" if owner == "a" else "a"].url

    status, body = cluster.api("POST", f"/api/v1/bots/{bot}/force-entry", {"side": "long"}, url=other)
    assert status == 202, body
    wait_until(lambda: len(_trades(cluster, bot)) == 1, 30, "the forced entry")
    [(side, reason, cid, _)] = _trades(cluster, bot)
    assert (side, reason) == ("buy", "manual") and cid.endswith(f"-{body['id']}e")
    assert [o["client_order_id"] for o in cluster.sim_orders(api_key)] == [cid]

    status, body = cluster.api("POST", f"/api/v1/bots/{bot}/pause-entries", url=other)
    assert status == 202, body
    status, state = cluster.api("GET", f"/api/v1/bots/{bot}/state", url=cluster.nodes[owner].url)
    assert status == 200 and state["entries_paused"] is True

    status, body = cluster.api("POST", f"/api/v1/bots/{bot}/force-exit", {"pct": 50}, url=other)
    assert status == 202, body
    wait_until(lambda: len(_trades(cluster, bot)) == 2, 30, "the forced exit")
    assert _trades(cluster, bot)[1][:2] == ("sell", "manual")
    assert len(cluster.sim_orders(api_key)) == 2


def test_a_command_replayed_after_a_failover_is_not_sent_twice(cluster: Cluster) -> None:
    cluster.extra_env = {"TRADEBOT_FAULT_CRASH_AT": "after_send"}
    cluster.start("a")
    bot, api_key = _bot(cluster)
    status, body = cluster.api("POST", f"/api/v1/bots/{bot}/force-entry", {"side": "long"})
    assert status == 202, body
    wait_until(lambda: not cluster.nodes["a"].alive(), 30, "replica a to die right after sending")
    [sent] = [o for o in cluster.sim_orders(api_key) if o["status"] != "rejected"]
    assert _trades(cluster, bot) == []  # killed before recording the fill

    cluster.extra_env = {}
    cluster.start("b")

    def done() -> bool:
        return bool(cluster.sql("SELECT status FROM bot_commands WHERE id = %s", body["id"])[0][0] == "done")

    wait_until(done, 60, "the next owner to settle the command")
    [(side, reason, cid, amount)] = _trades(cluster, bot)
    assert (side, reason, cid) == ("buy", "manual", sent["client_order_id"])
    assert cluster.sim_orders(api_key) == [o for o in cluster.sim_orders(api_key) if o["client_order_id"] == cid]
    [(in_position, position_side, size)] = cluster.sql(
        "SELECT in_position, position_side, position_size FROM bot_state WHERE bot_id = %s", bot)
    assert in_position and position_side == "long" and float(size) == float(amount)
