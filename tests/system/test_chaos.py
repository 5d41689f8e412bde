"""Chaos: two replicas trade 50 bots on a random-walk simulator (a candle a second) while a scripted
schedule kills -9 and restarts replicas, restarts Redis and PostgreSQL (private servers of this test),
drops the exchange websockets and answers bursts of exchange requests with 5xx. Manual commands
(force-exit, force-entry, pause-entries, resume-entries) go to a quarter of the bots right before a
replica is killed during a 5xx burst.

After each fault the test waits (bounded) until every bot runs and decides on new candles again, and
records how long that took. At the end both replicas are stopped gracefully and the books are audited:

- no client order id accepted twice by the exchange, and none ever sent twice (no -4116 rejection);
- no manual command reached the exchange twice (under any fence), and none is left pending;
- every accepted order has its row (filled) and its one trade in PostgreSQL;
- every bot's position in PostgreSQL equals the exchange's;
- ownership (table bot_ownership): fences strictly increase per bot in order of acquisition; each
  ownership's row ended before the next began (within 1 s: a graceful hand-over releases the Redis
  lease first and writes released_at after, a few ms into its successor's row); every order row was written while its fence owned the bot;
  and the exchange received each order no later than one lease TTL after its fence's ownership ended
  (the owner stops trading before its lease can expire, so a later one would be two owners at once).

What can and cannot be asserted: released_at of a killed owner is written by its successor's claim,
so the table alone cannot show a zombie still trading; the exchange's own receive times, read against
the fence each client order id carries, can.

Environment: TRADEBOT_CHAOS_BOTS (default 50). Prints every fault and its outcome.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.api_client import Api, request
from tests.paper_audit import audit_paper_bots
from tests.processes import http_get, wait_until
from tests.simulator_process import SimulatorProcess, simulator_process
from tests.system.stack import REPO, PrivatePostgres, PrivateRedis, Replicas, sql, try_sql

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BOTS = int(os.environ.get("TRADEBOT_CHAOS_BOTS", "50"))
# Paper bots beside the live ones go through every fault too; their books are audited as well.
PAPER_BOTS = int(os.environ.get("TRADEBOT_CHAOS_PAPER_BOTS", "4"))
LEASE_TTL_MS = 5000
SYMBOLS = ("BTCUSDT", "ETHUSDT")
RECOVERY_TIMEOUT_S = 60.0
TX_SLACK = timedelta(seconds=1)
ARTIFACTS = REPO / "test-artifacts" / "chaos"
_CID = re.compile(r"^tb(\d+)-(\d+)-(\d+)([ocxmfe])$")
MANUAL_LEGS = frozenset({"f", "e"})  # force-exit, force-entry: numbered by the command's id


@dataclass
class Chaos:
    pg: PrivatePostgres
    redis: PrivateRedis
    sim: SimulatorProcess
    replicas: Replicas
    accounts: dict[int, tuple[str, str]] = field(default_factory=dict)  # bot → (exchange api key, symbol)
    paper: list[int] = field(default_factory=list)  # paper bots: no key, no exchange account
    api: Api | None = None
    paused: list[int] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def note(self, line: str) -> None:
        stamped = f"[t+{time.monotonic() - self.started:6.1f}s] {line}"
        self.log.append(stamped)
        print(stamped, flush=True)

    # ------------------------------------------------------------------ observing

    def states(self) -> dict[int, tuple[str, int, str | None]] | None:
        rows = try_sql(self.pg.url, "SELECT bot_id, status, coalesce(last_candle_time, 0), replica_id FROM bot_state "
                                    "WHERE bot_id = ANY(%s)", self.bots())
        return None if rows is None else {int(b): (str(s), int(t), r) for b, s, t, r in rows}

    def recovered(self, after: dict[int, int]) -> Callable[[], bool]:
        """Every bot runs on a live replica and has decided on a candle newer than `after[bot]`."""

        def check() -> bool:
            states = self.states()
            live = {n for n, node in self.replicas.nodes.items() if node.alive()}
            return states is not None and len(states) == len(self.bots()) and all(
                s == "running" and t > after.get(b, 0) and r in live for b, (s, t, r) in states.items())

        return check

    def bots(self) -> list[int]:
        return [*self.accounts, *self.paper]

    def candles_now(self) -> dict[int, int]:
        states = self.states()
        assert states is not None
        return {b: t for b, (_, t, _) in states.items()}

    def fault(self, what: str, inject: Callable[[], str | None], *, then: Callable[[], object] | None = None) -> float:
        """Inject, wait until every bot decides on new candles again, and record the outcome."""
        before = self.candles_now()
        injected = time.monotonic()
        detail = inject() or ""
        self.note(f"FAULT {what}{(' — ' + detail) if detail else ''}")
        try:
            if then is not None:
                then()
            wait_until(self.recovered(before), RECOVERY_TIMEOUT_S, f"every bot to trade again after {what}",
                       interval=0.25)
            took = time.monotonic() - injected
        except AssertionError:
            self.note(f"  OUTCOME {what}: NOT recovered within {RECOVERY_TIMEOUT_S:.0f}s: {self.summary()}")
            raise
        self.note(f"  OUTCOME {what}: every bot running and deciding again {took:.1f}s after the fault ({self.summary()})")
        return took

    def summary(self) -> str:
        states = self.states()
        if states is None:
            return "database unreachable"
        by = Counter((s, r) for s, _, r in states.values())
        return ", ".join(f"{n} {s}@{r}" for (s, r), n in sorted(by.items(), key=str))

    def sim_fault(self, body: dict[str, Any]) -> None:
        status, payload = request("POST", f"{self.sim.url}/_sim/faults", body)
        assert status == 204, payload

    def pace(self, seconds: float) -> None:
        """The schedule's own pacing: let the bots trade between faults."""
        time.sleep(seconds)

    # ------------------------------------------------------------------ faults

    def kill_replica(self, name: str) -> str:
        code = self.replicas.kill(name, signal.SIGKILL)
        return f"{name} exited {code}"

    def restart_replica(self, name: str) -> None:
        started = time.monotonic()
        self.replicas.start(name)
        self.note(f"  {name} restarted, answering /healthz after {time.monotonic() - started:.1f}s")

    def restart_redis(self) -> str:
        self.redis.restart()
        return "redis-server stopped (SIGTERM) and started empty on the same port"

    def restart_postgres(self) -> str:
        down = time.monotonic()
        self.pg.stop("immediate")
        self.pg.start()
        return f"pg_ctl stop -m immediate (a crash: WAL recovery on start) and start; down {time.monotonic() - down:.1f}s"

    def replicas_ready(self) -> None:
        took = wait_until(lambda: all(http_get(n.url + "/readyz")[0] == 200 for n in self.replicas.nodes.values()
                                      if n.alive()), RECOVERY_TIMEOUT_S, "every replica ready again", interval=0.25)
        self.note(f"  every replica's /readyz is 200 again after {took:.1f}s")

    def manual(self, bot: int, action: str, body: Any = None) -> int:
        assert self.api is not None
        status, payload = request("POST", f"{self.api.base}/api/v1/bots/{bot}/{action}", body,
                                  {"Authorization": f"Bearer {self.api.token}"})
        assert status in (202, 409), (bot, action, status, payload)
        return status

    def manual_commands(self) -> str:
        """A force-exit of half, or a force-entry when flat, on every 4th bot; two bots paused."""
        accepted: Counter[str] = Counter()
        for bot in self.bots()[::4]:
            for action, body in (("force-exit", {"pct": 50}), ("force-entry", {"side": "long"})):
                if self.manual(bot, action, body) == 202:
                    accepted[action] += 1
                    break
        self.paused = self.bots()[1:3]
        for bot in self.paused:
            self.manual(bot, "pause-entries")
        return f"manual commands accepted: {dict(accepted)}, entries paused on bots {self.paused}"

    def owners_of(self, name: str) -> int:
        states = self.states() or {}
        return sum(1 for _, _, r in states.values() if r == name)


