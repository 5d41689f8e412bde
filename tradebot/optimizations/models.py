"""Optimisations as the domain holds them: the request, the parsed search space, the trial rules.

A trial's parameters are ``fixed`` merged with one point of ``space``: the strategy's own parameters
beside the sizing keys, exactly what ``POST /backtests`` takes as ``parameters``; a trial is valid
when the backtest's own rules accept it (:func:`trial_is_valid`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tradebot.optimizations.search import Dimension
from tradebot.strategies import BacktestSettings, ParameterError, UnknownStrategyError, get_strategy
from tradebot.strategies.sweep import SIZING_KEYS, parse_trial

EXCHANGE: Final = "binanceusdm"
METHODS: Final = ("grid", "random", "tpe")
# Trials per chunk: what one worker claims and evaluates at once (the sweep's batch size).
CHUNK_TRIALS: Final = 8
# Trials a tpe round asks for before it needs the results (two chunks: two workers busy).
TPE_ROUND: Final = 2 * CHUNK_TRIALS


@dataclass(frozen=True, slots=True)
class OptimizationRequest:
    """What a user asked for, well-formed (the edge checked the types) but not yet checked against
    the markets, the strategy's parameter rules and the limits."""

    symbol: str
    timeframe: str
    start_time: dt.datetime
    end_time: dt.datetime
    strategy: str
    space: Mapping[str, Mapping[str, Any]]
    fixed: Mapping[str, Any]
    objective: str
    method: str
    max_trials: int
    test_fraction: float
    seed: int
    initial_balance: float
    fee_rate: float | None = None
    slippage_bps: float | None = None


@dataclass(frozen=True, slots=True)
class TrialRules:
    """What every trial of one optimisation shares: the strategy and the account settings."""

    strategy: str
    initial_balance: float
    fee_rate: float | None
    slippage_bps: float | None

    def valid(self, trial: Mapping[str, Any]) -> bool:
        return trial_is_valid(self, trial)


def trial_is_valid(rules: TrialRules, trial: Mapping[str, Any]) -> bool:
    try:
        parse_trial(rules.strategy, trial, initial_balance=rules.initial_balance, fee_rate=rules.fee_rate,
                    slippage_bps=rules.slippage_bps)  # fmt: skip
    except (ParameterError, UnknownStrategyError):
        return False
    return True


_SIZING_KINDS: Final = {
    "order_size_pct": "number",
    "leverage": "number",
    "allow_short": "boolean",
    "stop_loss_pct": "number",
    "take_profit_pct": "number",
}


def _kinds(strategy: str) -> dict[str, str]:
    """Each parameter a trial may set and its JSON type (integer, number, boolean)."""
    props = get_strategy(strategy).parameters_schema().get("properties", {})
    kinds = {name: str(schema.get("type", "number")) for name, schema in props.items()}
    kinds.update({k: v for k, v in _SIZING_KINDS.items() if k in SIZING_KEYS})
    return kinds


def _value_error(strategy: str, name: str, value: Any, kind: str) -> str | None:
    """Why ``value`` cannot be ``name`` on its own (None when it can); combinations of values are
    checked per trial, not here."""
    if kind == "boolean":
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if kind == "integer" and value != int(value):
        return f"must be an integer, got {value!r}"
    if name in _SIZING_KINDS:
        try:
            BacktestSettings.from_mapping({name: float(value)})
        except ParameterError as e:
            return e.message
        return None
    schema = get_strategy(strategy).parameters_schema()["properties"][name]
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return f"must be between {lo} and {hi}, got {value!r}"
    return None


