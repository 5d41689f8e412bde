"""The session cache's rules, with an injected clock: it answers only while its own heartbeats
arrive, forgets what an announcement touches, never stores a read that an announcement overtook,
and starts empty after a reconnect."""

from __future__ import annotations

import datetime as dt

import redis.asyncio as aioredis

from tradebot.accounts.session_cache import MAX_AGE_S, TRUST_S, SessionCache
from tradebot.accounts.users import UserRecord

USER = UserRecord(7, "a@example.com", True, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 3)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _cache() -> tuple[SessionCache, Clock]:
    clock = Clock()
    cache = SessionCache(aioredis.Redis(), "t", clock=clock)  # never connects: no heartbeat task here
    return cache, clock


def _beat(cache: SessionCache, clock: Clock) -> None:
    """What the heartbeat task and the subscription do: record a send, then deliver it."""
    cache._seq += 1
    cache._sent.append((cache._seq, clock.now))
    cache.on_heartbeat(str(cache._seq))


def test_nothing_is_served_or_stored_before_a_heartbeat_came_back() -> None:
    cache, clock = _cache()
    cache.subscription_up()
    cache.store(cache.epoch, USER, "jti-1")
    assert cache.user(7) is None and len(cache) == 0
    _beat(cache, clock)
    cache.store(cache.epoch, USER, "jti-1")
    assert cache.user(7) == USER and cache.token_not_revoked("jti-1", 7)
    assert not cache.token_not_revoked("jti-1", 8)  # a jti is only good for its own user


def test_the_cache_stops_answering_when_heartbeats_stop_and_answers_again_when_they_resume() -> None:
    cache, clock = _cache()
    cache.subscription_up()
    _beat(cache, clock)
    cache.store(cache.epoch, USER, "jti-1")
    clock.now += TRUST_S
    assert cache.user(7) is None and not cache.token_not_revoked("jti-1", 7)
    # A heartbeat sent but never delivered proves nothing.
    cache._seq += 1
    cache._sent.append((cache._seq, clock.now))
    assert cache.user(7) is None
    _beat(cache, clock)  # the same connection: every earlier announcement was delivered before it
    assert cache.user(7) == USER


def test_announcements_forget_what_they_touch_and_void_reads_in_flight() -> None:
    cache, clock = _cache()
    cache.subscription_up()
    _beat(cache, clock)
    other = UserRecord(8, "b@example.com", True, USER.created_at, 0)
    cache.store(cache.epoch, USER, "jti-1")
    cache.store(cache.epoch, other, "jti-2")
    before = cache.epoch
    cache.on_message('{"user_id": 7, "jti": "jti-1"}')
    assert not cache.token_not_revoked("jti-1", 7) and cache.user(7) == USER
    cache.on_message('{"user_id": 7}')
    assert cache.user(7) is None and cache.user(8) == other
    cache.store(before, USER, "jti-1")  # read before those announcements: not kept
    assert cache.user(7) is None and not cache.token_not_revoked("jti-1", 7)
    cache.on_message("not json")  # cannot tell whom it concerns
    assert cache.user(8) is None and len(cache) == 0


def test_a_reconnect_empties_the_cache_and_needs_a_new_heartbeat() -> None:
    cache, clock = _cache()
    cache.subscription_up()
    _beat(cache, clock)
    cache.store(cache.epoch, USER, "jti-1")
    cache.subscription_down()
    assert len(cache) == 0
    cache.subscription_up()
    assert cache.user(7) is None and not cache.trusted()
    _beat(cache, clock)
    assert cache.trusted() and cache.user(7) is None


def test_entries_are_read_again_after_their_maximum_age() -> None:
    cache, clock = _cache()
    cache.subscription_up()
    _beat(cache, clock)
    cache.store(cache.epoch, USER, "jti-1")
    clock.now += MAX_AGE_S
    _beat(cache, clock)
    assert cache.user(7) is None and not cache.token_not_revoked("jti-1", 7)
