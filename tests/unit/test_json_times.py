"""Every time in a response has one form, ISO 8601 UTC with microseconds and a Z, whichever path
formats it (orjson's own for UTC times with microseconds, iso_utc for the rest)."""

from __future__ import annotations

import datetime as dt
import random
import re

import orjson

from tradebot.http.json_response import dumps

ISO_UTC = re.compile(r'^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"$')


def test_times_are_iso_utc_with_microseconds_on_every_path() -> None:
    rng = random.Random(7)
    berlin = dt.timezone(dt.timedelta(hours=1))
    for _ in range(20_000):
        utc = dt.datetime(rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                          rng.randint(0, 59), rng.randint(0, 59), rng.choice([0, 1, 999_999, rng.randint(0, 999_999)]),
                          tzinfo=dt.UTC)
        for value in (utc, utc.replace(tzinfo=None), utc.astimezone(berlin) if utc.year > 1 else utc):
            text = dumps(value).decode()
            assert ISO_UTC.match(text), text
            assert dt.datetime.fromisoformat(orjson.loads(text)) == utc
