"""Binance's request weights and the per-minute count it reports in `X-MBX-USED-WEIGHT-1M`.

The simulator counts and reports, like Binance, but does not refuse on the count: a test that wants
a 429 asks for it through `/_sim/faults` (`rate_limit_next_requests`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
MINUTE_MS = 60_000

Weight = int | Callable[[Mapping[str, str]], int]


def _limit(params: Mapping[str, str], default: int) -> int:
    try:
        return int(params.get("limit") or default)
    except ValueError:
        return default


def klines_weight(params: Mapping[str, str]) -> int:
    limit = _limit(params, 500)
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def depth_weight(params: Mapping[str, str]) -> int:
    limit = _limit(params, 500)
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def by_symbol(with_symbol: int, without: int) -> Callable[[Mapping[str, str]], int]:
    """Endpoints that weigh more when they answer for every symbol at once."""

    def weight(params: Mapping[str, str]) -> int:
        return with_symbol if params.get("symbol") else without

    return weight


def weight_of(weight: Weight, params: Mapping[str, str]) -> int:
    return weight(params) if callable(weight) else weight


class UsedWeight:
    """The weight used in the current wall-clock minute (Binance counts per IP; the simulator per server)."""

    def __init__(self) -> None:
        self._minute = -1
        self._used = 0

    def add(self, now_ms: int, weight: int) -> int:
        minute = now_ms // MINUTE_MS
        if minute != self._minute:
            self._minute, self._used = minute, 0
        self._used += weight
        return self._used
