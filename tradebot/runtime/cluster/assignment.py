"""Which replica runs which bot: rendezvous (highest-random-weight) hashing. Pure, no I/O.

Every (replica, bot) pair gets a weight from a stable hash; a bot goes to the live replica with the
highest weight. Two properties make it the right tool here (DESIGN.md "Cluster"):
- minimal movement: when a replica joins, only the bots it now wins move (about 1/n of them); when
  one leaves, only its own bots move. Nobody else's bots change hands.
- no coordination needed to agree: any process that knows the same replica list computes the same
  map, so a replica can fall back to computing it locally while no leader publishes one.
The hash is blake2b, not Python's `hash()`, which is salted per process.

Plain rendezvous spreads like a multinomial draw: 30 bots on 3 replicas land 14/8/8 often enough
to matter. `rebalance` therefore bounds the load (consistent hashing with bounded loads, Mirrokni et
al. 2018) and is sticky, because the leader recomputes on every bot start and stop:
  1. a bot stays on its current replica while that replica is alive and below the cap
     ((1 + slack) × the mean), bots sitting on a better-ranked choice first;
  2. the others (new bots, bots of a replica that left, bots over a cap) go to their
     highest-ranked replica with room;
  3. a replica below the floor ((1 - slack) × the mean; typically one that just joined) takes the bots that
     rank it highest from replicas above the floor: with a newcomer, those are the bots plain
     rendezvous would move to it.
So a start moves nobody else, a leave moves only the leaver's bots, a join moves about 1/n, and
every replica ends between the floor and the cap (30 bots on 3 replicas: 9 to 11 each).
"""

from __future__ import annotations

import hashlib
import math
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


DEFAULT_SLACK = 0.1


def ranked(bot_id: int, replicas: Iterable[str]) -> list[str]:
    """The replicas in the bot's order of preference (highest weight first)."""
    return [r for _, r in sorted(((weight(r, bot_id), r) for r in replicas), reverse=True)]


def capacity(bots: int, replicas: int, slack: float = DEFAULT_SLACK) -> int:
    return max(1, math.ceil(bots / replicas * (1 + slack))) if replicas else 0


def assign(bots: Iterable[int], replicas: Iterable[str], *, slack: float | None = DEFAULT_SLACK) -> dict[int, str]:
    """bot → replica from scratch (no current placement); empty when there are no replicas.

    `slack=None` is plain rendezvous (no load bound). The result depends only on the sets given,
    never on their order, so every replica computing it over the same sets agrees.
    """
    if slack is None:
        members = sorted(set(replicas))
        return {b: ranked(b, members)[0] for b in sorted(set(bots))} if members else {}
    return rebalance({}, bots, replicas, slack=slack)


def rebalance(current: Mapping[int, str], bots: Iterable[int], replicas: Iterable[str], *,
              slack: float = DEFAULT_SLACK) -> dict[int, str]:
    """bot → replica for every bot, moving as few as possible from `current` (see the module doc)."""
    members = sorted(set(replicas))
    ordered = sorted(set(bots))
    if not members:
        return {}
    n, m = len(ordered), len(members)
    cap = capacity(n, m, slack)
    floor = math.floor(n / m * (1 - slack))
    prefs = {b: ranked(b, members) for b in ordered}
    load = dict.fromkeys(members, 0)
    out: dict[int, str] = {}
    # 1. stay where you are, if there is room; bots on a better-ranked choice keep their place first
    staying = [b for b in ordered if current.get(b) in load]
    staying.sort(key=lambda b: (prefs[b].index(current[b]), b))
    for b in staying:
        r = current[b]
        if load[r] < cap:
            out[b] = r
            load[r] += 1
    # 2. everyone else: the best-ranked replica with room (cap × m >= n, so there always is one)
    for b in ordered:
        if b not in out:
            r = next(r for r in prefs[b] if load[r] < cap)
            out[b] = r
            load[r] += 1
    # 3. lift replicas below the floor with the bots that rank them highest, from replicas above it
    for r in members:
        while load[r] < floor:
            donors = [b for b in ordered if out[b] != r and load[out[b]] > floor]
            # Bots that prefer r to where they are come first, then by how high they rank r.
            b = min(donors, key=lambda b: (prefs[b].index(r) - prefs[b].index(out[b]), prefs[b].index(r), b))
            load[out[b]] -= 1
            out[b] = r
            load[r] += 1
    return out


def mine(candidates: Iterable[int], replicas: Iterable[str], me: str, *,
         slack: float | None = DEFAULT_SLACK) -> set[int]:
    """The candidates that `me` should run among `replicas`."""
    return {b for b, r in assign(candidates, replicas, slack=slack).items() if r == me}


def moved(before: Mapping[int, str], after: Mapping[int, str]) -> set[int]:
    """Bots present in both maps whose replica changed."""
    return {b for b, r in after.items() if b in before and before[b] != r}


def load(mapping: Mapping[int, str], replicas: Iterable[str] = ()) -> dict[str, int]:
    """Bots per replica, listing `replicas` that have none with 0."""
    counts: Counter[str] = Counter(mapping.values())
    out = {r: 0 for r in replicas}
    out.update(counts)
    return out
