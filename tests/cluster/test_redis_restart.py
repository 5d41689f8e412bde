"""Redis restarted (empty) under a running cluster: trading stops while it is gone, reads keep
being served, and everything resumes when it is back, with no order placed twice."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

from tests.cluster.harness import Cluster
from tests.cluster.trading import Traders
from tests.processes import free_port, redis_server, wait_until


def test_redis_restart_stops_trading_then_resumes_without_duplicates(
    clean_db: str, exchange_url: str, tmp_path: Path
) -> None:
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    data = tmp_path / "redis"
    data.mkdir()
    with ExitStack() as stack:
        redis_proc = stack.enter_context(redis_server(port, data))
        cluster = Cluster(clean_db, redis_url, exchange_url, tmp_path)
        stack.callback(cluster.close)
        cluster.start("r1", "r2")
        cluster.sign_up()
        traders = Traders(cluster)
        bots = traders.create(4)
        traders.warm_up()
        for _ in range(2):
            traders.push_and_wait()
        fences = dict(cluster.sql("SELECT bot_id, fence_token FROM bot_state WHERE bot_id = ANY(%s)", bots))
        orders_before = traders.audit()["accepted_orders"]

        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        gone = time.monotonic()
        # Trading stops: every replica drops its bots before their leases could expire elsewhere.
        wait_until(lambda: all(n.replica.log().count("lease lost") >= 1 for n in cluster.nodes.values()
                               if any(cluster.placement().get(b) == n.name for b in bots)), 15,
                   "the replicas to stop their bots")
        print(f"\nRedis gone: bots stopped after {time.monotonic() - gone:.2f}s")
        # Reads keep being served without Redis.
        status, body = cluster.api("GET", f"/api/v1/bots/{bots[0]}")
        assert status == 200, body
        assert cluster.api("GET", "/api/v1/cluster")[0] == 503
        # Candles that arrive meanwhile are not traded.
        traders.push()
        traders.push()
        assert traders.audit()["accepted_orders"] == orders_before

        back = stack.enter_context(redis_server(port, data))
        assert back.poll() is None
        returned = time.monotonic()

        def resumed() -> bool:
            rows = cluster.sql("SELECT bot_id, fence_token, status FROM bot_state WHERE bot_id = ANY(%s)", bots)
            return all(int(f) > int(fences[b]) and s == "running" for b, f, s in rows)

        took = wait_until(resumed, 30, "every bot to run again under a new fence")
        print(f"Redis back: every bot running again after {took:.2f}s")
        took = traders.push_and_wait(timeout=30)
        print(f"trading resumed; {time.monotonic() - returned:.2f}s after Redis returned")
        wait_until(lambda: cluster.leader() in ("r1", "r2"), 10, "a leader again")
        view = cluster.cluster_view()
        assert {r["id"] for r in view["replicas"]} == {"r1", "r2"}
        figures = traders.audit()
        traders.check_fencing()
        traders.check_positions()
        print(f"audit: {figures['accepted_orders']} orders accepted, none twice")
        assert figures["accepted_orders"] > orders_before
