"""Manual control on the real runtime: the API, the owner's actor, ccxt and the in-process simulator,
PostgreSQL and Redis; no mocks (CONTRACT.md "Protective orders and manual control").

force-exit closes a share of the position (rounded down to the lot step) and holds a full exit flat
until the strategy's target changes; force-entry opens a position the strategy then keeps until its
target changes, and is a 409 while the bot holds one; pause-entries stops the strategy's entries but
never its exits, and resume-entries lets the next decision take the current target. Every manual
order is recorded before it is sent, numbered by its command, and its trade carries reason "manual".
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.integration.auth_helpers import bearer, user_token
from tests.integration.runtime_helpers import (
    MINUTE,
    START_MS,
    candle_rows,
    create_api_key,
    create_bot,
    push_and_wait,
)
from tests.runtime_fixtures import manual_simulator
from tests.simulator_helpers import Credentials, SimControl
from tests.timing import eventually
from tradebot.config import Secrets
from tradebot.exchange.simulator import SimulatorConfig
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.runtime.mailbox import ManualCommands
from tradebot.runtime.risk import floor_to_step

Client = TestClient[web.Request, web.Application]
STEP = 0.001  # the simulator's BTCUSDT lot step
# EMA(5): flat, then above the EMA (target long), then far below it (target flat).
FLAT = [100.0] * 5
UP = [104.0, 108.0, 110.0, 112.0]


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()


@dataclass
class Owner:
    user_id: int
    key_id: int
    headers: dict[str, str]
    creds: Credentials


@pytest.fixture
async def owner(runtime_client: Client, pool: asyncpg.Pool, account: Credentials, test_secrets: Secrets) -> Owner:
    _, token = await user_token(runtime_client, "manual")
    me = await (await runtime_client.get("/api/v1/auth/me", headers=bearer(token))).json()
    key = await create_api_key(pool, me["id"], account, test_secrets)
    return Owner(me["id"], key, bearer(token), account)


class Run:
    """One running bot and the candles pushed to it so far."""

    def __init__(self, client: Client, runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, owner: Owner,
                 bot: int) -> None:
        self.client, self.runtime, self.pool, self.sim, self.owner, self.bot = client, runtime, pool, sim, owner, bot
        self.closes: list[float] = []

    async def push(self, *closes: float) -> None:
        for close in closes:
            self.closes.append(close)
            rows = candle_rows(self.closes, START_MS)
            await push_and_wait(self.runtime, self.sim, self.bot, rows[-1], what=f"a decision on {close}")

    async def post(self, action: str, body: Any = None, *, status: int = 202) -> dict[str, Any]:
        r = await self.client.post(f"/api/v1/bots/{self.bot}/{action}", json=body, headers=self.owner.headers)
        assert r.status == status, await r.text()
        out: dict[str, Any] = await r.json()
        return out

    async def trades(self) -> list[asyncpg.Record]:
        return list(await self.pool.fetch("SELECT * FROM trades WHERE bot_id = $1 ORDER BY id", self.bot))

    async def trades_settled(self, count: int) -> list[asyncpg.Record]:
        async def enough() -> list[asyncpg.Record]:
            trades = await self.trades()
            return trades if len(trades) >= count else []

        return await eventually(enough, what=f"{count} trades")

    async def command_done(self, command_id: int) -> asyncpg.Record:
        async def done() -> asyncpg.Record | None:
            row = await self.pool.fetchrow("SELECT * FROM bot_commands WHERE id = $1", command_id)
            return row if row is not None and row["status"] != "pending" else None

        return await eventually(done, what=f"command {command_id} to be carried out")

    async def state(self) -> dict[str, Any]:
        r = await self.client.get(f"/api/v1/bots/{self.bot}/state", headers=self.owner.headers)
        assert r.status == 200
        out: dict[str, Any] = await r.json()
        return out

    async def exchange_size(self) -> float:
        position = (await self.sim.positions(self.owner.creds.api_key)).get("BTCUSDT")
        if position is None or float(position["amount"]) == 0:
            return 0.0
        return float(position["amount"]) * (1 if position["side"] == "long" else -1)


async def _run(client: Client, runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, owner: Owner,
               **settings: Any) -> Run:
    values: dict[str, Any] = {"allow_short": False, "order_size_pct": 50.0, "leverage": 2, "max_daily_loss_pct": 100.0}
    values.update(settings)
    bot = await create_bot(pool, owner.user_id, None if settings.get("mode") == "paper" else owner.key_id, **values)
    runtime.poke()

    async def running() -> bool:
        return runtime.supervisor.actor(bot) is not None and await pool.fetchval(
            "SELECT status FROM bot_state WHERE bot_id = $1", bot) == "running"

    await eventually(running, what=f"bot {bot} to run")
    return Run(client, runtime, pool, sim, owner, bot)


async def test_force_exit_closes_half_rounded_down_then_all_and_stays_flat_until_the_target_changes(
    runtime_client: Client, runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, owner: Owner
) -> None:
    run = await _run(runtime_client, runtime, pool, sim, owner)
    await run.push(*FLAT, UP[0])
    [entry] = await run.trades_settled(1)
    size = float(entry["amount"])
    assert entry["reason"] == "signal" and entry["side"] == "buy"

    answer = await run.post("force-exit", {"pct": 50})
    assert answer["kind"] == "force_exit" and answer["status"] == "pending"
    command = await run.command_done(answer["id"])
    assert command["status"] == "done"
    half = (await run.trades_settled(2))[1]
    assert half["reason"] == "manual" and half["side"] == "sell"
    assert float(half["amount"]) == floor_to_step(size * 0.5, STEP) < size
    # Numbered by its command, never by a signal: the leg letter keeps the two apart.
    assert half["client_order_id"].endswith(f"-{answer['id']}f")
    left = round(size - float(half["amount"]), 6)
    assert await run.exchange_size() == pytest.approx(left)
    state = await run.state()
    assert state["position_side"] == "long" and state["position_size"] == pytest.approx(left)

    await run.push(UP[1])  # the target is still long: the rest is kept, nothing re-bought
    assert len(await run.trades()) == 2

    everything = await run.post("force-exit")  # no body: all of it
    await run.command_done(everything["id"])
    last = (await run.trades_settled(3))[2]
    assert last["reason"] == "manual" and float(last["amount"]) == pytest.approx(left)
    assert await run.exchange_size() == 0
    await run.push(UP[2], UP[3])  # still long: a forced exit is not undone on the same signal
    assert len(await run.trades()) == 3
    await run.post("force-exit", status=409)  # flat: nothing to exit

    await run.push(80.0, 120.0)  # flat, then long again: a new signal opens
    trades = await run.trades_settled(4)
    assert trades[3]["reason"] == "signal" and trades[3]["side"] == "buy"

    # The API lists the reason, and the stream carried every trade.
    r = await runtime_client.get(f"/api/v1/bots/{run.bot}/trades", headers=owner.headers)
    listed = (await r.json())["items"]
    assert [t["reason"] for t in listed] == ["signal", "manual", "manual", "signal"]
    events = await runtime.ctx.events.replay(run.bot, None)
    assert [e.data["reason"] for e in events if e.event == "trade"] == ["signal", "manual", "manual", "signal"]
    # Nothing was sent twice.
    audit = [a["client_order_id"] for a in await sim.orders(owner.creds.api_key)]
    assert len(audit) == len(set(audit)) == 4


async def test_force_entry_when_flat_is_held_until_the_target_changes_and_refused_in_a_position(
    runtime_client: Client, runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, owner: Owner
) -> None:
    run = await _run(runtime_client, runtime, pool, sim, owner)
    await run.push(*FLAT, 99.0)  # the target is flat (a first decision), nothing held
    answer = await run.post("force-entry", {"side": "long", "order_size_pct": 20})
    command = await run.command_done(answer["id"])
    assert command["status"] == "done", command["message"]
    [entry] = await run.trades_settled(1)
    assert entry["reason"] == "manual" and entry["side"] == "buy"
    assert float(entry["amount"]) == floor_to_step(10_000 * 0.20 * 2 / 99.0, STEP)
    assert entry["client_order_id"].endswith(f"-{answer['id']}e")
    assert await run.exchange_size() == pytest.approx(float(entry["amount"]))

    problem = await run.post("force-entry", {"side": "short"}, status=409)
    assert "force-exit it first" in problem["detail"]

    await run.push(98.0, 97.0)  # below the EMA, but the target has not changed: the position is held
    assert len(await run.trades()) == 1
    await run.push(105.0)  # the target changes to long: already long, kept
    assert len(await run.trades()) == 1
    await run.push(80.0)  # and to flat: the strategy closes it
    trades = await run.trades_settled(2)
    assert trades[1]["reason"] == "signal" and trades[1]["side"] == "sell"
    assert await run.exchange_size() == 0


async def test_paused_entries_never_open_but_exits_go_on_and_resume_takes_the_current_target(
    runtime_client: Client, runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, owner: Owner
) -> None:
    run = await _run(runtime_client, runtime, pool, sim, owner)
    await run.push(*FLAT)
    paused = await run.post("pause-entries")
    assert paused == {"id": None, "kind": "pause_entries", "status": "done"}
    assert (await run.state())["entries_paused"] is True
    events = await runtime.ctx.events.replay(run.bot, None)
    assert events[-1].event == "state" and events[-1].data["entries_paused"] is True

    await run.push(UP[0], UP[1])  # the target turns long: no entry while paused
    assert await run.trades() == []
    assert await sim.orders(owner.creds.api_key) == []
    # The decisions are still saved (a skipped entry leaves the strategy state to the batch writer).
    last = START_MS + (len(run.closes) - 1) * MINUTE

    async def saved() -> bool:
        return bool(await pool.fetchval("SELECT last_candle_time FROM bot_state WHERE bot_id = $1", run.bot) == last)

    await eventually(saved, what="the paused bot's decisions to be saved")

    await run.post("resume-entries")
    assert (await run.state())["entries_paused"] is False
    await run.push(UP[2])  # the next decision takes the current target
    [entry] = await run.trades_settled(1)
    assert entry["side"] == "buy" and entry["reason"] == "signal"

    await run.post("pause-entries")
    await run.push(80.0)  # an exit still happens while paused
    trades = await run.trades_settled(2)
    assert trades[1]["side"] == "sell" and trades[1]["reason"] == "signal"
    await run.push(120.0)  # long again, but paused: stays flat
    assert len(await run.trades()) == 2

    # Persisted: a new run of the bot (a restart, a takeover) is paused as well.
    first_run = (await run.state())["last_run_at"]
    await runtime.supervisor.kill(run.bot)
    runtime.poke()

    async def rerun() -> bool:
        state = await run.state()
        return runtime.supervisor.actor(run.bot) is not None and state["status"] == "running" \
            and state["last_run_at"] != first_run

    await eventually(rerun, what="the bot to run again")
    assert (await run.state())["entries_paused"] is True
    await run.push(121.0)
    assert len(await run.trades()) == 2


async def test_a_paper_bot_takes_manual_commands_on_its_virtual_account(
    runtime_client: Client, runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, owner: Owner
) -> None:
    run = await _run(runtime_client, runtime, pool, sim, owner, mode="paper", paper_balance=Decimal(10_000),
                     paper_fee_rate=0.0004, paper_slippage_bps=0.0)
    await run.push(*FLAT)
    entered = await run.post("force-entry", {"side": "long"})
    await run.command_done(entered["id"])
    [entry] = await run.trades_settled(1)
    assert entry["reason"] == "manual" and entry["paper"] is True
    exited = await run.post("force-exit", {"pct": 100})
    await run.command_done(exited["id"])
    trades = await run.trades_settled(2)
    assert trades[1]["reason"] == "manual" and trades[1]["paper"] is True
    assert float(trades[1]["amount"]) == float(entry["amount"])
    assert (await run.state())["in_position"] is False
    assert await sim.orders(owner.creds.api_key) == []  # paper: nothing reached the exchange


async def test_a_command_whose_order_reached_the_account_is_not_carried_out_again(
    runtime_client: Client, runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, owner: Owner
) -> None:
    """As after a failover: an earlier owner sent the command's order and its fill was settled
    (reconciliation), but the owner died before marking the command done. The next reading of the
    commands only marks it done."""
    run = await _run(runtime_client, runtime, pool, sim, owner)
    await run.push(*FLAT, UP[0])
    await run.trades_settled(1)
    command_id = await pool.fetchval(
        "INSERT INTO bot_commands (bot_id, user_id, kind, pct) VALUES ($1, $2, 'force_exit', 100) RETURNING id",
        run.bot, owner.user_id)
    await pool.execute(
        """INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, intent, signal_seq,
                               fence_token, status, reason, command_id)
           VALUES ($1, $2, $3, 'BTC/USDT:USDT', 'sell', 1, 'close_long:manual', $4, 1, 'filled', 'manual', $4)""",
        run.bot, owner.user_id, f"tb{run.bot}-old-{command_id}f", command_id)
    assert runtime.supervisor.send(run.bot, ManualCommands())
    command = await run.command_done(command_id)
    assert command["status"] == "done"
    assert len(await sim.orders(owner.creds.api_key)) == 1  # only the signal's entry
    assert (await run.state())["in_position"] is True


async def test_manual_commands_are_scoped_checked_and_validated(
    runtime_client: Client, runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, owner: Owner
) -> None:
    run = await _run(runtime_client, runtime, pool, sim, owner)
    _, other_token = await user_token(runtime_client, "other")
    actions: list[tuple[str, Any]] = [("force-exit", None), ("force-entry", {"side": "long"}),
                                      ("pause-entries", None), ("resume-entries", None)]
    for action, body in actions:
        r = await runtime_client.post(f"/api/v1/bots/{run.bot}/{action}", json=body, headers=bearer(other_token))
        assert r.status == 404, action
        r = await runtime_client.post(f"/api/v1/bots/{run.bot + 1000}/{action}", json=body, headers=owner.headers)
        assert r.status == 404, action

    exits: list[tuple[Any, str]] = [({"pct": 0}, "pct"), ({"pct": 100.5}, "pct"), ({"pct": "50"}, "pct"),
                                    ({"percent": 50}, "percent")]
    for body, field in exits:
        problem = await run.post("force-exit", body, status=422)
        assert [e["field"] for e in problem["errors"]] == [field], problem
    entries: list[tuple[Any, str]] = [({}, "side"), ({"side": "up"}, "side"),
                                      ({"side": "long", "order_size_pct": 0}, "order_size_pct")]
    for body, field in entries:
        problem = await run.post("force-entry", body, status=422)
        assert [e["field"] for e in problem["errors"]] == [field], problem
    assert await pool.fetchval("SELECT count(*) FROM bot_commands") == 0  # nothing half-written

    stopped = await create_bot(pool, owner.user_id, owner.key_id, active=False, symbol="ETH/USDT:USDT")
    for action, body in actions:
        r = await runtime_client.post(f"/api/v1/bots/{stopped}/{action}", json=body, headers=owner.headers)
        assert r.status == 409, action
        assert "not running" in (await r.json())["detail"]


async def test_a_command_left_by_a_stopped_run_is_void_when_the_bot_starts_again(
    runtime_client: Client, runtime: BotRuntime, pool: asyncpg.Pool, sim: SimControl, owner: Owner
) -> None:
    bot = await create_bot(pool, owner.user_id, owner.key_id, active=False)
    left = await pool.fetchval(
        "INSERT INTO bot_commands (bot_id, user_id, kind, side) VALUES ($1, $2, 'force_entry', 'long') RETURNING id",
        bot, owner.user_id)
    r = await runtime_client.post(f"/api/v1/bots/{bot}/start", headers=owner.headers)
    assert r.status == 202, await r.text()
    row = await pool.fetchrow("SELECT status, message FROM bot_commands WHERE id = $1", left)
    assert row["status"] == "refused" and "stopped before" in row["message"]
    run = Run(runtime_client, runtime, pool, sim, owner, bot)

    async def running() -> bool:
        return runtime.supervisor.actor(bot) is not None and (await run.state())["status"] == "running"

    await eventually(running, what="the bot to run")
    await run.push(*FLAT)
    assert await run.trades() == [] and await sim.orders(owner.creds.api_key) == []
