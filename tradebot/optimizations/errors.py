"""What the optimisations service can refuse; the HTTP layer maps each to one status."""

from __future__ import annotations

from collections.abc import Sequence


class OptimizationError(Exception):
    """Base of every refusal from this package."""


class OptimizationNotFound(OptimizationError):
    """Absent or someone else's: one answer for both (DESIGN.md invariant 5)."""


class InvalidOptimization(OptimizationError):
    """A well-formed request that cannot be run; ``errors`` are (field, message) pairs."""

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = tuple(errors)


class TooManyOptimizations(OptimizationError):
    """The user already has as many optimisations pending or running as one user may have."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} optimizations may be pending or running at once")
        self.limit = limit
