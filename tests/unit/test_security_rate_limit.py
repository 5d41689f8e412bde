"""The in-process GCRA limiter (the fallback), client-IP resolution, emails and cursors: pure logic."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.timing import ManualClock
from tradebot.accounts.api_keys import api_key_hint
from tradebot.accounts.emails import EMAIL_SCHEMA_PATTERN, normalize_email
from tradebot.http.client_ip import resolve_client_ip
from tradebot.http.pagination import build_page, decode_cursor, decode_id_cursor, encode_cursor
from tradebot.http.problems import Problem
from tradebot.security.rate_limit import Decision, Limit, LocalLimiter, subject_key


def test_burst_then_steady_rate() -> None:
    clock = ManualClock()
    limiter = LocalLimiter(clock=clock)
    limit = Limit("t", 10, 60)
    assert all(limiter.hit("k", limit).allowed for _ in range(10))
    denied = limiter.hit("k", limit)
    assert not denied.allowed and denied.retry_after_s == pytest.approx(6.0)
    assert denied.retry_after_header == "6"
    clock.now += 6
    assert limiter.hit("k", limit).allowed
    assert not limiter.hit("k", limit).allowed
    # Other keys are independent.
    assert limiter.hit("other", limit).allowed


def test_local_limiter_memory_is_bounded() -> None:
    limiter = LocalLimiter(clock=ManualClock(), max_keys=100)
    for i in range(1000):
        limiter.hit(f"k{i}", Limit("t", 1, 60))
    assert len(limiter._tat) == 100


def test_retry_after_is_at_least_one_second() -> None:
    assert Decision(False, 0.01).retry_after_header == "1"


def test_subject_keys_do_not_reveal_the_subject() -> None:
    key = subject_key("alice@example.com")
    assert "alice" not in key and len(key) == 32 and key == subject_key("alice@example.com")


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "expected"),
    [
        ("10.0.0.5", None, [], "10.0.0.5"),
        ("10.0.0.5", "1.2.3.4", [], "10.0.0.5"),  # untrusted peer: header ignored
        ("10.0.0.5", "1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.5", "6.6.6.6, 1.2.3.4, 10.0.0.9", ["10.0.0.0/8"], "1.2.3.4"),  # spoofed left part ignored
        ("10.0.0.5", "junk", ["10.0.0.5"], "10.0.0.5"),
        ("10.0.0.5", "10.0.0.7", ["10.0.0.0/8"], "10.0.0.7"),
        ("::1", "2001:db8::1", ["::1"], "2001:db8::1"),
        (None, None, [], "unknown"),
    ],
)
def test_client_ip(peer: str | None, xff: str | None, trusted: list[str], expected: str) -> None:
    assert resolve_client_ip(peer, xff, trusted) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(" Alice@Example.COM ", "alice@example.com"), ("a.b+c@sub.example.org", "a.b+c@sub.example.org")],
)
def test_emails_are_normalised(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "plain",
        "a@b",
        "a@@b.com",
        "a b@c.com",
        "a@b.com\nx@c.com",
        "a@-b.com",
        "x" * 65 + "@b.com",
        "a@b.c",
    ],
)
def test_bad_emails_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_email(raw)


def test_hint_shows_at_most_four_characters_and_at_most_a_quarter() -> None:
    assert api_key_hint("x" * 40 + "WXYZ") == "WXYZ"
    assert api_key_hint("abcdefgh") == "gh"
    assert api_key_hint("abc") == ""


def _raw_cursor(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def test_cursors_round_trip_and_reject_tampering() -> None:
    assert decode_id_cursor(encode_cursor([42])) == 42
    assert decode_id_cursor(None) is None
    assert decode_cursor(encode_cursor([1700000000, 7]), (int, int)) == (1700000000, 7)
    for bad in (
        "%%%",
        encode_cursor(["x"]),
        encode_cursor([1, 2]),
        encode_cursor([-1]),
        _raw_cursor(b"[18446744073709551616]"),
    ):
        with pytest.raises(Problem) as e:
            decode_id_cursor(bad)
        assert e.value.status == 422 and e.value.errors[0].field == "cursor"


def test_build_page() -> None:
    items, cursor = build_page([1, 2, 3, 4], 3, lambda x: (x,))
    assert items == [1, 2, 3] and decode_id_cursor(cursor) == 3
    assert build_page([1, 2], 3, lambda x: (x,)) == ([1, 2], None)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(EMAIL_SCHEMA_PATTERN, fullmatch=True))
def test_every_address_the_openapi_pattern_describes_is_accepted(address: str) -> None:
    assert normalize_email(address) == address.lower()
