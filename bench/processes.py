"""Waiting for a server process a benchmark started to answer."""

from __future__ import annotations

import asyncio
import subprocess
import time

import aiohttp


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Returns once ``url``/healthz answers 200; exits the benchmark if ``proc`` ends or time runs out."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the server behind {url} exited with status {proc.returncode}")
            try:
                async with s.get(url + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not answer /healthz in time")
