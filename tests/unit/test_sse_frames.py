"""SSE frames and event ids: pure, no loop."""

from __future__ import annotations

import json

from tradebot.http.sse_frames import EventKey, FrameCache, encode, event_key
from tradebot.runtime.events import BotEvent


def _key(event_id: str) -> EventKey:
    key = event_key(event_id)
    assert key is not None, event_id
    return key


def test_event_ids_order_like_redis_stream_ids() -> None:
    assert event_key("1700000000000-0") == (1700000000000, 0)
    assert event_key("5") == (5, 0)
    assert _key("9-10") > _key("9-9")
    assert _key("10-0") > _key("9-99")
    for bad in ("", "abc", "1-2-3", "-1", "1-", " 1-2", "1" * 21):
        assert event_key(bad) is None, bad


def test_ids_redis_cannot_hold_are_no_ids() -> None:
    assert event_key("18446744073709551615-18446744073709551615") == (2**64 - 1, 2**64 - 1)
    for bad in ("1-99999999999999999999", "18446744073709551616", "1-18446744073709551616", "\u0661-0"):
        assert event_key(bad) is None, bad


def test_a_frame_is_what_an_eventsource_parses() -> None:
    event = BotEvent("17-3", 5, "trade", {"price": 1.5, "note": "two\nlines"})
    frame = encode(event).decode()
    assert frame.endswith("\r\n\r\n")
    lines = frame.split("\r\n")
    assert lines[:2] == ["id: 17-3", "event: trade"]
    assert lines[2].startswith("data: ") and json.loads(lines[2][6:]) == event.data
    assert lines[3:] == ["", ""]


def test_the_cache_encodes_once_and_stays_bounded() -> None:
    cache = FrameCache(size=3)
    events = [BotEvent(f"{i}-0", 1, "state", {"n": i}) for i in range(5)]
    first = cache.get(events[0])
    assert cache.get(events[0])[1] is first[1]
    for e in events[1:]:
        cache.get(e)
    assert len(cache._frames) == 3
    assert (1, "0-0") not in cache._frames and (1, "4-0") in cache._frames
    # The same id on another bot is another event.
    assert cache.get(BotEvent("4-0", 2, "state", {"n": "other"}))[1] != cache.get(events[4])[1]


def test_a_combined_cursor_round_trips_and_refuses_what_it_is_not() -> None:
    from tradebot.http.sse_frames import decode_cursor, encode_cursor

    positions = {12: (1700000000000, 3), 5: (0, 0)}
    text = encode_cursor(positions)
    assert text == "5:0-0,12:1700000000000-3"  # by bot id, whatever the order of arrival
    assert decode_cursor(text) == positions
    for bad in ("", ",", "5", "5:", ":1-0", "5:1-0,5:2-0", "x:1-0", "5:1-99999999999999999999",
                "1" * 19 + ":1-0", "5:1-0,", "5:1-0;6:1-0"):
        assert decode_cursor(bad) is None, bad
