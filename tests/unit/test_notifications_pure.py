"""The pure rules of notifications: the signature, which addresses the SSRF guard refuses, the
retry schedule, the preference checks and the words of a mail."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tradebot.backoff import Backoff
from tradebot.notifications.errors import InvalidNotificationField
from tradebot.notifications.events import Channel
from tradebot.notifications.mail_text import mail_text
from tradebot.notifications.preferences import checked
from tradebot.notifications.signing import new_secret, signature
from tradebot.notifications.ssrf import AddressPolicy, UnsafeUrl, parse_url, refused_address
from tradebot.notifications.webhooks import checked_events


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_with_the_secrets_utf8_bytes() -> None:
    body = b'{"id":1,"event":"ping"}'
    secret = "whsec_clé"  # non-ASCII: UTF-8 bytes are the key
    expected = hmac.new(secret.encode("utf-8"), b"1767225600." + body, hashlib.sha256).hexdigest()
    assert signature(secret, 1767225600, body) == f"t=1767225600,v1={expected}"
    assert signature(secret, 1767225601, body) != signature(secret, 1767225600, body)


def test_secrets_are_long_and_distinct() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_") and len(a) >= 40


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.0.9", "::1", "10.0.0.1", "172.16.5.4", "192.168.0.1", "169.254.169.254", "fe80::1",
    "224.0.0.1", "239.1.2.3", "ff02::1", "0.0.0.0", "::", "100.64.0.1", "fc00::1", "::ffff:127.0.0.1",
    "::ffff:10.0.0.1", "198.18.0.1", "240.0.0.1",
])
def test_internal_addresses_are_refused(address: str) -> None:
    assert refused_address(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert refused_address(address) is None


def test_the_policy_refuses_names_and_literals_before_any_lookup() -> None:
    strict = AddressPolicy(allow_private=False)
    for host in ("localhost", "LOCALHOST.", "api.localhost", "127.0.0.1", "::1"):
        with pytest.raises(UnsafeUrl):
            strict.check_name(host)
    strict.check_name("hooks.example.com")  # a name is judged by what it resolves to
    with pytest.raises(UnsafeUrl):
        strict.check_addresses("mixed.example.com", ["93.184.216.34", "10.0.0.1"])
    AddressPolicy(allow_private=True).check_name("localhost")


@pytest.mark.parametrize("url", ["ftp://x.example/", "http:///path", "x.example/hook", "http://x.example:99999/",
                                 "http://x.example/a b", "http://x.example/\x00", "http://x.example/\x7f", "http://" + "a" * 2050 + ".example/"])
def test_only_http_urls_with_a_host_are_taken(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        parse_url(url)


def test_parse_url_gives_the_default_ports() -> None:
    assert parse_url("https://hooks.example/x") == ("https", "hooks.example", 443)
    assert parse_url("http://hooks.example:8080/x") == ("http", "hooks.example", 8080)


def test_retries_wait_retry_s_then_double_without_jitter() -> None:
    policy = Backoff(base=10.0, cap=10.0 * 2**8)
    assert [policy.ceiling(n) for n in range(7)] == [10, 20, 40, 80, 160, 320, 640]


def test_webhook_events_default_to_all_and_unknown_ones_name_events() -> None:
    assert checked_events(None) == ["trade", "state", "error"]
    assert checked_events(["error", "trade", "error"]) == ["trade", "error"]
    for bad in (["trades"], [], ["ping"]):
        with pytest.raises(InvalidNotificationField) as e:
            checked_events(bad)
        assert e.value.field == "events"


def test_each_channel_takes_only_its_events() -> None:
    assert checked(Channel.MAIL, ["paused", "error"]) == ["error", "paused"]
    with pytest.raises(InvalidNotificationField) as e:
        checked(Channel.MAIL, ["error", "trade"])
    assert e.value.field == "mail.1"


def test_a_mail_says_which_bot_what_happened_and_why() -> None:
    subject, body = mail_text("error", 7, "Night owl", "BTC/USDT:USDT", {"last_error_message": "key revoked"},
                              "https://trade.example/")
    assert subject == "tradebot: Night owl (#7, BTC/USDT:USDT) stopped with an error"
    assert "key revoked" in body and "https://trade.example/" in body and "preferences" in body
    subject, _ = mail_text("paused", 7, "", None, {}, "https://trade.example")
    assert subject == "tradebot: bot (#7) paused by a daily limit"
