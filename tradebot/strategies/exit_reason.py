"""Why a position was closed: the one enum for the backtest, the live risk rules and trade rows.

An IntEnum, because the backtest keeps one per trade in numpy int8 arrays; `label` is the trade
`reason` string of the contract ("signal", "stop_loss", "take_profit"; "end" for a backtest's
position valued at the last close), which is what JSON and the database carry.
"""

from __future__ import annotations

from enum import IntEnum


class ExitReason(IntEnum):
    SIGNAL = 0  # the strategy's target changed
    STOP_LOSS = 1
    TAKE_PROFIT = 2
    END = 3  # a backtest's open position valued at the last close
    LIQUIDATION = 4  # the mark price reached the position's liquidation price

    @property
    def label(self) -> str:
        """The trade row's / report's `reason` string."""
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> ExitReason:
        try:
            return cls[label.upper()]
        except KeyError:
            raise ValueError(f"unknown exit reason {label!r}") from None
