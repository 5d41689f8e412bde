"""argparse value types shared by the command lines (bad values exit 2 with one line)."""

from __future__ import annotations

import argparse


def port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {value!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port {number} is outside 0-65535")
    return number
