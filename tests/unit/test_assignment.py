"""Rendezvous assignment (pure): stable, even, and moving only what must move."""

from __future__ import annotations

import statistics

import pytest

from tradebot.runtime.cluster.assignment import assign, load, mine, moved, owner, weight

REPLICAS = [f"host-{i}-{1000 + i}-ab{i:02d}" for i in range(3)]
BOTS = range(1, 3001)


def test_weight_is_stable_across_processes() -> None:
    # blake2b, not hash(): the same value in every replica (pinned so a change is noticed).
    assert weight("r1", 1) == weight("r1", 1)
    assert weight("r1", 1) != weight("r2", 1)
    assert weight("a", 7) == int.from_bytes(__import__("hashlib").blake2b(b"a:7", digest_size=8).digest(), "big")


def test_owner_does_not_depend_on_listing_order() -> None:
    for bot in range(1, 200):
        assert owner(bot, REPLICAS) == owner(bot, list(reversed(REPLICAS)))


def test_no_replicas_no_owner() -> None:
    assert owner(1, []) is None
    assert assign([1, 2], []) == {}


def test_every_bot_assigned_to_a_member() -> None:
    result = assign(BOTS, REPLICAS)
    assert set(result) == set(BOTS)
    assert set(result.values()) <= set(REPLICAS)


def test_spread_is_even() -> None:
    counts = load(assign(BOTS, REPLICAS), REPLICAS)
    ideal = len(BOTS) / len(REPLICAS)
    for n in counts.values():
        assert abs(n - ideal) < 0.08 * ideal, counts


def test_thirty_bots_on_three_replicas_with_real_ids() -> None:
    counts = load(assign(range(1, 31), REPLICAS), REPLICAS)
    assert sum(counts.values()) == 30
    assert statistics.pstdev(counts.values()) < 5


@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_a_joiner_takes_about_one_in_n_plus_one_and_only_for_itself(n: int) -> None:
    replicas = [f"r{i}" for i in range(n)]
    before = assign(BOTS, replicas)
    after = assign(BOTS, [*replicas, "new"])
    changed = moved(before, after)
    # Only moves onto the newcomer: nobody else's bots change hands.
    assert all(after[b] == "new" for b in changed)
    ideal = len(BOTS) / (n + 1)
    assert abs(len(changed) - ideal) < 0.15 * ideal


@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_a_leaver_moves_only_its_own_bots(n: int) -> None:
    replicas = [f"r{i}" for i in range(n)]
    before = assign(BOTS, replicas)
    after = assign(BOTS, replicas[1:])
    changed = moved(before, after)
    assert changed == {b for b, r in before.items() if r == "r0"}


def test_mine_matches_assign() -> None:
    result = assign(BOTS, REPLICAS)
    for r in REPLICAS:
        assert mine(BOTS, REPLICAS, r) == {b for b, owner_ in result.items() if owner_ == r}


def test_moved_ignores_bots_in_only_one_map() -> None:
    assert moved({1: "a", 2: "a"}, {2: "b", 3: "b"}) == {2}
