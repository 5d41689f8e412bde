"""The search space and the three ways through it: grid, random and tpe (Optuna).

A space maps parameter names (a strategy's own, or the sizing keys) to a dimension: ``{min, max,
step}`` (``step`` optional for random and tpe: a continuous range) or ``{values: [...]}``. A trial
is ``fixed`` merged with one point of the space, exactly what ``POST /backtests`` takes as
``parameters``. Combinations the strategy refuses (``fast_period >= slow_period``) are skipped,
never run. Every method is deterministic given its seed: grid in row-major order of the space's
keys as given; random from ``numpy.random.default_rng(seed)``; tpe from Optuna's TPE sampler
seeded with ``seed`` plus the number of trials already told, rebuilt from the finished trials on
every round, so whichever replica asks for the next round gets the same answer.

CPU only (no I/O); the worker calls the tpe round in an executor.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

__all__ = [
    "MAX_ATTEMPTS_PER_TRIAL",
    "TPE_FLOOR",
    "Dimension",
    "grid_trials",
    "random_trials",
    "tpe_round",
]

# How many refused or repeated points random and tpe may draw per trial they deliver before they
# conclude the space holds no more (a small or mostly invalid space ends the search early).
MAX_ATTEMPTS_PER_TRIAL: Final = 50
# Optuna needs finite values; a trial whose objective is not finite is told this instead.
TPE_FLOOR: Final = -1e12
# A grid dimension holds at most this many points (the whole grid is bounded by max_trials anyway).
MAX_POINTS: Final = 100_000

Valid = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class Dimension:
    """One axis of the space: ``values`` (a list) or a range ``low..high`` with an optional
    ``step``; ``integer`` ranges draw integers."""

    name: str
    values: tuple[Any, ...] | None = None
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    integer: bool = False

    def points(self) -> list[Any]:
        """Every point of a discrete dimension, in order (raises ValueError for a continuous one)."""
        if self.values is not None:
            return list(self.values)
        if self.step is None:
            raise ValueError(f"{self.name} is a continuous range: a grid needs its step")
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        if count > MAX_POINTS:
            raise ValueError(f"{self.name} has {count:,} points; at most {MAX_POINTS:,}")
        if self.integer:
            return [round(self.low + i * self.step) for i in range(count)]
        # Rounded to 12 significant digits so 0.1 + 2 * 0.1 reads 0.3, as a person wrote it.
        return [float(f"{self.low + i * self.step:.12g}") for i in range(count)]


def grid_trials(space: Sequence[Dimension], fixed: Mapping[str, Any], valid: Valid, limit: int) -> list[dict[str, Any]]:
    """Every valid point of the space, row-major in the order of ``space``; raises ValueError when
    there are more than ``limit``."""
    axes = [d.points() for d in space]
    out: list[dict[str, Any]] = []
    for combo in itertools.product(*axes):
        trial = {**fixed, **{d.name: v for d, v in zip(space, combo, strict=True)}}
        if valid(trial):
            out.append(trial)
            if len(out) > limit:
                raise ValueError(f"the grid has more than {limit:,} valid points")
    return out


def _draw(d: Dimension, rng: np.random.Generator) -> Any:
    if d.values is not None:
        return d.values[int(rng.integers(len(d.values)))]
    if d.step is not None:
        points = math.floor((d.high - d.low) / d.step + 1e-9) + 1
        v = d.low + int(rng.integers(points)) * d.step
        return round(v) if d.integer else float(f"{v:.12g}")
    if d.integer:
        return int(rng.integers(int(d.low), int(d.high) + 1))
    return float(rng.uniform(d.low, d.high))


def random_trials(
    space: Sequence[Dimension], fixed: Mapping[str, Any], valid: Valid, count: int, seed: int
) -> list[dict[str, Any]]:
    """Up to ``count`` distinct valid points drawn uniformly (fewer when the space runs out)."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < count and attempts < count * MAX_ATTEMPTS_PER_TRIAL:
        attempts += 1
        trial = {**fixed, **{d.name: _draw(d, rng) for d in space}}
        key = repr(sorted(trial.items()))
        if key in seen or not valid(trial):
            continue
        seen.add(key)
        out.append(trial)
    return out


def _distributions(space: Sequence[Dimension]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for d in space:
        if d.values is not None:
            out[d.name] = CategoricalDistribution(list(d.values))
        elif d.integer:
            out[d.name] = IntDistribution(int(d.low), int(d.high), step=int(d.step or 1))
        else:
            if d.step is not None:
                # Optuna wants (high - low) to be a multiple of step: trim high to the last point.
                high = d.low + (math.floor((d.high - d.low) / d.step + 1e-9)) * d.step
                out[d.name] = FloatDistribution(d.low, high, step=d.step)
            else:
                out[d.name] = FloatDistribution(d.low, d.high)
    return out


def tpe_round(
    space: Sequence[Dimension],
    fixed: Mapping[str, Any],
    valid: Valid,
    finished: Sequence[tuple[Mapping[str, Any], float]],
    count: int,
    seed: int,
) -> list[dict[str, Any]]:
    """The next ``count`` trials (fewer when the space runs out) of a TPE search that has seen
    ``finished`` (each trial's parameters and objective, in trial order)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = _distributions(space)
    sampler = optuna.samplers.TPESampler(seed=seed + len(finished), constant_liar=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    seen: set[str] = set()
    for params, value in finished:
        point = {d.name: params[d.name] for d in space}
        seen.add(repr(sorted({**fixed, **point}.items())))
        told = value if math.isfinite(value) else TPE_FLOOR
        study.add_trial(create_trial(params=point, distributions=dists, value=max(told, TPE_FLOOR)))
    out: list[dict[str, Any]] = []
    attempts = 0
    while len(out) < count and attempts < count * MAX_ATTEMPTS_PER_TRIAL:
        attempts += 1
        asked = study.ask(dists)
        point = {d.name: _plain(asked.params[d.name], d) for d in space}
        trial = {**fixed, **point}
        key = repr(sorted(trial.items()))
        if key in seen or not valid(trial):
            study.tell(asked, state=TrialState.FAIL)
            continue
        seen.add(key)
        out.append(trial)  # left running: constant_liar keeps the next asks away from it
    return out


def _plain(value: Any, d: Dimension) -> Any:
    """Optuna's value as JSON would carry it (numpy scalars and float steps tidied)."""
    if isinstance(value, np.generic):
        value = value.item()
    if d.values is None and not d.integer and d.step is not None and isinstance(value, float):
        return float(f"{value:.12g}")
    return value
