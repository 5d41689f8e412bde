"""Owning background tasks: cancel a child and wait for it without swallowing our own cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object] | asyncio.Task[None]] | asyncio.Task[object] | asyncio.Task[None],
                          timeout: float = 5.0) -> None:
    """Cancel the tasks and wait up to `timeout` for them to finish.

    `asyncio.wait` does not raise the children's CancelledError, so a cancellation of the caller
    itself still propagates instead of being mistaken for the child's and suppressed.
    """
    group = [tasks] if isinstance(tasks, asyncio.Task) else list(tasks)
    pending = [t for t in group if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        _, still = await asyncio.wait(pending, timeout=timeout)
        for t in still:
            log.error("task %s did not stop within %.1fs", t.get_name(), timeout, extra={"task": t.get_name()})
    for t in group:
        if t.done() and not t.cancelled() and t.exception() is not None:
            log.error("task %s had failed", t.get_name(), exc_info=t.exception())


def reraise_if_cancelling(error: BaseException | None) -> None:
    """redis-py (and other libraries) can turn a cancellation that lands mid-command into a
    connection error; if our task is being cancelled, that error must end the loop as the
    cancellation it is, or the owner waiting for the task would wait in vain."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from error
