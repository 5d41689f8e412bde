"""The range of times the API accepts from clients.

A time before 2000 is a typo or a probe, never a market: year 1 would be stored, then shown as
`1-01-01T…` and compared with "now" as if it were real. Every request model that takes a time calls
`accepted_time` after making it UTC-aware, so the rule and its message are the same everywhere.
"""

from __future__ import annotations

import datetime as dt

EARLIEST_ACCEPTED = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def accepted_time(value: dt.datetime) -> dt.datetime:
    """`value` (timezone-aware) itself, or ValueError naming the earliest accepted time."""
    if value < EARLIEST_ACCEPTED:
        raise ValueError("must be on or after 2000-01-01T00:00:00Z")
    return value
