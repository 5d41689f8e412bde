"""Two real replicas share an optimisation's chunks; one is killed (-9) in the middle of a chunk: its
chunk's lease lapses, the other replica runs it again, and every trial is recorded exactly once."""

from __future__ import annotations

import os
import signal
import time

from tests.cluster.harness import MINUTE, START_MS, Cluster
from tests.integration.backtests_helpers import iso, walk_candles
from tests.processes import wait_until

BARS = 100_000
TRIALS = 400  # ema_period 2..401: 50 chunks of 8


def _running_chunks_of(cluster: Cluster, replica: str) -> list[int]:
    rows = cluster.sql("SELECT id FROM optimization_chunks WHERE lease_owner = %s AND status = 'running'", replica)
    return [int(r[0]) for r in rows]


def test_a_killed_replicas_chunk_is_run_again_and_every_trial_once(cluster: Cluster) -> None:
    cluster.extra_env.update({"TRADEBOT_OPTIMIZER_WORKERS": "1", "TRADEBOT_OPTIMIZER_LEASE_S": "3",
                              "TRADEBOT_OPTIMIZER_POLL_S": "0.2"})  # fmt: skip
    cluster.start("r1", "r2")
    cluster.sign_up()
    candles = walk_candles(BARS, start_ms=START_MS, seed=3)
    for i in range(0, BARS, 10_000):
        cluster.push(candles[i : i + 10_000])
    status, accepted = cluster.api("POST", "/api/v1/optimizations", {
        "symbol": "BTCUSDT", "timeframe": "1m", "start_time": iso(START_MS), "end_time": iso(START_MS + BARS * MINUTE),
        "strategy": "ema_cross", "space": {"ema_period": {"min": 2, "max": TRIALS + 1, "step": 1}},
        "method": "grid", "max_trials": TRIALS, "objective": "return_pct",
    }, url=cluster.nodes["r2"].url)  # fmt: skip
    assert status == 202, accepted
    opt_id = int(accepted["id"])

    # Freeze r1 while it holds a chunk (so the kill lands mid-chunk for sure), then kill it.
    stolen: list[int] = []

    def r1_mid_chunk() -> bool:
        if not _running_chunks_of(cluster, "r1"):
            return False
        os.kill(cluster.nodes["r1"].pid, signal.SIGSTOP)
        held = _running_chunks_of(cluster, "r1")
        if not held:
            os.kill(cluster.nodes["r1"].pid, signal.SIGCONT)
            return False
        stolen.extend(held)
        return True

    wait_until(r1_mid_chunk, 120, "r1 to be in the middle of a chunk", interval=0.005)
    cluster.kill("r1")
    killed_at = time.monotonic()

    def done() -> bool:
        code, body = cluster.api("GET", f"/api/v1/optimizations/{opt_id}", url=cluster.nodes["r2"].url)
        assert code == 200, body
        assert body["status"] in ("pending", "running", "done"), body
        return bool(body["status"] == "done")

    wait_until(done, 300, "the optimisation to finish on r2")
    print(f"\noptimisation done {time.monotonic() - killed_at:.1f}s after r1 was killed mid-chunk {stolen}")

    rows = cluster.sql("SELECT trial_no, count(*) FROM optimization_trials WHERE optimization_id = %s "
                       "GROUP BY trial_no ORDER BY trial_no", opt_id)  # fmt: skip
    assert [int(r[0]) for r in rows] == list(range(TRIALS))
    assert all(int(r[1]) == 1 for r in rows)
    periods = cluster.sql("SELECT (parameters->>'ema_period')::int FROM optimization_trials WHERE optimization_id = %s",
                          opt_id)  # fmt: skip
    assert sorted(int(p[0]) for p in periods) == list(range(2, TRIALS + 2))
    for chunk_id in stolen:
        (owner, attempts, state), = cluster.sql(
            "SELECT lease_owner, attempts, status FROM optimization_chunks WHERE id = %s", chunk_id)
        assert (owner, state) == ("r2", "done") and attempts >= 2
        by = cluster.sql("SELECT DISTINCT replica_id FROM optimization_trials WHERE chunk_id = %s", chunk_id)
        assert by == [("r2",)]
    code, body = cluster.api("GET", f"/api/v1/optimizations/{opt_id}", url=cluster.nodes["r2"].url)
    assert code == 200
    assert body["progress"] == {"done": TRIALS, "total": TRIALS} and len(body["trials"]) == TRIALS
