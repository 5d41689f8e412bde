"""Live streams obey their token on every replica: a logout, a password change or a reset on one
replica ends the streams open on another within 2 s, and a stream ends when its token stops being
accepted (expiry plus leeway). Two real replica processes sharing PostgreSQL and Redis."""

from __future__ import annotations

import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import jwt

from tests.cluster.harness import Cluster, request
from tests.processes import wait_until

NEW_PASSWORD = "correct horse battery staple 42"
ENDS_WITHIN_S = 2.0
LEEWAY_S = 5  # TokenCodec's tolerated clock difference: a token is accepted until exp + leeway


class Watcher:
    """Reads one SSE stream in a thread and notes when it ends."""

    def __init__(self, url: str) -> None:
        self.events: list[str] = []
        self.opened = threading.Event()
        self.status = 0
        self.ended_at: float | None = None
        self._thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self._thread.start()
        assert self.opened.wait(15), "the stream did not open"
        assert self.status == 200, self.status

    def _read(self, url: str) -> None:
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                self.status = int(r.status)
                self.opened.set()
                for raw in r:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("event:"):
                        self.events.append(line[6:].strip())
        except OSError as e:
            self.status = self.status or getattr(e, "code", -1)
        finally:
            self.ended_at = time.monotonic()
            self.opened.set()

    def ended(self) -> bool:
        return self.ended_at is not None

    def close(self) -> None:
        self._thread.join(timeout=0)


def _stream_url(base: str, bot_id: int, token: str) -> str:
    return f"{base}/api/v1/bots/{bot_id}/status-stream?access_token={token}"


def _login(cluster: Cluster, email: str, password: str, url: str) -> str:
    status, body = request(url + "/api/v1/auth/login", "POST", {"email": email, "password": password})
    assert status == 200, body
    return str(body["access_token"])


def _ends_within(watcher: Watcher, started: float, what: str) -> float:
    wait_until(watcher.ended, ENDS_WITHIN_S + 5, what)
    assert watcher.ended_at is not None
    took = watcher.ended_at - started
    print(f"{what}: {took:.2f}s")
    assert took <= ENDS_WITHIN_S, f"{what} took {took:.2f}s"
    return took


def _setup(cluster: Cluster, tmp_path: Path) -> tuple[str, str, int]:
    cluster.extra_env["TRADEBOT_OUTBOX_DIR"] = str(tmp_path / "outbox")
    cluster.start("a", "b")
    email = f"streams-{secrets.token_hex(4)}@example.com"
    cluster.sign_up(email)
    key_id = cluster.api_key(*cluster.exchange_account())
    [bot_id] = cluster.create_bots(1, key_id)
    return email, cluster.nodes["a"].url, bot_id


def test_logout_password_change_and_reset_on_one_replica_end_streams_on_the_other(
    cluster: Cluster, tmp_path: Path
) -> None:
    from tests.cluster.harness import PASSWORD

    email, a, bot_id = _setup(cluster, tmp_path)
    b = cluster.nodes["b"].url

    # Logout on A ends that token's stream on B; a stream of another token of the same user stays.
    doomed, other = _login(cluster, email, PASSWORD, a), _login(cluster, email, PASSWORD, a)
    watched, kept = Watcher(_stream_url(b, bot_id, doomed)), Watcher(_stream_url(b, bot_id, other))
    started = time.monotonic()
    assert request(a + "/api/v1/auth/logout", "POST", token=doomed)[0] == 204
    _ends_within(watched, started, "stream on b after logout on a")
    assert not kept.ended()

    # A password change on A ends every earlier token's stream on B (and on A).
    on_a = Watcher(_stream_url(a, bot_id, other))
    status, body = request(a + "/api/v1/auth/password", "POST",
                           {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, token=other)
    started = time.monotonic()  # the change is committed just before the answer (after the hashing)
    assert status == 204, body
    _ends_within(kept, started, "stream on b after a password change on a")
    _ends_within(on_a, started, "stream on a after a password change on a")

    # A reset confirmed on A ends the streams of earlier tokens on B.
    token = _login(cluster, email, NEW_PASSWORD, a)
    watched = Watcher(_stream_url(b, bot_id, token))
    assert request(a + "/api/v1/auth/password-reset/request", "POST", {"email": email})[0] == 202
    outbox = tmp_path / "outbox"

    def reset_token() -> str | None:
        for f in sorted(outbox.glob("*.eml")):
            m = re.search(r"\?token=(\S+)", f.read_text(encoding="ascii"))
            if m:
                return m.group(1)
        return None

    wait_until(lambda: reset_token() is not None, 10, "the reset mail")
    status, body = request(a + "/api/v1/auth/password-reset/confirm", "POST",
                           {"token": reset_token(), "new_password": NEW_PASSWORD + "!"})
    started = time.monotonic()
    assert status == 204, body
    _ends_within(watched, started, "stream on b after a reset on a")


def test_a_stream_ends_when_its_token_stops_being_accepted(cluster: Cluster, tmp_path: Path) -> None:
    email, a, bot_id = _setup(cluster, tmp_path)
    b = cluster.nodes["b"].url
    [(user_id, version)] = cluster.sql("SELECT id, token_version FROM users WHERE email = $1".replace("$1", "%s"),
                                       email)
    now = int(time.time())
    short = jwt.encode({"iss": "tradebot", "aud": "tradebot-api", "sub": str(user_id),
                        "jti": secrets.token_urlsafe(16), "iat": now, "exp": now + 3, "ver": version},
                       cluster.jwt_secret, algorithm="HS256")
    watchers = [Watcher(_stream_url(url, bot_id, short)) for url in (a, b)]
    refused_from = now + 3 + LEEWAY_S  # the first second at which the API refuses this token
    for w in watchers:
        wait_until(w.ended, 3 + LEEWAY_S + ENDS_WITHIN_S + 5, "the short-lived token's stream to end")
        assert w.ended_at is not None
        ended_wall = time.time() - (time.monotonic() - w.ended_at)
        print(f"stream ended {ended_wall - refused_from:+.2f}s after the token stopped being accepted")
        assert ended_wall <= refused_from + ENDS_WITHIN_S
        assert w.events[:1] == ["state"]
    # The token is indeed refused now, on both replicas.
    for url in (a, b):
        assert request(f"{url}/api/v1/auth/me", token=short)[0] == 401


def test_the_stream_cap_counts_across_replicas_and_a_killed_replicas_streams_stop_counting(
    cluster: Cluster, tmp_path: Path
) -> None:
    import signal

    cluster.extra_env["TRADEBOT_MAX_STREAMS_PER_USER"] = "2"
    _, a, bot_id = _setup(cluster, tmp_path)
    b = cluster.nodes["b"].url
    token = cluster.token
    assert token is not None
    on_a, on_b = Watcher(_stream_url(a, bot_id, token)), Watcher(_stream_url(b, bot_id, token))
    for url in (a, b):
        assert not _opens_stream(_stream_url(url, bot_id, token))
    # A closed stream's slot is given back at once; a killed replica's lapse with their lease.
    cluster.kill("b", signal.SIGKILL)
    wait_until(on_b.ended, 5, "b's stream to break")
    started = time.monotonic()
    wait_until(lambda: _opens_stream(_stream_url(a, bot_id, token)), 45, "the killed replica's slot to lapse")
    print(f"a killed replica's stream slot lapsed after {time.monotonic() - started:.1f}s")
    assert not on_a.ended()


def _opens_stream(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status) == 200
    except urllib.error.HTTPError as e:
        assert e.code == 429, e.code
        return False
