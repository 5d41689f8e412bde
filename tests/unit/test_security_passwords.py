"""argon2id hashing: RFC 9106 parameters, off the event loop, rehash when parameters change."""

from __future__ import annotations

import asyncio
import time

from argon2 import Parameters, Type

from tradebot.security.passwords import DEFAULT_PARAMETERS, PasswordHasher

# Cheap parameters for the tests that only need "different from the default".
WEAK = Parameters(type=Type.ID, version=19, salt_len=16, hash_len=32, time_cost=1, memory_cost=8192, parallelism=1)


async def test_defaults_are_rfc9106_low_memory_argon2id() -> None:
    hasher = PasswordHasher()
    try:
        p = hasher.parameters
        assert p.type is Type.ID
        assert (
            (p.time_cost, p.memory_cost, p.parallelism)
            == (3, 65536, 4)
            == (
                DEFAULT_PARAMETERS.time_cost,
                DEFAULT_PARAMETERS.memory_cost,
                DEFAULT_PARAMETERS.parallelism,
            )
        )
        stored = await hasher.hash("correct horse")
        assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert (await hasher.verify(stored, "correct horse")).ok
        assert not (await hasher.verify(stored, "correct horse ")).ok  # never trimmed
        assert not (await hasher.verify("not a hash", "x")).ok
    finally:
        hasher.close()


async def test_hashing_runs_off_the_event_loop() -> None:
    """While real (64 MiB, ~100 ms) hashes run, the loop keeps serving other tasks."""
    hasher = PasswordHasher()
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    try:
        started = time.perf_counter()
        await hasher.hash("one real hash")
        elapsed = time.perf_counter() - started
    finally:
        task.cancel()
        hasher.close()
    # A hash on the loop would stall it for its whole duration: no tick at all until it is done.
    assert len(gaps) >= 5
    assert max(gaps) < elapsed / 2


async def test_changed_parameters_ask_for_a_rehash() -> None:
    weak, strong = PasswordHasher(WEAK), PasswordHasher()
    try:
        old = await weak.hash("pw")
        result = await strong.verify(old, "pw")
        assert result.ok and result.needs_rehash
        fresh = await strong.hash("pw")
        assert not (await strong.verify(fresh, "pw")).needs_rehash
    finally:
        weak.close()
        strong.close()


async def test_the_dummy_verification_costs_a_real_one() -> None:
    hasher = PasswordHasher()
    try:
        await hasher.start()
        assert hasher._dummy_hash is not None and hasher._dummy_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        await hasher.verify_dummy("anything")
    finally:
        hasher.close()
