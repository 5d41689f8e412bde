"""Tokens refused on every replica within 1 s of a logout, a password change or a deactivation on
another, although each replica answers unchanged tokens from its own cache (issue #21); and the same
while the replicas' pub/sub subscriptions are being killed over and over (announcements are lost in
the gaps). Two real replica processes sharing PostgreSQL and Redis."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
import redis

from tests.cluster.harness import PASSWORD, Cluster, request
from tests.processes import free_port, redis_server, wait_until

REFUSED_WITHIN_S = 1.0
NEW_PASSWORD = "correct horse battery staple 42"


def _login(url: str, email: str, password: str = PASSWORD) -> str:
    status, body = request(url + "/api/v1/auth/login", "POST", {"email": email, "password": password})
    assert status == 200, body
    return str(body["access_token"])


def _me(url: str, token: str) -> int:
    return request(url + "/api/v1/auth/me", token=token)[0]


def _user(cluster: Cluster, tag: str) -> tuple[str, int]:
    email = f"{tag}-{secrets.token_hex(4)}@example.com"
    status, body = request(cluster.nodes["a"].url + "/api/v1/auth/register", "POST",
                           {"email": email, "password": PASSWORD})
    assert status == 201, body
    return email, int(body["id"])


def _refused_within(url: str, token: str, since: float, what: str) -> float:
    deadline = time.monotonic() + REFUSED_WITHIN_S + 5
    while (status := _me(url, token)) == 200:
        assert time.monotonic() < deadline, f"{what}: still accepted"
    took = time.monotonic() - since
    print(f"{what}: refused after {took:.3f}s")
    assert status == 401, status
    assert took <= REFUSED_WITHIN_S, f"{what} took {took:.3f}s"
    return took


def _answers_with_users_locked(cluster: Cluster, url: str, token: str) -> bool:
    """Whether `url` accepts `token` while no users row can be read (an access-exclusive lock)."""
    with psycopg.connect(cluster.database_url) as conn:
        conn.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        try:
            return request(url + "/api/v1/auth/me", token=token, timeout=3)[0] == 200
        except OSError:  # the request waited for the lock
            return False
        finally:
            conn.rollback()


def _each_change_is_obeyed_by_the_other_replica(cluster: Cluster, *, cached: bool = True) -> None:
    a, b = cluster.nodes["a"].url, cluster.nodes["b"].url
    assert cluster.token is not None  # the operator's
    email, user_id = _user(cluster, "cached")
    bystander_email, _ = _user(cluster, "bystander")
    bystander = _login(a, bystander_email)

    # Logout on A: that token is refused on B; the user's other token is not.
    doomed, kept = _login(a, email), _login(a, email)
    assert _me(b, doomed) == _me(b, kept) == _me(b, bystander) == 200
    if cached:  # B answers these tokens from its cache, reading no row
        wait_until(lambda: _me(b, doomed) == 200 and _answers_with_users_locked(cluster, b, doomed), 15,
                   "b to answer from its session cache")
    status, _ = request(a + "/api/v1/auth/logout", "POST", token=doomed)
    assert status == 204
    _refused_within(b, doomed, time.monotonic(), "a token logged out on a, on b")
    assert _me(b, kept) == 200

    # A password change on A refuses every earlier token on B.
    status, body = request(a + "/api/v1/auth/password", "POST",
                           {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, token=kept)
    changed = time.monotonic()
    assert status == 204, body
    _refused_within(b, kept, changed, "a token from before a password change on a, on b")

    # A deactivation on A (by an operator) refuses the user's tokens on B.
    token = _login(a, email, NEW_PASSWORD)
    assert _me(b, token) == 200
    status, body = request(f"{a}/api/v1/admin/users/{user_id}/deactivate", "POST", token=cluster.token)
    deactivated = time.monotonic()
    assert status == 204, body
    _refused_within(b, token, deactivated, "a deactivated user's token, on b")
    assert _me(b, bystander) == 200


def test_logout_password_change_and_deactivation_on_one_replica_refuse_tokens_on_the_other(
    cluster: Cluster,
) -> None:
    cluster.start("a", "b")
    cluster.sign_up()  # the operator
    _each_change_is_obeyed_by_the_other_replica(cluster)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test's own: killing its pub/sub clients touches nobody else's tests."""
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    with redis_server(port, data):
        yield f"redis://127.0.0.1:{port}/0"


class PubSubKiller:
    """Kills every pub/sub connection of the Redis again and again, in a thread, while it runs."""

    def __init__(self, redis_url: str, every_s: float = 0.03) -> None:
        self._client = redis.Redis.from_url(redis_url)
        self._every_s = every_s
        self._stop = threading.Event()
        self.kills = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.kills += int(self._client.client_kill_filter(_type="pubsub"))
            self._stop.wait(self._every_s)

    def __enter__(self) -> PubSubKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._client.close()


def test_changes_are_obeyed_on_the_other_replica_while_pubsub_keeps_being_interrupted(
    clean_db: str, exchange_url: str, tmp_path: Path, private_redis: str
) -> None:
    with ExitStack() as stack:
        cluster = Cluster(clean_db, private_redis, exchange_url, tmp_path)
        stack.callback(cluster.close)
        cluster.start("a", "b")
        cluster.sign_up()
        with PubSubKiller(private_redis) as killer:
            _each_change_is_obeyed_by_the_other_replica(cluster, cached=False)
        print(f"pub/sub connections killed: {killer.kills}")
        assert killer.kills > 0
        # And once the subscriptions stay up, the replicas go on serving (and caching) as before.
        b = cluster.nodes["b"].url
        email, _ = _user(cluster, "after")
        token = _login(cluster.nodes["a"].url, email)
        wait_until(lambda: _me(b, token) == 200, 10, "b to accept a fresh token")
