"""`tradebot demo` as a user runs it: it prints the login, and the bots it created (a live one and
a paper one beside it) run and answer."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.processes import free_port, http_get, wait_until


def test_demo_starts_a_running_bot_and_stops_cleanly(database_url: str, redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "demo.log"
    out_path = tmp_path / "demo.out"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,  # an explicit database is used as it is, never recreated
        "REDIS_URL": redis_url,
        "TRADEBOT_REDIS_PREFIX": f"demo-test-{port}",
        "TRADEBOT_DATA_DIR": str(tmp_path / "var"),
    }
    with open(log_path, "wb") as log_file, open(out_path, "wb") as out_file:
        proc = subprocess.Popen([sys.executable, "-m", "tradebot", "demo", "--port", str(port)], env=env,
                                stdout=out_file, stderr=log_file)
    try:
        # The banner is the program's output (stdout); the log lines go to stderr.
        wait_until(lambda: "Press Ctrl-C to stop." in out_path.read_text() or proc.poll() is not None, 90,
                   "the demo banner")
        text = out_path.read_text()
        assert proc.poll() is None, text + log_path.read_text()
        assert f"http://127.0.0.1:{port}" in text and "Press Ctrl-C" not in log_path.read_text()
        assert proc.poll() is None, text
        password = re.search(r"demo login\s+demo@example.com\s+/\s+(\S+)", text)
        assert password, text
        base = f"http://127.0.0.1:{port}/api/v1"
        request = urllib.request.Request(
            f"{base}/auth/login", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"email": "demo@example.com", "password": password.group(1)}).encode(),
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            token = json.load(r)["access_token"]

        # The demo's bots are the demo user's only bots; their ids depend on what the database saw before.
        req = urllib.request.Request(f"{base}/bots", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            bots = json.load(r)["items"]
        assert sorted(b["mode"] for b in bots) == ["live", "paper"]
        paper = next(b for b in bots if b["mode"] == "paper")
        assert paper["api_key_id"] is None and str(paper["id"]) in text

        def state(bot_id: int) -> dict[str, object]:
            req = urllib.request.Request(f"{base}/bots/{bot_id}/state", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=5) as r:
                return dict(json.load(r))

        wait_until(lambda: all(state(b["id"])["status"] == "running" for b in bots), 30, "the demo bots to run")
        paper_state = state(paper["id"])  # a virtual account (it may have traded already)
        assert isinstance(paper_state["paper_balance"], float) and isinstance(paper_state["equity"], float)
        assert http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert password.group(1) not in log_path.read_text()
        assert token not in log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
