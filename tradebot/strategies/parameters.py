"""Declared strategy parameters: one description per parameter gives both the parser (a mapping in,
validated values out, :class:`~tradebot.strategies.base.ParameterError` naming the parameter) and
the JSON Schema that ``GET /strategies``, the API's validation and the dashboard's forms read
(CONTRACT.md, Strategies: ``type``, ``minimum``, ``maximum``, ``default``, ``description``;
``required``; ``additionalProperties: false``).

``allow_short`` is a sizing key, not a strategy parameter: the parser accepts it beside the
parameters (the strategies need it to read "short" as "flat"), the schema does not list it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tradebot.strategies.base import ParameterError, bool_param, float_param, int_param

__all__ = ["ALLOW_SHORT", "IntParameter", "NumberParameter", "Parameter", "ParameterSet"]

ALLOW_SHORT: Final = "allow_short"


@dataclass(frozen=True, slots=True)
class IntParameter:
    """An integer parameter in ``minimum..maximum`` (inclusive); ``20.0`` reads as 20, ``2.5``,
    ``"20"`` and booleans are refused."""

    name: str
    minimum: int
    maximum: int
    default: int
    description: str

    def parse(self, raw: Mapping[str, Any]) -> int:
        return int_param(raw, self.name, self.minimum, self.maximum, self.default)

    def schema(self) -> dict[str, Any]:
        return {
            "type": "integer",
            "minimum": self.minimum,
            "maximum": self.maximum,
            "default": self.default,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class NumberParameter:
    """A finite number in ``minimum..maximum`` (inclusive)."""

    name: str
    minimum: float
    maximum: float
    default: float
    description: str

    def parse(self, raw: Mapping[str, Any]) -> float:
        return float_param(raw, self.name, default=self.default, ge=self.minimum, le=self.maximum)

    def schema(self) -> dict[str, Any]:
        return {
            "type": "number",
            "minimum": self.minimum,
            "maximum": self.maximum,
            "default": self.default,
            "description": self.description,
        }


Parameter = IntParameter | NumberParameter


@dataclass(frozen=True, slots=True)
class ParameterSet:
    """The parameters of one strategy, in display order."""

    strategy: str
    parameters: tuple[Parameter, ...]

    def parse(self, raw: Mapping[str, Any]) -> dict[str, int | float]:
        """Every parameter's validated value (omitted ones take their defaults); an unknown name is
        refused naming it (``allow_short`` is read by :meth:`allow_short`, not here)."""
        known = {p.name for p in self.parameters}
        for key in raw:
            if key != ALLOW_SHORT and key not in known:
                raise ParameterError(str(key), f"is not a parameter of {self.strategy}")
        return {p.name: p.parse(raw) for p in self.parameters}

    @staticmethod
    def allow_short(raw: Mapping[str, Any]) -> bool:
        return bool_param(raw, ALLOW_SHORT, False)

    def check(self, values: Mapping[str, Any]) -> None:
        """Validates already-typed values (a params dataclass's ``__post_init__``): an integer
        parameter must be an ``int`` (not a float, not a bool)."""
        for p in self.parameters:
            v = values[p.name]
            if isinstance(p, IntParameter) and (isinstance(v, bool) or not isinstance(v, int)):
                raise ParameterError(p.name, f"must be an integer, got {v!r}")
            p.parse({p.name: v})

    def defaults(self) -> dict[str, int | float]:
        return {p.name: p.default for p in self.parameters}

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema object of these parameters (a fresh dict each call)."""
        return {
            "type": "object",
            "properties": {p.name: p.schema() for p in self.parameters},
            "required": [],
            "additionalProperties": False,
        }
