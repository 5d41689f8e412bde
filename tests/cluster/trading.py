"""Bots that trade on every candle, and the audit of what reached the exchange and the database."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from tests.cluster.harness import MINUTE, START_MS, Cluster
from tests.processes import wait_until

_CID = re.compile(r"^tb(\d+)-(\d+)-(\d+)([ocxmfe])$")


@dataclass
class Traders:
    """One bot per exchange account, EMA(2) with shorts: every alternating candle flips the target."""

    cluster: Cluster
    accounts: dict[int, str] = field(default_factory=dict)  # bot → exchange api key
    next_open: int = START_MS
    flip: int = 0

    def create(self, n: int) -> list[int]:
        out = []
        for _ in range(n):
            api_key, secret = self.cluster.exchange_account()
            # No daily limits in the way: every candle must trade.
            (bot,) = self.cluster.create_bots(1, self.cluster.api_key(api_key, secret), max_daily_loss_pct=100.0,
                                              max_daily_trades=100_000)
            self.accounts[bot] = api_key
            out.append(bot)
        for bot in out:
            self.cluster.start_bot(bot)
        return out

    def push(self, close: float | None = None) -> float:
        """One closed candle; alternating 101 / 99 unless given. Returns its close."""
        if close is None:
            close = 101.0 if self.flip % 2 == 0 else 99.0
            self.flip += 1
        open_time = self.next_open
        self.cluster.push([[open_time, 100.0, max(100.0, close) + 0.5, min(100.0, close) - 0.5, close, 10.0]])
        self.next_open += MINUTE
        return close

    def running(self) -> bool:
        rows = self.cluster.sql("SELECT status FROM bot_state WHERE bot_id = ANY(%s)", list(self.accounts))
        return len(rows) == len(self.accounts) and all(status == "running" for (status,) in rows)

    def warm_up(self, timeout: float = 60.0) -> None:
        """Wait for every bot to run, then seed EMA(2) with one candle; the next one trades."""
        wait_until(self.running, timeout, "every bot to run")
        self.push(100.0)

    def decided(self, side: str) -> bool:
        """Every bot runs and holds `side`: every candle after the warm-up flips the target, and the
        position is saved with the fill, so the expected side shows the bot traded on the last candle."""
        rows = self.cluster.sql("SELECT status, position_side FROM bot_state WHERE bot_id = ANY(%s)",
                                list(self.accounts))
        return len(rows) == len(self.accounts) and all(st == "running" and ps == side for st, ps in rows)

    def push_and_wait(self, timeout: float = 20.0) -> float:
        side = "long" if self.push() == 101.0 else "short"
        try:
            return wait_until(lambda: self.decided(side), timeout, f"every bot to go {side}")
        except AssertionError as e:
            rows = self.cluster.sql("SELECT bot_id, status, replica_id, position_side, last_error_message "
                                    "FROM bot_state WHERE bot_id = ANY(%s)", list(self.accounts))
            raise AssertionError(f"{e}; states: {rows}") from None

    def audit(self) -> dict[str, int]:
        """No client order id accepted twice, no signal traded twice, positions as recorded."""
        accepted = 0
        for bot, api_key in self.accounts.items():
            orders = self.cluster.sim_orders(api_key)
            ok = [o for o in orders if o["status"] != "rejected"]
            accepted += len(ok)
            ids = Counter(o["client_order_id"] for o in ok)
            assert all(n == 1 for n in ids.values()), f"bot {bot}: a client order id accepted twice: {ids}"
            signals: Counter[tuple[int, int, str]] = Counter()
            for cid in ids:
                m = _CID.match(cid)
                assert m is not None and int(m.group(1)) == bot, cid
                signals[(int(m.group(1)), int(m.group(3)), m.group(4))] += 1
            assert all(n == 1 for n in signals.values()), f"bot {bot}: a signal traded twice: {signals}"
            duplicates = [o for o in orders if o.get("reject_code") == -4116]
            assert not duplicates, f"bot {bot}: a client order id was sent twice: {duplicates}"
        return {"accepted_orders": accepted}

    def check_fencing(self) -> int:
        """Fences strictly increase, owners never overlap, and every order row was written while its fence
        owned the bot (a stale owner's writes were refused). Returns the number of ownerships."""
        rows = self.cluster.sql("SELECT bot_id, fence_token, acquired_at, released_at FROM bot_ownership "
                                "WHERE bot_id = ANY(%s) ORDER BY bot_id, fence_token", list(self.accounts))
        owners: dict[int, list[tuple[int, datetime, datetime | None]]] = {}
        for bot_id, fence, acquired, released in rows:
            owners.setdefault(int(bot_id), []).append((int(fence), acquired, released))
        for bot_id, history in owners.items():
            assert sum(1 for _, _, released in history if released is None) <= 1, (bot_id, history)
            for (f1, a1, r1), (f2, a2, _) in itertools.pairwise(history):
                assert f2 > f1 and r1 is not None and a1 <= r1 <= a2, (bot_id, history)
        orders = self.cluster.sql("SELECT bot_id, fence_token, created_at FROM orders WHERE bot_id = ANY(%s)",
                                  list(self.accounts))
        for bot_id, fence, created in orders:
            spans = [(a, r) for f, a, r in owners[int(bot_id)] if f == fence]
            assert spans, (bot_id, fence)
            acquired, released = spans[0]
            assert acquired <= created and (released is None or created <= released), (bot_id, fence, created)
        return len(rows)

    def check_positions(self) -> None:
        """The exchange's position of each account is the one its bot recorded."""
        from tests.cluster.harness import request

        for bot, api_key in self.accounts.items():
            status, positions = request(f"{self.cluster.exchange_url}/_sim/positions?api_key={api_key}")
            assert status == 200
            pos = positions.get("BTCUSDT") or {}
            (row,) = self.cluster.sql("SELECT in_position, position_side, position_size FROM bot_state "
                                      "WHERE bot_id = %s", bot)
            if not row[0]:
                assert not pos or float(pos["amount"]) == 0, (bot, pos, row)
            else:
                assert pos["side"] == row[1] and abs(float(pos["amount"]) - float(row[2])) < 1e-9, (bot, pos, row)
