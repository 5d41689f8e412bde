"""Paper bots on real replicas: kill -9 of the replica running most of them, and they resume on the
survivor with their virtual balance and position, no order filled twice, and nothing on the
exchange (some of them name a real exchange key, which must never see a paper order)."""

from __future__ import annotations

import signal

from tests.cluster.harness import Cluster
from tests.cluster.trading import Traders
from tests.paper_audit import audit_paper_bots
from tests.processes import wait_until

PAPER_BOTS = 6


def _accounts(cluster: Cluster, bots: list[int]) -> dict[int, tuple[str, str | None, float, float]]:
    rows = cluster.sql("SELECT bot_id, balance::text, position_side, position_size::float8, "
                       "coalesce(entry_price, 0)::float8 FROM paper_accounts WHERE bot_id = ANY(%s)", bots)
    return {int(b): (bal, side, size, entry) for b, bal, side, size, entry in rows}


def test_paper_bots_fail_over_with_their_virtual_accounts(cluster: Cluster) -> None:
    cluster.start("r1", "r2")
    cluster.sign_up()
    api_key, secret = cluster.exchange_account()
    key_id = cluster.api_key(api_key, secret)
    traders = Traders(cluster)
    bots = []
    for i in range(PAPER_BOTS):
        # Paper bots are not held to one bot per key and market; half of them name the key, half none.
        (bot,) = cluster.create_bots(1, key_id, mode="paper", paper_balance=1000 + i, max_daily_loss_pct=100.0,
                                     max_daily_trades=100_000, **({} if i % 2 else {"api_key_id": None}))
        traders.accounts[bot] = api_key
        bots.append(bot)
    for bot in bots:
        cluster.start_bot(bot)
    traders.warm_up()
    for _ in range(3):
        traders.push_and_wait()

    placement = cluster.placement()
    victim = max(("r1", "r2"), key=lambda r: sum(1 for v in placement.values() if v == r))
    survivor = "r2" if victim == "r1" else "r1"
    theirs = {b for b in bots if placement[b] == victim}
    assert theirs
    before = _accounts(cluster, bots)
    cluster.kill(victim, signal.SIGKILL)
    took = wait_until(lambda: all(cluster.placement().get(b) == survivor for b in theirs), 20,
                      f"{victim}'s paper bots to run on {survivor}")
    print(f"\nkill -9 {victim}: its {len(theirs)} paper bots ran on {survivor} after {took:.2f}s")
    assert _accounts(cluster, bots) == before  # taken over with balance and position intact
    for _ in range(3):
        traders.push_and_wait()

    fills = audit_paper_bots(cluster.sql, bots)
    ownerships = traders.check_fencing()
    assert cluster.sim_orders(api_key) == []  # nothing reached the exchange
    assert fills >= PAPER_BOTS * 6
    print(f"audit: {fills} paper fills, none twice, every account equal to its trades; {ownerships} ownerships")
