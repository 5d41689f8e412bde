"""The search space and its methods: grid order and limits, seeded random and tpe reruns, and the
space's refusals naming their field."""

from __future__ import annotations

from typing import Any

import pytest

from tradebot.optimizations.models import TrialRules, chunked, parse_space
from tradebot.optimizations.search import Dimension, grid_trials, random_trials, tpe_round

RULES = TrialRules("ema_crossover", 10_000.0, None, None)
SPACE = [Dimension("fast_period", low=2, high=20, step=1, integer=True),
         Dimension("slow_period", values=(10, 20, 30, 40))]  # fmt: skip


def test_grid_is_row_major_and_skips_refused_combinations() -> None:
    trials = grid_trials(SPACE, {"leverage": 2}, RULES.valid, 1000)
    assert trials[0] == {"leverage": 2, "fast_period": 2, "slow_period": 10}
    assert trials[1] == {"leverage": 2, "fast_period": 2, "slow_period": 20}
    assert all(t["fast_period"] < t["slow_period"] for t in trials)
    assert len(trials) == sum(1 for f in range(2, 21) for s in (10, 20, 30, 40) if f < s)
    with pytest.raises(ValueError, match="more than 5"):
        grid_trials(SPACE, {}, RULES.valid, 5)


def test_float_steps_read_as_written() -> None:
    assert Dimension("stop_loss_pct", low=0.1, high=0.5, step=0.1).points() == [0.1, 0.2, 0.3, 0.4, 0.5]
    with pytest.raises(ValueError, match="step"):
        Dimension("stop_loss_pct", low=0.1, high=0.5).points()


def objective(t: dict[str, Any]) -> float:
    return -float((t["fast_period"] - 9) ** 2 + (t["slow_period"] - 30) ** 2)


def tpe_run(seed: int, rounds: int = 3) -> list[dict[str, Any]]:
    finished: list[tuple[dict[str, Any], float]] = []
    for _ in range(rounds):
        batch = tpe_round(SPACE, {}, RULES.valid, finished, 8, seed)
        finished += [(t, objective(t)) for t in batch]
    return [t for t, _ in finished]


def test_random_and_tpe_rerun_identically_with_their_seed() -> None:
    assert random_trials(SPACE, {}, RULES.valid, 20, 5) == random_trials(SPACE, {}, RULES.valid, 20, 5)
    assert random_trials(SPACE, {}, RULES.valid, 20, 5) != random_trials(SPACE, {}, RULES.valid, 20, 6)
    first = tpe_run(3)
    assert first == tpe_run(3) and first != tpe_run(4)
    assert len({repr(sorted(t.items())) for t in first}) == len(first) == 24  # distinct trials
    assert all(RULES.valid(t) for t in first)


def test_a_small_space_ends_the_search_early() -> None:
    tiny = [Dimension("fast_period", values=(2, 3)), Dimension("slow_period", values=(10,))]
    assert len(random_trials(tiny, {}, RULES.valid, 10, 1)) == 2
    assert len(tpe_round(tiny, {}, RULES.valid, [], 10, 1)) == 2


@pytest.mark.parametrize(
    ("space", "fixed", "method", "field"),
    [
        ({"nope": {"values": [1]}}, {}, "grid", "space.nope"),
        ({"fast_period": {"min": 1, "max": 5}}, {}, "random", "space.fast_period.min"),
        ({"fast_period": {"min": 5, "max": 4, "step": 1}}, {}, "grid", "space.fast_period.max"),
        ({"fast_period": {"min": 2, "max": 5}}, {}, "grid", "space.fast_period.step"),
        ({"fast_period": {"min": 2, "max": 5, "step": 0.5}}, {}, "grid", "space.fast_period.step"),
        ({"fast_period": {"values": []}}, {}, "grid", "space.fast_period.values"),
        ({"fast_period": {"values": [2.5]}}, {}, "grid", "space.fast_period.values"),
        ({"allow_short": {"min": 0, "max": 1, "step": 1}}, {}, "grid", "space.allow_short"),
        ({"leverage": {"values": [0.5]}}, {}, "grid", "space.leverage.values"),
        ({"fast_period": {"values": [2]}}, {"fast_period": 3}, "grid", "space.fast_period"),
        ({"fast_period": {"values": [2]}}, {"bogus": 1}, "grid", "fixed.bogus"),
        ({}, {}, "grid", "space"),
    ],
)
def test_space_refusals_name_their_field(space: dict[str, Any], fixed: dict[str, Any], method: str,
                                         field: str) -> None:  # fmt: skip
    _, errors = parse_space("ema_crossover", space, fixed, method)
    assert field in [f for f, _ in errors], errors


def test_space_dimensions() -> None:
    dims, errors = parse_space("ema_crossover", {
        "fast_period": {"min": 2, "max": 10}, "allow_short": {"values": [False, True]},
        "stop_loss_pct": {"min": 0.5, "max": 2.0, "step": 0.5},
    }, {"slow_period": 30}, "random")  # fmt: skip
    assert errors == []
    assert dims == [Dimension("fast_period", low=2, high=10, step=1, integer=True),
                    Dimension("allow_short", values=(False, True)),
                    Dimension("stop_loss_pct", low=0.5, high=2.0, step=0.5)]  # fmt: skip
    assert [first for first, _ in chunked([{"n": i} for i in range(20)], first=16)] == [16, 24, 32]
