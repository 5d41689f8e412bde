"""Crash points for crash-safety tests: the process kills itself (SIGKILL) at a named point.

Only honoured with TRADEBOT_ENV=test (settings refuse it elsewhere), so production code paths are
the tested ones, with nothing replaced: the test sees exactly what a kill -9 at that point leaves.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Final

log = logging.getLogger(__name__)

POINTS: Final = frozenset({"before_send", "after_send"})


class CrashPoints:
    def __init__(self, points: frozenset[str] = frozenset()) -> None:
        unknown = points - POINTS
        if unknown:
            raise ValueError(f"unknown crash points: {sorted(unknown)}")
        self._points = points

    def hit(self, name: str) -> None:
        if name in self._points:
            log.critical("crash point %s reached: killing this process", name)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)


NO_CRASHES = CrashPoints()
