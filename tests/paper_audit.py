"""The audit of paper bots' books after faults (cluster and chaos tests): every virtual fill placed
once and settled once, the virtual account equal to its trades, its position equal to the bot's."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import pytest

Query = Callable[..., list[tuple[Any, ...]]]  # (sql, *args) -> rows, %s placeholders
_CID = re.compile(r"^tb(\d+)-(\d+)-(\d+)([ocxmfe])$")  # f/e: manual commands, numbered by command id


def audit_paper_bots(query: Query, bots: Iterable[int]) -> int:
    """Asserts the books of each paper bot are straight; returns the number of paper fills."""
    fills_total = 0
    for bot in bots:
        fills = query("SELECT client_order_id, side, amount, price, fee FROM paper_fills WHERE bot_id = %s", bot)
        fills_total += len(fills)
        signals: Counter[tuple[int, str]] = Counter()
        for (cid, *_rest) in fills:
            m = _CID.match(cid)
            assert m is not None and int(m.group(1)) == bot, cid
            signals[(int(m.group(3)), m.group(4))] += 1
        assert all(n == 1 for n in signals.values()), f"paper bot {bot}: a signal filled twice: {signals}"
        orders = {cid: (status, paper, trades) for cid, status, paper, trades in query(
            "SELECT o.client_order_id, o.status, o.paper, (SELECT count(*) FROM trades t WHERE t.order_id = o.id) "
            "FROM orders o WHERE o.bot_id = %s", bot)}
        assert all(paper for _, paper, _ in orders.values()), f"paper bot {bot}: a live order row"
        for cid, *_ in fills:
            assert orders.get(cid, (None,))[0] == "filled" and orders[cid][2] == 1, \
                f"paper bot {bot}: fill {cid} is {orders.get(cid)} (status, paper, trades)"
        filled = {cid for cid, (status, _, _) in orders.items() if status == "filled"}
        assert filled == {cid for cid, *_ in fills}, f"paper bot {bot}: a filled order with no paper fill"
        ((start, balance, side, size),) = query(
            "SELECT c.paper_balance, a.balance, a.position_side, a.position_size FROM bot_configs c "
            "JOIN paper_accounts a ON a.bot_id = c.id WHERE c.id = %s", bot)
        ((realized, fees, count),) = query(
            "SELECT coalesce(sum(realized_pnl), 0), coalesce(sum(fee), 0), count(*) FROM trades "
            "WHERE bot_id = %s AND paper", bot)
        assert count == len(fills)
        assert float(balance) == pytest.approx(float(start + realized - fees), rel=1e-9, abs=1e-6), bot
        ((in_pos, b_side, b_size, shown),) = query(
            "SELECT in_position, position_side, position_size, paper_free_balance FROM bot_state WHERE bot_id = %s",
            bot)
        assert (side, float(size)) == ((b_side, float(b_size)) if in_pos else (None, 0.0)), \
            f"paper bot {bot}: account {side} {size}, bot {b_side} {b_size}"
        assert shown is not None and float(shown) == pytest.approx(float(balance)), bot
    return fills_total