def parse_space(
    strategy: str, space: Mapping[str, Mapping[str, Any]], fixed: Mapping[str, Any], method: str
) -> tuple[list[Dimension], list[tuple[str, str]]]:
    """The space's dimensions (in the order given) and the errors found, each naming its field
    (``space.<name>``, ``space.<name>.step``, ``fixed.<name>``)."""
    errors: list[tuple[str, str]] = []
    dims: list[Dimension] = []
    try:
        kinds = _kinds(strategy)
    except UnknownStrategyError:
        return [], []  # reported as `strategy` by the caller
    for name, value in fixed.items():
        if name not in kinds:
            errors.append((f"fixed.{name}", f"is not a parameter of {strategy} nor a sizing key"))
        elif (why := _value_error(strategy, name, value, kinds[name])) is not None:
            errors.append((f"fixed.{name}", why))
    if not space:
        errors.append(("space", "must name at least one parameter"))
    for name, raw in space.items():
        field = f"space.{name}"
        if name not in kinds:
            errors.append((field, f"is not a parameter of {strategy} nor a sizing key"))
            continue
        if name in fixed:
            errors.append((field, "is also in fixed; a parameter is either searched or fixed"))
            continue
        kind = kinds[name]
        if "values" in raw:
            values = raw["values"]
            extra = sorted(set(raw) - {"values"})
            if extra:
                errors.append((f"{field}.{extra[0]}", "is not allowed beside values"))
            elif not isinstance(values, list) or not values:
                errors.append((f"{field}.values", "must be a non-empty list"))
            else:
                bad = next(((v, w) for v in values if (w := _value_error(strategy, name, v, kind)) is not None), None)
                if bad is not None:
                    errors.append((f"{field}.values", f"{bad[0]!r}: {bad[1]}"))
                elif len({repr(v) for v in values}) != len(values):
                    errors.append((f"{field}.values", "must not repeat a value"))
                else:
                    dims.append(Dimension(name, values=tuple(int(v) if kind == "integer" else v for v in values)))
            continue
        if kind == "boolean":
            errors.append((field, "is true or false: give it as {values: [false, true]}"))
            continue
        unknown = sorted(set(raw) - {"min", "max", "step"})
        if unknown:
            errors.append((f"{field}.{unknown[0]}", "is not allowed (min, max, step or values)"))
            continue
        missing = [k for k in ("min", "max") if k not in raw]
        if missing:
            errors.append((f"{field}.{missing[0]}", "is required (or give values)"))
            continue
        lo, hi, step = raw["min"], raw["max"], raw.get("step")
        for key, v in (("min", lo), ("max", hi)):
            if (why := _value_error(strategy, name, v, kind)) is not None:
                errors.append((f"{field}.{key}", why))
        if any(f.startswith(field + ".") for f, _ in errors):
            continue
        if lo > hi:
            errors.append((f"{field}.max", f"must be at least min ({lo})"))
            continue
        if step is None:
            if method == "grid":
                errors.append((f"{field}.step", "is required for a grid"))
                continue
            if kind == "integer":
                step = 1
        elif isinstance(step, bool) or not isinstance(step, int | float) or not (math.isfinite(step) and step > 0):
            errors.append((f"{field}.step", f"must be a number > 0, got {step!r}"))
            continue
        elif kind == "integer" and step != int(step):
            errors.append((f"{field}.step", f"must be an integer, got {step!r}"))
            continue
        integer = kind == "integer"
        dims.append(Dimension(name, low=float(lo), high=float(hi), step=None if step is None else float(step),
                              integer=integer))  # fmt: skip
    return dims, errors


@dataclass(frozen=True, slots=True)
class OptimizationSpec:
    """An optimisation after every check; ``trials`` are the first ones to run (all of them for
    grid and random, the first round for tpe) and ``total`` how many it will run at most."""

    symbol: str
    timeframe: str
    start_time: dt.datetime
    end_time: dt.datetime
    strategy: str
    space: Mapping[str, Any]
    fixed: Mapping[str, Any]
    objective: str
    method: str
    max_trials: int
    test_fraction: float
    seed: int
    initial_balance: float
    fee_rate: float | None
    slippage_bps: float | None
    trials: tuple[Mapping[str, Any], ...]
    total: int
    exchange: str = EXCHANGE


def chunked(trials: tuple[Mapping[str, Any], ...] | list[dict[str, Any]], first: int = 0) -> list[tuple[int, list[Any]]]:
    """``(first trial number, trials)`` per chunk of :data:`CHUNK_TRIALS`."""
    items = list(trials)
    return [(first + i, [dict(t) for t in items[i : i + CHUNK_TRIALS]]) for i in range(0, len(items), CHUNK_TRIALS)]
