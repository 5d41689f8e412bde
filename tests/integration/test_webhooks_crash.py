"""Deliveries survive the replica: kill -9 in the middle of sending, and SIGTERM while the receiver
is down, then the receiver comes back and a new replica delivers every id, in order, at least once
(CONTRACT.md "Webhooks"; DESIGN.md "Outbound notifications")."""

from __future__ import annotations

import signal
from pathlib import Path

import asyncpg

from tests.api_client import Api
from tests.processes import tradebot_run, wait_until
from tests.webhook_receiver import Receiver


def _env(database_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TRADEBOT_EXCHANGE_URL": "http://127.0.0.1:9",  # no bot trades here; nothing may reach Binance
        "TRADEBOT_REDIS_PREFIX": f"hooks-{tmp_path.name}",
        "TRADEBOT_DATA_DIR": str(tmp_path / "var"),
        "TRADEBOT_JWT_SECRET": "j" * 48,
        "TRADEBOT_FERNET_KEYS": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
        "TRADEBOT_WEBHOOK_RETRY_S": "0.5",
        "TRADEBOT_NOTIFICATIONS_POLL_S": "0.05",
    }


async def _deliveries(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch("SELECT id, status, attempts FROM webhook_deliveries ORDER BY id"))
    finally:
        await conn.close()


async def test_no_delivery_is_lost_to_kill_9_or_sigterm_while_the_receiver_is_down(
    clean_db: str, redis_url: str, tmp_path: Path
) -> None:
    receiver = Receiver(behaviour="hang").start()  # takes the request, never answers
    env = _env(clean_db, redis_url, tmp_path)
    try:
        with tradebot_run(env, tmp_path) as replica:
            api = Api(replica.url).sign_up()
            hook = api.call("POST", "/webhooks", {"url": receiver.url("crash")}, expect=201)
            receiver.secrets["crash"] = hook["secret"]
            ids = [api.call("POST", f"/webhooks/{hook['id']}/test", expect=202)["delivery_id"] for _ in range(10)]
            wait_until(lambda: len(receiver.received()) >= 1, 30, "the replica to be sending")
            assert replica.stop(signal.SIGKILL) == -signal.SIGKILL  # mid-send, locks held
        rows = await _deliveries(clean_db)
        assert [(r["id"], r["status"], r["attempts"]) for r in rows] == [(i, "pending", 0) for i in ids]

        receiver.stop()  # down: connections refused
        receiver.behaviour = "ok"
        with tradebot_run(env, tmp_path) as replica:
            api.base = replica.url
            ids += [api.call("POST", f"/webhooks/{hook['id']}/test", expect=202)["delivery_id"] for _ in range(10)]

            def head_failed() -> bool:
                return bool(api.call("GET", f"/webhooks/{hook['id']}/deliveries?limit=500", expect=200)
                            ["items"][-1]["attempts"] >= 1)

            wait_until(head_failed, 30, "a refused attempt to be recorded")
            assert replica.stop(signal.SIGTERM) == 0
        rows = await _deliveries(clean_db)
        assert [r["id"] for r in rows] == ids and {r["status"] for r in rows} == {"pending"}
        assert rows[0]["attempts"] >= 1 and all(r["attempts"] == 0 for r in rows[1:])  # held back behind it

        receiver.start()
        with tradebot_run(env, tmp_path) as replica:
            api.base = replica.url

            def all_delivered() -> bool:
                items = api.call("GET", f"/webhooks/{hook['id']}/deliveries?limit=500", expect=200)["items"]
                return len(items) == 20 and all(d["status"] == "delivered" for d in items)

            wait_until(all_delivered, 60, "every delivery to go through")
            assert replica.stop() == 0
        assert receiver.delivered_ids("crash") == ids  # every id, first arrivals in order
        assert all(r.signature_ok for r in receiver.received("crash"))
        assert receiver.received("crash")[0].delivery == str(ids[0])  # the one cut off by kill -9, sent again
    finally:
        receiver.stop()
