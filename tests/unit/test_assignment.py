"""Rendezvous assignment with bounded loads (pure): stable, even, and moving little on join/leave."""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest

from tradebot.runtime.cluster.assignment import (
    assign,
    capacity,
    load,
    mine,
    moved,
    owner,
    ranked,
    rebalance,
    weight,
)

REPLICAS = [f"host-{i}-{1000 + i}-ab{i:02d}" for i in range(3)]
BOTS = range(1, 3001)


def test_weight_is_a_stable_hash() -> None:
    # blake2b, not hash(): the same value in every replica process.
    assert weight("a", 7) == int.from_bytes(hashlib.blake2b(b"a:7", digest_size=8).digest(), "big")
    assert weight("r1", 1) != weight("r2", 1)


def test_order_of_the_inputs_does_not_matter() -> None:
    bots = list(range(1, 200))
    forward = assign(bots, REPLICAS)
    assert assign(reversed(bots), list(reversed(REPLICAS))) == forward
    assert all(owner(b, REPLICAS) == owner(b, reversed(REPLICAS)) == ranked(b, REPLICAS)[0] for b in bots)


def test_no_replicas_no_owner() -> None:
    assert owner(1, []) is None
    assert assign([1, 2], []) == {}
    assert capacity(5, 0) == 0


def test_every_bot_assigned_to_a_member() -> None:
    result = assign(BOTS, REPLICAS)
    assert set(result) == set(BOTS)
    assert set(result.values()) <= set(REPLICAS)


@pytest.mark.parametrize("seed", range(20))
def test_thirty_bots_on_three_replicas_get_nine_to_eleven(seed: int) -> None:
    rng = random.Random(seed)
    first = rng.randint(1, 10**6)
    replicas = [f"r{i}-{rng.randint(1, 10**6)}" for i in range(3)]
    counts = load(assign(range(first, first + 30), replicas), replicas)
    assert all(9 <= n <= 11 for n in counts.values()), counts


def test_plain_rendezvous_is_available_and_unbounded() -> None:
    plain = assign(BOTS, REPLICAS, slack=None)
    assert plain == {b: owner(b, REPLICAS) for b in BOTS}


def test_load_is_bounded_by_the_capacity() -> None:
    for n in (1, 2, 7, 30, 1000):
        counts = load(assign(range(n), REPLICAS), REPLICAS)
        assert max(counts.values()) <= capacity(n, 3)
        assert sum(counts.values()) == n


@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_a_joiner_moves_about_one_in_n_plus_one(n: int) -> None:
    replicas = [f"r{i}" for i in range(n)]
    before = assign(BOTS, replicas)
    after = rebalance(before, BOTS, [*replicas, "new"])
    changed = moved(before, after)
    ideal = len(BOTS) / (n + 1)
    # The newcomer is lifted to the floor, (1 - slack) of its share: a bit under the ideal, never over.
    assert 0.85 * ideal <= len(changed) <= 1.02 * ideal, (len(changed), ideal)
    assert all(after[b] == "new" for b in changed)
    # They are the bots that rank it first: plain rendezvous would have moved them too.
    assert all(owner(b, [*replicas, "new"]) == "new" for b in changed)


@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_a_leaver_moves_its_own_bots_and_hardly_any_other(n: int) -> None:
    replicas = [f"r{i}" for i in range(n)]
    before = assign(BOTS, replicas)
    after = rebalance(before, BOTS, replicas[1:])
    changed = moved(before, after)
    own = {b for b, r in before.items() if r == "r0"}
    assert own <= changed
    assert len(changed - own) < 0.02 * len(BOTS)


def test_nothing_changes_when_nothing_changed() -> None:
    before = assign(BOTS, REPLICAS)
    assert rebalance(before, BOTS, REPLICAS) == before


def test_starting_bots_one_by_one_moves_hardly_any_running_one() -> None:
    placed: dict[int, str] = {}
    moves = 0
    for k in range(1, 301):
        nxt = rebalance(placed, range(1, k + 1), REPLICAS)
        moves += len(moved(placed, nxt))
        placed = nxt
    assert moves < 15, moves
    counts = load(placed, REPLICAS)
    assert all(90 <= c <= 110 for c in counts.values()), counts


def test_stopping_bots_moves_nobody_until_a_replica_drops_below_the_floor() -> None:
    before = assign(BOTS, REPLICAS)
    after = rebalance(before, range(1, 2901), REPLICAS)
    assert len(moved(before, after)) < 10


def test_mine_matches_assign() -> None:
    result = assign(BOTS, REPLICAS)
    for r in REPLICAS:
        assert mine(BOTS, REPLICAS, r) == {b for b, o in result.items() if o == r}


def test_every_replica_agrees_on_the_partition() -> None:
    parts = [mine(BOTS, REPLICAS, r) for r in REPLICAS]
    for a, b in itertools.combinations(parts, 2):
        assert not a & b
    assert set().union(*parts) == set(BOTS)


def test_moved_ignores_bots_in_only_one_map() -> None:
    assert moved({1: "a", 2: "a"}, {2: "b", 3: "b"}) == {2}
