"""A bot's strategy as its actor runs it: resolved through the registry, so any registered
strategy (built-in or plugin) runs live, with the JSON its state is saved as.

Pure (no I/O, no clock). The strategy's own state stays opaque here: what the actor needs of it
(the standing target, its signal number, the last candle decided on) is read from the strategy's
decisions, so a plugin's state need not have any particular field.

Saved form (``bot_state.strategy_state``)::

    {"strategy": name, "parameters": {...every parameter, allow_short}, "state": <state_to_dict>,
     "target": "long"|"flat"|"short"|null, "seq": n, "last_candle_ts": ms|null,
     "timeframe": tf, "stopped_out_seq": n|null}

Before the actor read the registry it saved ``{<strategy name>: <state_to_dict>, "timeframe": tf,
"stopped_out_seq": n}``, the state carrying ``target``, ``seq`` and ``last_candle_ts`` itself; that
form is still read, so bots running across the upgrade resume instead of warming up again.
A saved state made for other parameters, another timeframe or another strategy is not resumed:
the bot warms up from history instead (CONTRACT.md: a state is the one its warm-up reaches).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from tradebot.strategies.base import Decision, Strategy, Target, get_strategy
from tradebot.strategies.candles import Candle
from tradebot.strategies.parameters import ALLOW_SHORT
from tradebot.strategies.targets import target_from_json, target_to_json

__all__ = ["LiveStrategy", "Progress", "Restored"]


@dataclass(frozen=True, slots=True)
class Progress:
    """Where the strategy stands: the target it wants (None before its first decision), the
    number of target changes so far (client order ids use it) and the last candle decided on."""

    target: Target | None = None
    seq: int = 0
    last_candle_ts: int | None = None


@dataclass(frozen=True, slots=True)
class LiveStrategy:
    """One bot's strategy, parameters and live state; ``decide`` gives the next one."""

    strategy: Strategy[Any, Any]
    params: Any
    parameters: Mapping[str, Any]  # every parameter's value plus allow_short, as saved
    state: Any
    progress: Progress = Progress()

    @classmethod
    def fresh(cls, name: str, parameters: Mapping[str, Any], allow_short: bool) -> LiveStrategy:
        """The state before any candle. Raises ``UnknownStrategyError`` (not installed here) or
        ``ParameterError`` (stored parameters the strategy refuses)."""
        strategy = get_strategy(name)
        params = strategy.parse_params({**parameters, ALLOW_SHORT: allow_short})
        resolved = {**params.to_dict(), ALLOW_SHORT: allow_short}
        return cls(strategy, params, resolved, strategy.initial_state(params))

    @property
    def name(self) -> str:
        return self.strategy.name

    def warmup_candles(self) -> int:
        return self.strategy.warmup_candles(self.params)

    def decide(self, candle: Candle) -> tuple[Decision, LiveStrategy]:
        decision, state = self.strategy.decide(candle, self.state, self.params)
        progress = Progress(decision.target, decision.seq, decision.candle_ts)
        return decision, replace(self, state=state, progress=progress)

    def saved(self, timeframe: str, stopped_out_seq: int | None) -> dict[str, Any]:
        p = self.progress
        return {
            "strategy": self.name,
            "parameters": dict(self.parameters),
            "state": self.strategy.state_to_dict(self.state),
            "target": target_to_json(p.target),
            "seq": p.seq,
            "last_candle_ts": p.last_candle_ts,
            "timeframe": timeframe,
            "stopped_out_seq": stopped_out_seq,
        }

    def restored(self, saved: Mapping[str, Any], timeframe: str) -> Restored | None:
        """This strategy resumed from ``saved`` (a fresh one's parameters), or None when ``saved``
        does not fit them (then the bot warms up from history)."""
        if saved.get("timeframe") != timeframe:
            return None
        try:
            raw_state: Any
            progress_of: Any
            if "strategy" in saved:
                if saved["strategy"] != self.name or saved.get("parameters") != dict(self.parameters):
                    return None
                raw_state, progress_of = saved.get("state"), saved
            else:  # the form saved before the registry: the state under its strategy's name
                raw_state = progress_of = saved.get(self.name)
            if not isinstance(raw_state, Mapping) or not isinstance(progress_of, Mapping):
                return None
            state = self.strategy.state_from_dict(raw_state, self.params)
            target, seq, ts = target_from_json(progress_of, self.name)
            stopped_out_seq = saved.get("stopped_out_seq")
            if stopped_out_seq is not None and (isinstance(stopped_out_seq, bool) or not isinstance(stopped_out_seq, int)):
                return None
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        return Restored(replace(self, state=state, progress=Progress(target, seq, ts)), stopped_out_seq)


@dataclass(frozen=True, slots=True)
class Restored:
    live: LiveStrategy
    stopped_out_seq: int | None
