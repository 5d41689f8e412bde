"""kill -9 of a real replica at the two dangerous moments of an order (DESIGN.md invariant 2):

(a) after the order row is written, before the request leaves;
(b) after the exchange accepted the order, before its outcome is recorded.
A restarted replica must neither lose the order nor place it twice, and its position and state
must agree with the exchange. The replica kills itself with SIGKILL at the named point
(TRADEBOT_FAULT_CRASH_AT, honoured only in the test environment).
"""

from __future__ import annotations

import signal
from pathlib import Path

import asyncpg
import pytest

from tests.api_client import Api
from tests.integration.runtime_helpers import candle_rows
from tests.processes import tradebot_run, wait_until
from tests.simulator_process import SimulatorProcess, simulator_process

CLOSES = [100.0] * 5 + [104.0]  # the last candle turns the EMA(5) target long: one buy


def _env(database_url: str, redis_url: str, sim: SimulatorProcess, tmp_path: Path, crash: str = "") -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TRADEBOT_EXCHANGE_URL": sim.url,
        "TRADEBOT_REDIS_PREFIX": f"crash-{tmp_path.name}",
        "TRADEBOT_DATA_DIR": str(tmp_path / "var"),
        "TRADEBOT_JWT_SECRET": "j" * 48,
        "TRADEBOT_FERNET_KEYS": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
        "TRADEBOT_LEASE_TTL_MS": "2000",
        "TRADEBOT_RENEW_INTERVAL_MS": "500",
        "TRADEBOT_FAULT_CRASH_AT": crash,
    }


async def _db_rows(database_url: str, bot: int) -> tuple[list[asyncpg.Record], list[asyncpg.Record], asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        orders = await conn.fetch("SELECT * FROM orders WHERE bot_id = $1 ORDER BY id", bot)
        trades = await conn.fetch("SELECT * FROM trades WHERE bot_id = $1 ORDER BY id", bot)
        state = await conn.fetchrow("SELECT * FROM bot_state WHERE bot_id = $1", bot)
        assert state is not None
        return list(orders), list(trades), state
    finally:
        await conn.close()


@pytest.mark.parametrize("crash", ["before_send", "after_send"])
async def test_kill_9_mid_order_neither_loses_nor_duplicates_it(
    crash: str, clean_db: str, redis_url: str, tmp_path: Path
) -> None:
    with simulator_process(tmp_path) as sim:
        api_key, secret = sim.account()
        with tradebot_run(_env(clean_db, redis_url, sim, tmp_path, crash), tmp_path) as replica:
            api = Api(replica.url).sign_up()
            bot = api.create_bot(api.add_key(api_key, secret))
            api.start(bot)
            wait_until(lambda: api.state(bot)["status"] == "running", 30, "the bot to run")
            sim.push(candle_rows(CLOSES))
            wait_until(lambda: replica.proc.poll() is not None, 30, f"the replica to die at {crash}")
            assert replica.proc.returncode == -signal.SIGKILL

        orders, trades, _ = await _db_rows(clean_db, bot)
        assert [o["status"] for o in orders] == ["pending"]
        accepted = [o for o in sim.orders(api_key) if o["status"] != "rejected"]
        assert len(accepted) == (0 if crash == "before_send" else 1)

        with tradebot_run(_env(clean_db, redis_url, sim, tmp_path), tmp_path) as replica:
            api.base = replica.url

            def settled() -> bool:
                state = api.state(bot)
                return bool(state["status"] == "running" and state["position_side"] == "long")

            wait_until(settled, 30, "the restarted bot to settle its order and hold the position")
            orders, trades, state = await _db_rows(clean_db, bot)
            audit = [o for o in sim.orders(api_key) if o["status"] != "rejected"]
            ids = [o["client_order_id"] for o in audit]
            assert len(ids) == len(set(ids)) == 1, audit  # one order on the exchange, never two
            filled = [o for o in orders if o["status"] == "filled"]
            assert [o["client_order_id"] for o in filled] == ids
            assert [t["client_order_id"] for t in trades] == ids  # one trade, recorded once
            if crash == "before_send":
                # The first row never reached the exchange: it is expired, and the signal was
                # traded once under the new lease.
                assert orders[0]["status"] == "expired" and orders[0]["fence_token"] < orders[1]["fence_token"]
            position = sim.positions(api_key)["BTCUSDT"]
            assert position["side"] == "long" and float(position["amount"]) == pytest.approx(float(state["position_size"]))
            assert replica.stop() == 0
