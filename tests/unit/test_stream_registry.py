"""The per-replica registry of open streams: announcements end the matching streams, a credential
change re-checks only that user's streams, in one batch, and a lost subscription re-checks all."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tradebot.accounts.session_events import TokenRef
from tradebot.http.stream_registry import StreamRegistry

FAR = 2**40


class Check:
    """The batch token check, answering from a set of stale jtis and counting its calls."""

    def __init__(self) -> None:
        self.stale: set[str] = set()
        self.calls: list[list[str]] = []

    async def __call__(self, tokens: Sequence[TokenRef]) -> set[str]:
        self.calls.append([t.jti for t in tokens])
        return {t.jti for t in tokens} & self.stale


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_logout_ends_only_that_tokens_streams() -> None:
    check = Check()
    reg = StreamRegistry(check)
    reg.subscription_up()
    a1, a2, b = reg.add(1, "a", 0, FAR), reg.add(1, "b", 0, FAR), reg.add(2, "c", 0, FAR)
    reg.on_message(b'{"user_id": 1, "jti": "a"}')
    assert a1.ended.is_set() and a1.reason == "revoked"
    assert not a2.ended.is_set() and not b.ended.is_set()
    assert check.calls == []  # a jti needs no database
    await reg.close()


async def test_a_credential_change_rechecks_that_users_streams_in_one_batch() -> None:
    check = Check()
    reg = StreamRegistry(check)
    reg.subscription_up()
    old = [reg.add(1, f"old{i}", 0, FAR) for i in range(5)]
    new, other = reg.add(1, "new", 1, FAR), reg.add(2, "x", 0, FAR)
    check.stale = {f"old{i}" for i in range(5)}
    reg.on_message(b'{"user_id": 1}')
    await settle()
    assert len(check.calls) == 1 and sorted(check.calls[0]) == sorted([*check.stale, "new"])
    assert all(h.ended.is_set() for h in old)
    assert not new.ended.is_set() and not other.ended.is_set()
    await reg.close()


async def test_an_announcement_just_before_registration_still_applies() -> None:
    check = Check()
    reg = StreamRegistry(check)
    reg.subscription_up()
    reg.on_message(b'{"user_id": 1, "jti": "late"}')
    assert reg.add(1, "late", 0, FAR).ended.is_set()
    await reg.close()


async def test_an_expired_token_ends_by_its_timer() -> None:
    reg = StreamRegistry(Check(), wall_clock=lambda: 1000.0)
    reg.subscription_up()
    handle = reg.add(1, "a", 0, 1000)  # accepted until now
    await asyncio.wait_for(handle.ended.wait(), 1)
    assert handle.reason == "expired"
    await reg.close()


async def test_while_the_subscription_is_down_all_streams_are_checked_in_one_batch() -> None:
    check = Check()
    reg = StreamRegistry(check)
    reg.subscription_up()
    handles = [reg.add(u, f"t{u}", 0, FAR) for u in range(10)]
    check.stale = {"t3"}
    reg.subscription_down()
    await settle()
    assert check.calls and len(check.calls[0]) == 10
    assert handles[3].ended.is_set() and sum(h.ended.is_set() for h in handles) == 1
    reg.subscription_up()  # back: one more batch for what was announced meanwhile
    await settle()
    assert len(check.calls) == 2
    await reg.close()


async def test_malformed_announcements_are_ignored() -> None:
    reg = StreamRegistry(Check())
    handle = reg.add(1, "a", 0, FAR)
    for raw in (b"", b"[]", b'{"jti": "a"}', b'{"user_id": "1", "jti": "a"}', b'{"user_id": true}', b"\xff"):
        reg.on_message(raw)
    assert not handle.ended.is_set()
    await reg.close()


async def test_a_sweep_catches_what_no_announcement_said() -> None:
    check = Check()
    reg = StreamRegistry(check, sweep_s=0.01)
    reg.subscription_up()
    handle = reg.add(1, "a", 0, FAR)
    check.stale = {"a"}  # revoked, but the announcement was never published
    await asyncio.wait_for(handle.ended.wait(), 2)
    await reg.close()
