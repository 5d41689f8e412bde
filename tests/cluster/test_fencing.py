"""A replica paused (SIGSTOP) past its leases while candles keep ordering trades, then resumed: the
fencing tokens, not the clock, keep it harmless (DESIGN.md invariants 1 and 2)."""

from __future__ import annotations

import signal
import time

from tests.cluster.harness import Cluster
from tests.cluster.trading import Traders
from tests.processes import wait_until


def test_paused_replica_cannot_trade_or_write_after_its_leases_moved(cluster: Cluster) -> None:
    cluster.start("r1", "r2")
    cluster.sign_up()
    traders = Traders(cluster)
    bots = traders.create(6)
    traders.warm_up()
    for _ in range(2):
        traders.push_and_wait()

    placement = cluster.placement()
    victim = max(("r1", "r2"), key=lambda r: sum(1 for v in placement.values() if v == r))
    survivor = "r2" if victim == "r1" else "r1"
    theirs = {b for b in bots if placement[b] == victim}
    assert theirs
    cluster.kill(victim, signal.SIGSTOP)
    stopped = time.monotonic()
    # Candles keep coming while the paused replica still holds (then loses) its leases.
    while not all(cluster.placement().get(b) == survivor for b in theirs):
        assert time.monotonic() - stopped < 20, "the paused replica's bots did not move"
        traders.push()
        time.sleep(0.5)  # a candle every half second, as an exchange would send them (not a wait)
    took = time.monotonic() - stopped
    print(f"\nSIGSTOP {victim}: its {len(theirs)} bots ran on {survivor} after {took:.2f}s")
    for _ in range(2):
        traders.push_and_wait()

    cluster.kill(victim, signal.SIGCONT)
    resumed = time.monotonic()
    # The resumed replica finds its leases lost and stops those actors; it rejoins and may get bots back
    # by a graceful hand-over. Trading goes on throughout.
    for _ in range(4):
        traders.push_and_wait()
    wait_until(lambda: "lease lost" in cluster.nodes[victim].replica.log(), 10, "the stale replica to drop its bots")
    print(f"SIGCONT {victim}: trading continued for {time.monotonic() - resumed:.2f}s; placement now "
          f"{sorted(cluster.placement().items())}")

    figures = traders.audit()
    ownerships = traders.check_fencing()
    traders.check_positions()
    print(f"audit: {figures['accepted_orders']} orders accepted, none twice; {ownerships} ownerships, fences "
          f"strictly increasing")
    refused = cluster.nodes[victim].replica.log().count("superseded by")
    print(f"stale writes refused by the fence on {victim} after SIGCONT: {refused}")
    assert figures["accepted_orders"] >= 6 * 4
    assert cluster.nodes[victim].alive()
