"""Which replica runs which bot: rendezvous (highest-random-weight) hashing. Pure, no I/O.

Every (replica, bot) pair gets a weight from a stable hash; a bot goes to the live replica with the
highest weight. Two properties make it the right tool here (DESIGN.md "Cluster"):
- minimal movement: when a replica joins, only the bots it now wins move (about 1/n of them); when
  one leaves, only its own bots move. Nobody else's bots change hands.
- no coordination needed to agree: any process that knows the same replica list computes the same
  map, so a replica can fall back to computing it locally while no leader publishes one.
The hash is blake2b, not Python's `hash()`, which is salted per process.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping


def weight(replica_id: str, bot_id: int) -> int:
    digest = hashlib.blake2b(f"{replica_id}:{bot_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(bot_id: int, replicas: Iterable[str]) -> str | None:
    """The replica that should run `bot_id`; None when there is no replica at all.

    Ties (astronomically unlikely with 64-bit weights) go to the larger id, so the answer never
    depends on the order the replicas were listed in.
    """
    best: tuple[int, str] | None = None
    for replica in replicas:
        key = (weight(replica, bot_id), replica)
        if best is None or key > best:
            best = key
    return None if best is None else best[1]


def assign(bots: Iterable[int], replicas: Iterable[str]) -> dict[int, str]:
    """bot → replica for every bot; empty when there are no replicas."""
    members = sorted(set(replicas))
    if not members:
        return {}
    out: dict[int, str] = {}
    for bot in bots:
        chosen = owner(bot, members)
        assert chosen is not None
        out[bot] = chosen
    return out


def mine(candidates: Iterable[int], replicas: Iterable[str], me: str) -> set[int]:
    """The candidates that `me` should run among `replicas`."""
    members = sorted(set(replicas))
    return {b for b in candidates if owner(b, members) == me}


def moved(before: Mapping[int, str], after: Mapping[int, str]) -> set[int]:
    """Bots present in both maps whose replica changed."""
    return {b for b, r in after.items() if b in before and before[b] != r}


def load(mapping: Mapping[int, str], replicas: Iterable[str] = ()) -> dict[str, int]:
    """Bots per replica, listing `replicas` that have none with 0."""
    counts: Counter[str] = Counter(mapping.values())
    out = {r: 0 for r in replicas}
    out.update(counts)
    return out
