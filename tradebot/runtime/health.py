"""Whether this replica's runtime may trade: set once, when a background loop of it crashed.

A faulted runtime has stood down (actors handed over, leases released, out of the cluster) and
stays down until the process is restarted; /readyz reports it, so the orchestrator replaces the
replica while the API keeps serving reads.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RuntimeHealth:
    fault: str | None = None  # why the runtime stood down; None while healthy

    @property
    def faulted(self) -> bool:
        return self.fault is not None

    def set_fault(self, reason: str) -> bool:
        """Record the first fault; False if one was already recorded."""
        if self.fault is not None:
            return False
        self.fault = reason[:500]
        return True
