"""Supervised background loops: every task named, owned by one `BackgroundTasks`, and loud on crash.

A loop that raises (anything but a cancellation) or returns while its owner is still running is a
bug, not a state to wait out: it is logged at once with its traceback (not at shutdown, when
`cancel_and_wait` would finally notice), counted per task name for /metrics, and handed to the
owner's `on_crash`, whose policy decides what the replica does about it (the bot runtime stands
down, see `BotRuntime`). The owner cancels and awaits every task it spawned in `close()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from tradebot.runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)

CrashHandler = Callable[[str, BaseException], None]


class LoopEnded(Exception):
    """A loop that runs until cancelled returned instead."""


class BackgroundTasks:
    def __init__(self, owner: str, on_crash: CrashHandler | None = None) -> None:
        self.owner = owner
        self.on_crash = on_crash
        self.crashes: dict[str, int] = {}  # task name -> crashes; only ever incremented
        self._tasks: dict[asyncio.Task[None], bool] = {}  # task -> runs until cancelled
        self._closing = False

    def spawn(self, name: str, coro: Coroutine[Any, Any, None], *, forever: bool = True) -> asyncio.Task[None]:
        """Start `coro` as a task named `name`. `forever`: it ends only by cancellation, so a return
        counts as a crash; a one-off job passes False and may return."""
        if self._closing:
            coro.close()
            raise RuntimeError(f"{self.owner} is closing; {name} not started")
        task = asyncio.create_task(coro, name=name)
        self._tasks[task] = forever
        task.add_done_callback(self._done)
        return task

    def names(self) -> list[str]:
        return sorted(t.get_name() for t in self._tasks)

    def _done(self, task: asyncio.Task[None]) -> None:
        forever = self._tasks.pop(task, False)
        if task.cancelled() or self._closing:
            if not task.cancelled() and task.exception() is not None:
                log.error("%s task %s failed while closing", self.owner, task.get_name(), exc_info=task.exception())
            return
        error = task.exception()
        if error is None:
            if not forever:
                return
            error = LoopEnded(f"{task.get_name()} returned")
        name = task.get_name()
        self.crashes[name] = self.crashes.get(name, 0) + 1
        log.critical("%s task %s crashed", self.owner, name, exc_info=error,
                     extra={"task": name, "error": f"{type(error).__name__}: {error}"})
        if self.on_crash is not None:
            try:
                self.on_crash(name, error)
            except Exception:
                log.exception("%s crash handler failed", self.owner)

    async def close(self, timeout: float = 5.0) -> None:
        """Cancel every task still running and wait up to `timeout` for them."""
        self._closing = True
        await cancel_and_wait(list(self._tasks), timeout=timeout)

    async def wait(self, task: asyncio.Task[None], timeout: float) -> None:
        """Let one owned task finish on its own (up to `timeout`), cancelling it only after that."""
        if task.done():
            return
        done, _ = await asyncio.wait([task], timeout=timeout)
        if not done:
            await cancel_and_wait(task)
