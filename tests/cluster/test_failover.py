"""Three (then four) real replicas and 30 running bots: spread, a join, SIGTERM, kill -9 of a replica
and of the leader (default timings: lease TTL 5 s, renew and heartbeat every 1 s). Every timing is printed; the deadlines are the targets of DESIGN.md "Cluster"."""

from __future__ import annotations

import itertools
import signal
import time
from datetime import datetime

from tests.cluster.harness import Cluster, request
from tests.processes import http_get, wait_until

BOTS = 30


def _settled(cluster: Cluster, bots: set[int], members: list[str]) -> dict[int, str] | None:
    """The placement once every bot runs, on one of `members`, as the map the leader published says."""
    placement = cluster.placement()
    if set(placement) == bots and set(placement.values()) == set(members) and placement == cluster.published():
        return placement
    return None


def _settle(cluster: Cluster, bots: set[int], members: list[str], timeout: float, what: str) -> tuple[float, dict[int, str]]:
    seen: list[dict[int, str]] = []

    def check() -> bool:
        placement = _settled(cluster, bots, members)
        if placement is not None:
            seen.append(placement)
        return placement is not None

    took = wait_until(check, timeout, what)
    return took, seen[-1]


def _ownerships(cluster: Cluster) -> int:
    return int(cluster.sql("SELECT count(*) FROM bot_ownership")[0][0])


