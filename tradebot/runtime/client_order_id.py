"""Deterministic client order ids: (bot, fencing token, signal sequence or command id, leg).

The same decision under the same lease always produces the same id, so a retry after an unclear
outcome is recognised by the exchange (duplicate rejection) and by our own query-before-resend.
Binance allows at most 36 characters of [A-Za-z0-9_-] (DESIGN.md invariant 2).

A manual command's orders take the command's id where signal orders take the signal sequence,
with legs of their own: the leg letter keeps the two numberings apart, so a manual order never
collides with a signal order of the same number.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum

MAX_LEN = 36
_VALID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


class Leg(StrEnum):
    OPEN = "o"  # enter the target position
    CLOSE = "c"  # leave the current position because the target changed
    EXIT = "x"  # leave it because a stop loss / take profit / daily-loss rule fired
    MANUAL = "m"  # leave it because the user stopped the bot with close_position
    FORCE_EXIT = "f"  # a force-exit command (numbered by the command's id)
    FORCE_ENTRY = "e"  # a force-entry command (numbered by the command's id)


def _base36(n: int) -> str:
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_DIGITS[r])
    return "".join(reversed(out))


def client_order_id(bot_id: int, fence: int, seq: int, leg: Leg) -> str:
    if bot_id < 1 or fence < 1 or seq < 0:
        raise ValueError(f"invalid order id parts: bot={bot_id} fence={fence} seq={seq}")
    readable = f"tb{bot_id}-{fence}-{seq}{leg.value}"
    if len(readable) <= MAX_LEN:
        return readable
    compact = f"tb{_base36(bot_id)}-{_base36(fence)}-{_base36(seq)}{leg.value}"
    if len(compact) <= MAX_LEN:
        return compact
    # Astronomically large parts: still deterministic, 128 bits of the parts' digest.
    digest = hashlib.blake2b(f"{bot_id}-{fence}-{seq}-{leg.value}".encode(), digest_size=16).hexdigest()
    return f"tb{digest}{leg.value}"


def is_valid(cid: str) -> bool:
    return bool(_VALID.match(cid))