def test_chaos_keeps_every_order_once_and_every_book_straight(tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg = PrivatePostgres()
    redis = PrivateRedis(tmp_path / "redis")
    try:
        pg.start()
        pg.create_database()
        redis.start()
        with simulator_process(tmp_path, "--mode", "random_walk", "--candle-seconds", "1", "--seed", "11") as sim:
            env = {
                "DATABASE_URL": pg.url,
                "REDIS_URL": redis.url,
                "TRADEBOT_EXCHANGE_URL": sim.url,
                "TRADEBOT_DATA_DIR": str(tmp_path / "var"),
                "TRADEBOT_JWT_SECRET": "c" * 48,
                "TRADEBOT_FERNET_KEYS": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
                "TRADEBOT_LEASE_TTL_MS": str(LEASE_TTL_MS),
                "TRADEBOT_RENEW_INTERVAL_MS": "1000",
                "TRADEBOT_LOG_LEVEL": "INFO",
            }
            replicas = Replicas(env, tmp_path)
            chaos = Chaos(pg, redis, sim, replicas)
            try:
                _run(chaos)
            finally:
                replicas.close()
                print("\nFAULTS AND OUTCOMES\n" + "\n".join(chaos.log), flush=True)
                _keep_logs(tmp_path)
    finally:
        redis.stop()
        pg.close(keep_log=ARTIFACTS / "postgres.log")


def _keep_logs(tmp_path: Path) -> None:
    """The replicas', simulator's and PostgreSQL's logs outlive pytest's tmp rotation (gitignored)."""
    for log in tmp_path.glob("*.log"):
        shutil.copyfile(log, ARTIFACTS / log.name)


def _run(chaos: Chaos) -> None:
    replicas, sim = chaos.replicas, chaos.sim
    replicas.start("r1")
    replicas.start("r2")
    api = Api(replicas.nodes["r1"].url).sign_up()
    chaos.api = api
    for i in range(BOTS):
        api_key, secret = sim.account()
        symbol = SYMBOLS[i % len(SYMBOLS)]
        # EMA(2) with shorts on one-second candles: a trade every few seconds per bot; no daily limit in the way.
        bot = api.create_bot(api.add_key(api_key, secret), symbol=symbol, ema_period=2, order_size_pct=20,
                             leverage=2, max_daily_trades=100_000, max_daily_loss_pct=100)
        chaos.accounts[bot] = (api_key, symbol)
    for i in range(PAPER_BOTS):
        chaos.paper.append(api.create_bot(None, symbol=SYMBOLS[i % len(SYMBOLS)], mode="paper", ema_period=2,
                                          order_size_pct=20, leverage=2, max_daily_trades=100_000,
                                          max_daily_loss_pct=100))
    for bot in chaos.bots():
        api.start(bot)
    took = wait_until(chaos.recovered({}), 90, f"all {BOTS} + {PAPER_BOTS} bots to run and decide", interval=0.25)
    chaos.note(f"{BOTS} bots and {PAPER_BOTS} paper bots running on r1+r2 after {took:.1f}s ({chaos.summary()})")
    chaos.pace(8)

    chaos.fault("kill -9 r1", lambda: chaos.kill_replica("r1"))
    chaos.fault("restart r1 (rejoins; the leader hands it bots back)", lambda: chaos.restart_replica("r1"),
                then=lambda: wait_until(lambda: chaos.owners_of("r1") > 0, RECOVERY_TIMEOUT_S, "r1 to own bots again"))
    chaos.pace(5)
    chaos.fault("drop every exchange websocket", lambda: chaos.sim_fault({"drop_websockets": True}))
    chaos.pace(5)
    chaos.fault("exchange 5xx burst: the next 30 REST requests fail",
                lambda: chaos.sim_fault({"fail_next_requests": 30}))
    chaos.pace(5)
    chaos.fault("restart Redis (comes back empty)", chaos.restart_redis)
    chaos.pace(5)
    chaos.fault("drop websockets and a 5xx burst of 20 at once",
                lambda: chaos.sim_fault({"drop_websockets": True, "fail_next_requests": 20}))
    chaos.pace(5)
    chaos.fault("restart PostgreSQL (immediate stop = crash)", chaos.restart_postgres, then=chaos.replicas_ready)
    chaos.pace(5)
    def manual_then_burst_then_kill_r2() -> str:
        sent = chaos.manual_commands()
        chaos.sim_fault({"fail_next_requests": 15})
        return f"{sent}; {chaos.kill_replica('r2')}"

    chaos.fault("manual commands, then kill -9 r2 during a 5xx burst of 15", manual_then_burst_then_kill_r2)
    chaos.fault("restart r2", lambda: chaos.restart_replica("r2"),
                then=lambda: wait_until(lambda: chaos.owners_of("r2") > 0, RECOVERY_TIMEOUT_S, "r2 to own bots again"))
    for bot in chaos.paused:
        chaos.manual(bot, "resume-entries")
    chaos.pace(8)

    final = chaos.candles_now()
    took = wait_until(chaos.recovered(final), RECOVERY_TIMEOUT_S, "every bot to decide once more", interval=0.25)
    chaos.note(f"end of schedule: every bot running again, deciding ({took:.1f}s) — {chaos.summary()}")
    for name in ("r1", "r2"):
        code = replicas.kill(name, signal.SIGTERM)
        chaos.note(f"graceful stop of {name}: exit {code}")
        assert code == 0, replicas.nodes[name].log_path.read_text()[-4000:]
    _audit(chaos)


def _audit(chaos: Chaos) -> None:
    url = chaos.pg.url
    accepted_total = 0
    by_fence: dict[tuple[int, int], list[datetime]] = {}
    paper_ids = {f"tb{bot}-" for bot in chaos.paper}
    for bot, (api_key, symbol) in chaos.accounts.items():
        orders = chaos.sim.orders(api_key)
        stray = [o for o in orders if any(o["client_order_id"].startswith(p) for p in paper_ids)]
        assert not stray, f"a paper bot's order reached the exchange: {stray}"
        accepted = [o for o in orders if o["status"] != "rejected"]
        accepted_total += len(accepted)
        ids = Counter(o["client_order_id"] for o in accepted)
        assert all(n == 1 for n in ids.values()), f"bot {bot}: a client order id accepted twice: {ids}"
        # A manual order's id carries its fence: the same command carried out again by a later owner
        # would be another id with the same command number and leg.
        commands = Counter((m.group(3), m.group(4)) for m in map(_CID.match, ids) if m and m.group(4) in MANUAL_LEGS)
        assert all(n == 1 for n in commands.values()), f"bot {bot}: a manual command sent twice: {commands}"
        resent = [o for o in orders if o.get("reject_code") == -4116]
        assert not resent, f"bot {bot}: a client order id sent twice: {resent}"
        rows = {cid: (status, trades) for cid, status, trades in sql(
            url, "SELECT o.client_order_id, o.status, (SELECT count(*) FROM trades t WHERE t.order_id = o.id) "
                 "FROM orders o WHERE o.bot_id = %s", bot)}
        for o in accepted:
            cid = o["client_order_id"]
            assert cid in rows, f"bot {bot}: order {cid} accepted by the exchange has no row"
            assert rows[cid] == ("filled", 1), f"bot {bot}: order {cid} is {rows[cid]} (status, trades)"
            m = _CID.match(cid)
            assert m is not None and int(m.group(1)) == bot, cid
            by_fence.setdefault((bot, int(m.group(2))), []).append(datetime.fromisoformat(o["received_at"]))
        position = chaos.sim.positions(api_key).get(symbol) or {}
        ((in_pos, side, size),) = sql(url, "SELECT in_position, position_side, position_size FROM bot_state "
                                           "WHERE bot_id = %s", bot)
        if not in_pos:
            assert not position or float(position["amount"]) == 0, (bot, position)
        else:
            assert position.get("side") == side and float(position["amount"]) == pytest.approx(float(size)), \
                (bot, position, side, size)
    ownerships, overlap = _check_ownership(url, chaos.bots(), by_fence)
    paper_fills = audit_paper_bots(lambda query, *args: sql(url, query, *args), chaos.paper)
    trades = sql(url, "SELECT count(*) FROM trades")[0][0]
    manual = sql(url, "SELECT count(*) FROM trades WHERE reason = 'manual'")[0][0]
    by_status = dict(sql(url, "SELECT status, count(*) FROM bot_commands GROUP BY status"))
    assert "pending" not in by_status, f"manual commands left pending: {by_status}"
    chaos.note(f"AUDIT: {accepted_total} orders accepted by the exchange, none twice, each with its row and "
               f"one trade ({trades} trades, {manual} manual; commands {by_status}, none sent twice); {BOTS} positions equal the exchange's; {ownerships} ownerships, "
               f"fences increasing, released_at at most {overlap.total_seconds() * 1000:.1f} ms after the "
               "successor's acquired_at (bookkeeping after a hand-over), no order outside its fence's ownership; "
               f"{PAPER_BOTS} paper bots: {paper_fills} virtual fills, none twice, each settled once, every "
               "virtual account equal to its trades and its bot's position, none on the exchange")
    assert accepted_total > BOTS, "the bots hardly traded: the test proved little"
    assert paper_fills > PAPER_BOTS, "the paper bots hardly traded: the test proved little"


def _check_ownership(url: str, bots: list[int],
                     exchange_times: dict[tuple[int, int], list[datetime]]) -> tuple[int, timedelta]:
    rows = sql(url, "SELECT bot_id, fence_token, replica_id, acquired_at, released_at FROM bot_ownership "
                    "WHERE bot_id = ANY(%s) ORDER BY bot_id, acquired_at, fence_token", bots)
    history: dict[int, list[tuple[int, str, datetime, datetime | None]]] = {}
    for bot, fence, replica, acquired, released in rows:
        history.setdefault(int(bot), []).append((int(fence), str(replica), acquired, released))
    ttl = timedelta(milliseconds=LEASE_TTL_MS)
    overlap = timedelta(0)
    for bot, spans in history.items():
        # After a graceful stop of every replica, no ownership is left open.
        assert all(r is not None for _, _, _, r in spans), (bot, spans)
        for (f1, _, a1, r1), (f2, _, a2, _) in itertools.pairwise(spans):
            assert f2 > f1, f"bot {bot}: fence went from {f1} to {f2} in order of acquisition"
            # A hand-over releases the Redis lease first and records released_at after, so the row
            # may end a moment after the successor's began; the order checks below are the strict ones.
            assert r1 is not None and a1 <= r1 <= a2 + TX_SLACK, \
                f"bot {bot}: ownership {f1} {a1}–{r1} overlaps {f2} from {a2}"
            overlap = max(overlap, r1 - a2)
    owned = {(b, f): (a, r) for b, spans in history.items() for f, _, a, r in spans}
    for bot, fence, created in sql(url, "SELECT bot_id, fence_token, created_at FROM orders WHERE bot_id = ANY(%s)",
                                   bots):
        # created_at, acquired_at and released_at are now(): each its transaction's start, hence the slack.
        acquired, released = owned[(int(bot), int(fence))]
        assert acquired - TX_SLACK <= created and (released is None or created <= released + TX_SLACK), \
            (bot, fence, created, acquired, released)
    for (bot, fence), times in exchange_times.items():
        acquired, released = owned[(bot, fence)]
        assert released is not None
        late = [t for t in times if t.astimezone(UTC) > released + ttl]
        assert not late, f"bot {bot}: fence {fence} ended {released}, yet the exchange got its orders at {late}"
    return len(rows), overlap
