"""Turning indicator comparisons into targets, for both faces of a strategy.

CONTRACT.md: on each candle a strategy decides a target in {long, flat, short}; "unchanged" keeps
the previous target; the first target is flat; a short target is flat unless ``allow_short``.

Two shapes of rule cover the built-ins:

- a sign with ties (crossovers): long when ``up``, flat/short when ``down``, else the previous
  target; vectorised by :func:`hold_through_ties` as a forward fill;
- a small state machine (the reversion strategies): the next target is a table lookup
  ``table[previous, class]`` where ``class`` encodes the candle's comparisons; vectorised by
  :func:`run_machine`, exactly, for any table.

Plus the live face's shared bookkeeping: refusing stale candles, numbering target changes, and
(de)serialising a target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from tradebot.strategies.base import Target
from tradebot.strategies.candles import Candle
from tradebot.strategies.ema_cross import StaleCandleError

__all__ = [
    "STATES",
    "check_candle",
    "float_field",
    "hold_through_ties",
    "int_field",
    "machine_targets",
    "next_seq",
    "reversion_step",
    "reversion_targets",
    "run_machine",
    "short_or_flat",
    "target_from_json",
    "target_to_json",
]

STATES: Final = (Target.FLAT, Target.LONG, Target.SHORT)
"""Machine state ``i`` is the target ``STATES[i]`` (state 0, flat, is where every machine starts)."""

_STATE_CODES: Final = np.array([int(t) for t in STATES], dtype=np.int8)


def short_or_flat(allow_short: bool) -> Target:
    return Target.SHORT if allow_short else Target.FLAT


def hold_through_ties(up: NDArray[np.bool_], down: NDArray[np.bool_], allow_short: bool) -> NDArray[np.int8]:
    """Target codes of a sign rule: LONG where ``up``, SHORT (FLAT unless ``allow_short``) where
    ``down``, else the previous target, FLAT before the first ``up`` or ``down``."""
    m = up.shape[0]
    code = up.view(np.int8).copy()
    if allow_short:
        code -= down.view(np.int8)
    last = np.where(up | down, np.arange(m), -1)
    np.maximum.accumulate(last, out=last)
    out = code[np.maximum(last, 0)]
    out[last < 0] = int(Target.FLAT)
    return out


def run_machine(classes: NDArray[np.uint8], table: NDArray[np.uint8], initial: int = 0) -> NDArray[np.uint8]:
    """``state[t] = table[state[t-1], classes[t]]`` with ``state[-1] = initial``: the exact states
    of a finite state machine, vectorised.

    The series is cut into blocks; every block is run from each of the ``k`` possible start states
    at once (one numpy step per offset in a block, over all blocks), then a short loop over the
    blocks picks each block's real start state from the end state of the one before. Work is
    ``O(k * n)``, Python steps ``O(block + n / block)``.
    """
    k, c = table.shape
    m = classes.shape[0]
    if m == 0:
        return np.empty(0, dtype=np.uint8)
    if not 0 <= initial < k:
        raise ValueError(f"initial state {initial} is not one of the table's {k} states")
    block = max(16, min(4096, math.isqrt(m)))
    nb = -(-m // block)
    padded = np.full(nb * block, c, dtype=np.intp)  # class c: the identity, for the last block's tail
    padded[:m] = classes
    if padded[:m].max(initial=0) >= c:
        raise ValueError(f"a class code is outside the table's {c} classes")
    with_identity = np.concatenate([table.astype(np.intp), np.arange(k, dtype=np.intp)[:, None]], axis=1)
    lookup = np.ascontiguousarray(with_identity.T).ravel()  # lookup[cls * k + state]
    columns = np.ascontiguousarray(padded.reshape(nb, block).T) * k
    cur = np.repeat(np.arange(k, dtype=np.intp)[:, None], nb, axis=1)
    out = np.empty((block, k, nb), dtype=np.uint8)
    for j in range(block):
        cur = lookup[columns[j] + cur]
        out[j] = cur
    ends = out[block - 1].T.tolist()
    starts = np.empty(nb, dtype=np.intp)
    state = initial
    for b in range(nb):
        starts[b] = state
        state = ends[b][state]
    states = out[:, starts, np.arange(nb)]
    return np.ascontiguousarray(states.T).ravel()[:m]


def machine_targets(states: NDArray[np.uint8]) -> NDArray[np.int8]:
    """Target codes of machine states (see :data:`STATES`)."""
    return _STATE_CODES[states]


def check_candle(candle: Candle, last_candle_ts: int | None) -> float:
    """The candle's close, after refusing a stale candle (:class:`StaleCandleError`) and a
    non-finite or non-positive close (``ValueError``)."""
    if last_candle_ts is not None and candle.ts <= last_candle_ts:
        raise StaleCandleError(f"candle {candle.ts} is not after the last candle decided on ({last_candle_ts})")
    close = float(candle.close)
    if not (math.isfinite(close) and close > 0.0):
        raise ValueError(f"candle {candle.ts} has an invalid close {candle.close!r}")
    return close


def next_seq(previous: Target | None, target: Target | None, seq: int) -> tuple[bool, int]:
    """``(changed, seq)`` after deciding ``target`` where ``previous`` stood."""
    changed = target is not previous
    return changed, seq + 1 if changed else seq


def target_to_json(target: Target | None) -> str | None:
    return None if target is None else target.name.lower()


def target_from_json(raw: Mapping[str, Any], name: str) -> tuple[Target | None, int, int | None]:
    """``(target, seq, last_candle_ts)`` read from a saved state of strategy ``name``; raises
    ``ValueError`` on anything inconsistent."""
    target_raw = raw.get("target")
    target: Target | None
    if target_raw is None:
        target = None
    elif isinstance(target_raw, str) and target_raw.upper() in Target.__members__:
        target = Target[target_raw.upper()]
    else:
        raise ValueError(f"{name} state has an invalid target {target_raw!r}")
    seq = raw.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError(f"{name} state has an invalid seq {seq!r}")
    if (target is None) != (seq == 0):
        raise ValueError(f"{name} state target {target_raw!r} is inconsistent with seq {seq}")
    ts = raw.get("last_candle_ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
        raise ValueError(f"{name} state has an invalid last_candle_ts {ts!r}")
    return target, seq, ts


def int_field(raw: Mapping[str, Any], name: str, owner: str) -> int:
    v = raw.get(name)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{owner} state field {name!r} must be an integer, got {v!r}")
    return v


def float_field(raw: Mapping[str, Any], name: str, owner: str) -> float:
    v = raw.get(name)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"{owner} state field {name!r} must be a finite number, got {v!r}")
    return float(v)


# The reversion machine shared by rsi_reversion (value RSI; low, high, exit = oversold,
# overbought, exit_level) and bollinger_reversion (value close; low, high, exit = lower band,
# upper band, mid), written as CONTRACT.md words it:
#   from flat:  long if value < low, else short if value > high, else flat;
#   from long:  short if value > high, else flat if value >= exit, else long;
#   from short: long if value < low, else flat if value <= exit, else short;
# with allow_short false, "short" reads "flat". It needs low <= high.


def _reversion_rule(previous: Target, below: bool, above: bool, ge_exit: bool, le_exit: bool, short: Target) -> Target:
    if previous is Target.LONG:
        return short if above else Target.FLAT if ge_exit else Target.LONG
    if previous is Target.SHORT:
        return Target.LONG if below else Target.FLAT if le_exit else Target.SHORT
    return Target.LONG if below else short if above else Target.FLAT


def reversion_step(
    previous: Target | None, value: float, low: float, high: float, exit: float, allow_short: bool
) -> Target:
    """The live face of the reversion machine: the target after ``previous`` (``None``: flat)."""
    return _reversion_rule(
        Target.FLAT if previous is None else previous,
        value < low,
        value > high,
        value >= exit,
        value <= exit,
        short_or_flat(allow_short),
    )


def _reversion_table(allow_short: bool) -> NDArray[np.uint8]:
    """``table[state, cls]`` for ``cls = 3 * zone + side``: zone 0/1/2 = below low / between /
    above high, side 0/1/2 = below / at / above exit; built from the rule itself."""
    index = {t: i for i, t in enumerate(STATES)}
    table = np.empty((len(STATES), 9), dtype=np.uint8)
    for state, previous in enumerate(STATES):
        for zone in range(3):
            for side in range(3):
                nxt = _reversion_rule(previous, zone == 0, zone == 2, side >= 1, side <= 1, short_or_flat(allow_short))
                table[state, 3 * zone + side] = index[nxt]
    table.setflags(write=False)
    return table


_REVERSION_TABLES: Final = {allow: _reversion_table(allow) for allow in (False, True)}


def reversion_targets(
    value: NDArray[np.float64],
    low: float | NDArray[np.float64],
    high: float | NDArray[np.float64],
    exit: float | NDArray[np.float64],
    allow_short: bool,
) -> NDArray[np.int8]:
    """The vectorised face of the reversion machine over a series where ``value`` (and the
    thresholds) are defined, starting flat: the same comparisons as :func:`reversion_step`, run
    through :func:`run_machine`."""
    cls = np.greater_equal(value, low).view(np.uint8) + np.greater(value, high).view(np.uint8)
    cls *= 3
    cls += np.greater_equal(value, exit).view(np.uint8)
    cls += np.greater(value, exit).view(np.uint8)
    return machine_targets(run_machine(cls, _REVERSION_TABLES[allow_short]))
