"""The supervisor's restart policy, with fake actors and an injected clock: no network, no waiting."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.timing import ManualClock
from tradebot.backoff import no_jitter
from tradebot.runtime.bot_actor import BotFailed, BotStopped, Lease
from tradebot.runtime.mailbox import Mailbox, Stop
from tradebot.runtime.supervisor import Supervisor


class ScriptedActor:
    """Runs one step of a script: raise an exception, return, or wait for a Stop."""

    def __init__(self, step: Any, mailbox: Mailbox) -> None:
        self.step = step
        self.mailbox = mailbox

    async def run(self) -> None:
        if self.step == "wait":
            while not isinstance(await self.mailbox.get(), Stop):
                pass
            return
        if isinstance(self.step, BaseException):
            raise self.step


def _supervisor(script: list[Any], clock: ManualClock, failed: list[str], exited: list[int],
                **kwargs: Any) -> Supervisor:
    steps = iter(script)

    async def on_failed(lease: Lease, message: str) -> None:
        failed.append(message)

    async def on_exit(lease: Lease) -> None:
        exited.append(lease.bot_id)

    kwargs.setdefault("rng", no_jitter)  # the delays' ceilings, so the tests can name them
    return Supervisor(lambda lease, mailbox: ScriptedActor(next(steps), mailbox),  # type: ignore[arg-type,return-value]  # a scripted stand-in for BotActor
                      on_failed=on_failed, on_exit=on_exit, clock=clock, **kwargs)


def _lease(bot: int = 7, valid: bool = True) -> Lease:
    return Lease(bot, 1, lambda: valid)


async def _finished(sup: Supervisor) -> None:
    for _ in range(1000):
        if not sup.running():
            return
        await asyncio.sleep(0)
    raise AssertionError("supervised bot did not finish")


async def test_a_crash_is_restarted_with_exponential_backoff() -> None:
    clock, failed, exited = ManualClock(), list[str](), list[int]()
    sup = _supervisor([RuntimeError("boom"), RuntimeError("boom"), RuntimeError("boom"), None], clock, failed,
                      exited)
    sup.start(_lease())
    await _finished(sup)
    assert clock.slept == [1.0, 2.0, 4.0]
    assert sup.restarts == 3 and failed == [] and exited == [7]


async def test_a_cancellation_from_inside_the_actor_is_a_crash_not_a_silent_end() -> None:
    # An awaited future that another task cancelled raises CancelledError in the actor: restart it.
    clock, failed, exited = ManualClock(), list[str](), list[int]()
    sup = _supervisor([asyncio.CancelledError(), None], clock, failed, exited)
    sup.start(_lease())
    await _finished(sup)
    assert sup.restarts == 1 and failed == [] and exited == [7]


async def test_restart_delays_are_fully_jittered() -> None:
    # Actors that crash on one cause (an exchange outage) must not all come back at the same moment.
    clock, failed, exited = ManualClock(), list[str](), list[int]()
    sup = _supervisor([RuntimeError("boom"), RuntimeError("boom"), None], clock, failed, exited, rng=lambda: 0.25)
    sup.start(_lease())
    await _finished(sup)
    assert clock.slept == [0.25, 0.5]


async def test_the_restart_budget_ends_in_a_visible_error() -> None:
    clock, failed, exited = ManualClock(), list[str](), list[int]()
    sup = _supervisor([ValueError(f"crash {i}") for i in range(4)], clock, failed, exited, max_restarts=3,
                      window_s=300)
    sup.start(_lease())
    await _finished(sup)
    assert len(failed) == 1
    assert failed[0].startswith("stopped after 4 crashes in 300s; last error: ValueError: crash 3")
    assert exited == [7]


async def test_the_default_budget_is_five_restarts_and_the_sixth_crash_is_an_error() -> None:
    # README.md states this budget; the two must agree.
    clock, failed, exited = ManualClock(), list[str](), list[int]()
    sup = _supervisor([RuntimeError(f"crash {i}") for i in range(5)] + [None], clock, failed, exited)
    sup.start(_lease())
    await _finished(sup)
    assert sup.restarts == 5 and failed == [] and clock.slept == [1.0, 2.0, 4.0, 8.0, 16.0]
    clock, failed, exited = ManualClock(), list[str](), list[int]()
    sup = _supervisor([RuntimeError(f"crash {i}") for i in range(6)], clock, failed, exited)
    sup.start(_lease())
    await _finished(sup)
    assert sup.restarts == 5
    assert failed == ["stopped after 6 crashes in 300s; last error: RuntimeError: crash 5"]


async def test_old_crashes_leave_the_window() -> None:
    clock, failed, exited = ManualClock(), list[str](), list[int]()
    # Backoff is capped at 100 s, so each crash is more than the 150 s window after the one before
    # the previous: the budget never fills up.
    sup = _supervisor([RuntimeError("x")] * 6 + [None], clock, failed, exited, max_restarts=2, window_s=150,
                      base_backoff_s=100, max_backoff_s=100)
    sup.start(_lease())
    await _finished(sup)
    assert failed == [] and sup.restarts == 6


async def test_bot_failed_is_not_retried() -> None:
    clock, failed, exited = ManualClock(), list[str](), list[int]()
    sup = _supervisor([BotFailed("insufficient balance")], clock, failed, exited)
    sup.start(_lease())
    await _finished(sup)
    assert failed == ["insufficient balance"] and clock.slept == []


async def test_a_deliberate_end_is_not_a_crash() -> None:
    clock, failed, exited = ManualClock(), list[str](), list[int]()
    sup = _supervisor([BotStopped("wound down")], clock, failed, exited)
    sup.start(_lease())
    await _finished(sup)
    assert failed == [] and sup.restarts == 0 and exited == [7]


async def test_no_restart_without_a_valid_lease() -> None:
    clock, failed, exited = ManualClock(), list[str](), list[int]()
    sup = _supervisor([RuntimeError("boom"), None], clock, failed, exited)
    sup.start(_lease(valid=False))
    await _finished(sup)
    assert sup.restarts == 0 and clock.slept == []


async def test_stop_reaches_the_actor_and_kill_cancels_it() -> None:
    clock, failed, exited = ManualClock(), list[str](), list[int]()
    sup = _supervisor(["wait", "wait"], clock, failed, exited)
    sup.start(_lease(1))
    sup.start(_lease(2))
    await asyncio.sleep(0)
    await sup.stop(1, Stop(), timeout=1)
    assert sup.running() == {2}
    await sup.kill(2)
    assert sup.running() == set() and sorted(exited) == [1, 2]


async def test_a_stop_sent_during_backoff_reaches_the_next_incarnation() -> None:
    clock, failed, exited = ManualClock(), list[str](), list[int]()
    sup = _supervisor([RuntimeError("boom"), "wait"], clock, failed, exited)
    sup.start(_lease())
    sup.send(7, Stop())  # queued in the mailbox that outlives the crashed actor
    await _finished(sup)
    assert sup.restarts == 1 and exited == [7]
