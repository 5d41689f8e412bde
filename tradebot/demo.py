"""`tradebot demo`: the whole product on one machine with nothing configured.

Services come from the usual resolution (local servers, else embedded ones), secrets are generated,
and the replica serves until Ctrl-C. What it prints is all a newcomer needs to start exploring.
"""

from __future__ import annotations

import sys

from tradebot.config import Settings
from tradebot.server import serve


async def run_demo(settings: Settings, *, host: str, port: int) -> None:
    async def announce(url: str) -> None:
        print(
            f"""
tradebot demo is running at {url}

  API documentation   {url}/api/docs
  health              curl -s {url}/healthz
  readiness           curl -s {url}/readyz

Press Ctrl-C to stop.
""",
            file=sys.stderr,
            flush=True,
        )

    await serve(settings, host=host, port=port, migrate=True, on_started=announce)
