"""The one backoff: capped exponential with full jitter, deterministic under an injected rng."""

from __future__ import annotations

import pytest

from tradebot.backoff import Backoff, Retrier, no_jitter


def test_ceiling_doubles_from_base_to_cap() -> None:
    b = Backoff(base=0.2, cap=10.0)
    assert [b.ceiling(n) for n in range(8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0]
    assert b.ceiling(10_000) == 10.0  # no overflow however long the outage


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    b = Backoff(base=1.0, cap=60.0)
    assert b.delay(3, lambda: 0.0) == 0.0
    assert b.delay(3, lambda: 0.5) == 4.0
    assert b.delay(3, no_jitter) == 8.0


def test_two_replicas_with_different_draws_do_not_retry_in_lockstep() -> None:
    draws_a, draws_b = iter([0.1, 0.7, 0.3]), iter([0.9, 0.2, 0.6])
    a = Retrier(Backoff(base=1.0, cap=8.0), rng=lambda: next(draws_a))
    b = Retrier(Backoff(base=1.0, cap=8.0), rng=lambda: next(draws_b))
    assert [a.next_delay() for _ in range(3)] == [0.1, 1.4, 1.2]
    assert [b.next_delay() for _ in range(3)] == [0.9, 0.4, 2.4]


def test_reset_starts_again_from_the_base() -> None:
    r = Retrier(Backoff(base=0.5, cap=8.0), rng=no_jitter)
    assert [r.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    r.reset()
    assert r.next_delay() == 0.5


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_a_nonsense_policy_is_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(base=base, cap=cap)
