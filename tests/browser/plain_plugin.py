"""A third-party strategy written before ``indicators`` existed, for the browser tests' replica
(``ema_plain``: ema_cross's arithmetic under another name, every method but ``indicators``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tradebot.strategies import Candle, Candles, Decision, Signals, get_strategy


class EmaPlain:
    name: Final = "ema_plain"
    title: Final = "EMA cross (no indicators)"
    description: Final = "ema_cross under another name, from a plugin without indicators()."

    def __init__(self) -> None:
        self._inner = get_strategy("ema_cross")

    def parameters_schema(self) -> dict[str, Any]:
        return self._inner.parameters_schema()

    def parse_params(self, raw: Mapping[str, Any]) -> Any:
        return self._inner.parse_params(raw)

    def initial_state(self, params: Any) -> Any:
        return self._inner.initial_state(params)

    def decide(self, candle: Candle, state: Any, params: Any) -> tuple[Decision, Any]:
        return self._inner.decide(candle, state, params)

    def signals(self, candles: Candles, params: Any) -> Signals:
        return self._inner.signals(candles, params)

    def warmup_candles(self, params: Any) -> int:
        return self._inner.warmup_candles(params)

    def state_to_dict(self, state: Any) -> dict[str, Any]:
        return self._inner.state_to_dict(state)

    def state_from_dict(self, raw: Mapping[str, Any], params: Any) -> Any:
        return self._inner.state_from_dict(raw, params)


EMA_PLAIN: Final = EmaPlain()