def _metric(cluster: Cluster, name: str) -> float:
    """A metric of the current leader's /metrics."""
    leader = cluster.leader()
    assert leader is not None
    _, body = http_get(cluster.nodes[leader].url + "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def _running_elsewhere(cluster: Cluster, bots: set[int], gone: str) -> bool:
    placement = cluster.placement()
    return all(placement.get(b) not in (None, gone) for b in bots)


def test_spread_join_sigterm_and_kills(cluster: Cluster) -> None:
    cluster.start("r1", "r2", "r3")
    cluster.sign_up()
    # One exchange account per bot: two running bots may not share a key on the same symbol.
    bots = {b for _ in range(BOTS) for b in cluster.create_bots(1, cluster.api_key(*cluster.exchange_account()))}
    for b in sorted(bots):
        cluster.start_bot(b)

    took, before = _settle(cluster, bots, ["r1", "r2", "r3"], 60, "30 bots to run on 3 replicas")
    counts = {r: sum(1 for v in before.values() if v == r) for r in ("r1", "r2", "r3")}
    print(f"\n30 bots running on 3 replicas after {took:.2f}s: {counts}")
    assert all(abs(n - 10) <= 3 for n in counts.values()), counts

    view = cluster.cluster_view()
    assert view["leader"] in {"r1", "r2", "r3"}
    assert request(cluster.any_url() + "/api/v1/cluster")[0] == 401  # authenticated, like the rest
    assert _metric(cluster, "tradebot_cluster_is_leader") == 1
    assert _metric(cluster, "tradebot_cluster_replicas") == 3
    assert _metric(cluster, "tradebot_bots_running") == counts[view["leader"]]
    # The leader holds a lease for each of its bots and has renewed them: the last batch renewal was timed.
    assert _metric(cluster, "tradebot_leases_held") == counts[view["leader"]]
    assert _metric(cluster, "tradebot_lease_renew_seconds") > 0
    assert {r["id"]: r["bots"] for r in view["replicas"]} == counts
    assert all(r["started_at"].endswith("Z") for r in view["replicas"])

    # A fourth replica joins: only the bots it now wins move, about a quarter.
    owned_before = _ownerships(cluster)
    print(f"ownerships while starting the 30 bots: {owned_before} (moves as bots were added: {owned_before - BOTS})")
    cluster.start("r4")
    took, after = _settle(cluster, bots, ["r1", "r2", "r3", "r4"], 30, "rebalance onto r4")
    moved = {b for b in bots if before[b] != after[b]}
    print(f"r4 joined: {len(moved)} of {BOTS} bots moved (ideal {BOTS / 4:.1f}), settled in {took:.2f}s")
    assert all(after[b] == "r4" for b in moved)
    assert 3 <= len(moved) <= 12
    assert _ownerships(cluster) == owned_before + len(moved)  # one more ownership per moved bot, no churn

    # SIGTERM a replica that is not the leader: its bots run elsewhere within 2 s.
    leader = cluster.leader()
    victim = next(r for r in ("r1", "r2", "r3", "r4") if r != leader and any(v == r for v in after.values()))
    theirs = {b for b, r in after.items() if r == victim}
    cluster.kill(victim, signal.SIGTERM, wait=False)
    took = wait_until(lambda: _running_elsewhere(cluster, theirs, victim), 15, f"{victim}'s bots to move")
    print(f"SIGTERM {victim}: its {len(theirs)} bots ran elsewhere {took:.2f}s after the signal")
    assert took <= 2.0
    assert cluster.nodes[victim].replica.proc.wait(timeout=20) == 0
    assert "Traceback" not in cluster.nodes[victim].replica.log()
    survivors = cluster.live_names()
    _settle(cluster, bots, survivors, 15, "the three survivors to settle")

    # kill -9 a replica that is not the leader: its bots run on the survivors within 10 s.
    leader = cluster.leader()
    assert leader is not None
    victim = next(r for r in survivors if r != leader)
    _, placement = _settle(cluster, bots, survivors, 15, "a settled placement")
    theirs = {b for b, r in placement.items() if r == victim}
    cluster.kill(victim, signal.SIGKILL)
    took = wait_until(lambda: _running_elsewhere(cluster, theirs, victim), 10, f"{victim}'s bots to move")
    print(f"kill -9 {victim}: its {len(theirs)} bots ran on a survivor after {took:.2f}s")
    survivors = cluster.live_names()
    _settle(cluster, bots, survivors, 15, "the two survivors to settle")

    # Back to three, then kill -9 the leader: a new leader within 10 s, its bots elsewhere within 10 s.
    cluster.start("r5")
    survivors = cluster.live_names()
    _, placement = _settle(cluster, bots, survivors, 30, "r5 to get its share")
    leader = cluster.leader()
    assert leader in survivors
    theirs = {b for b, r in placement.items() if r == leader}
    started = time.monotonic()
    cluster.kill(leader, signal.SIGKILL)
    survivors = cluster.live_names()
    took_leader = wait_until(lambda: cluster.leader() in survivors, 10, "a new leader")
    wait_until(lambda: _running_elsewhere(cluster, theirs, leader), 10 - took_leader, f"{leader}'s bots to move")
    print(f"kill -9 leader {leader}: new leader {cluster.leader()} after {took_leader:.2f}s; its {len(theirs)} bots "
          f"ran elsewhere after {time.monotonic() - started:.2f}s")
    _settle(cluster, bots, survivors, 15, "the two survivors to settle")

    # Assignments continue under the new leader: a bot started now runs at once.
    (extra,) = cluster.create_bots(1, cluster.api_key(*cluster.exchange_account()))
    cluster.start_bot(extra)
    bots.add(extra)
    took, _ = _settle(cluster, bots, survivors, 15, "the new bot to run")
    print(f"a bot started under the new leader ran after {took:.2f}s")
    failovers = _metric(cluster, "tradebot_cluster_failovers_total")
    print(f"failovers counted by the new leader: {failovers:g}")
    assert failovers >= len(theirs)

    # Ownership history: per bot, fences strictly increase and never two open owners at once.
    rows = cluster.sql("SELECT bot_id, fence_token, acquired_at, released_at FROM bot_ownership "
                       "ORDER BY bot_id, fence_token")
    by_bot: dict[int, list[tuple[int, datetime, datetime | None]]] = {}
    for bot_id, fence, acquired, released in rows:
        by_bot.setdefault(int(bot_id), []).append((int(fence), acquired, released))
    for bot_id, history in by_bot.items():
        assert sum(1 for _, _, released in history if released is None) <= 1, (bot_id, history)
        for (f1, _, r1), (f2, a2, _) in itertools.pairwise(history):
            assert f2 > f1 and r1 is not None and r1 <= a2, (bot_id, history)
