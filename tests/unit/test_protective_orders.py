"""Protective orders' pure parts: deterministic client ids, levels and specs."""

from __future__ import annotations

import pytest

from tradebot.exchange.protective_orders import (
    ProtectiveKind,
    ProtectiveSpec,
    protective_client_id,
    protective_prices,
)
from tradebot.runtime.client_order_id import Leg, client_order_id, is_valid


def test_client_ids_are_deterministic_valid_and_never_an_entry_or_exit_id() -> None:
    ids = {protective_client_id(7, 3, kind, rev) for kind in ProtectiveKind for rev in range(3)}
    assert len(ids) == 9 and all(is_valid(cid) for cid in ids)
    assert protective_client_id(7, 3, ProtectiveKind.STOP_LOSS) == "tb7-3s0"
    assert protective_client_id(7, 3, ProtectiveKind.STOP_LOSS) == protective_client_id(7, 3, ProtectiveKind.STOP_LOSS)
    orders = {client_order_id(7, fence, seq, leg) for fence in (1, 3) for seq in range(5) for leg in Leg}
    assert not ids & orders
    huge = [protective_client_id(10**30, 10**30, kind, 10**30) for kind in ProtectiveKind]
    assert len(set(huge)) == 3 and all(is_valid(cid) and len(cid) <= 36 for cid in huge)
    with pytest.raises(ValueError):
        protective_client_id(0, 1, ProtectiveKind.TAKE_PROFIT)


def test_levels_are_entry_times_one_minus_or_plus_pct_mirrored_for_a_short() -> None:
    assert protective_prices("long", 2000.0, 5.0, 10.0) == pytest.approx((1900.0, 2200.0))
    assert protective_prices("short", 2000.0, 5.0, 10.0) == pytest.approx((2100.0, 1800.0))
    assert protective_prices("long", 2000.0, None, None) == (None, None)


def test_specs_refuse_what_the_exchange_would() -> None:
    with pytest.raises(ValueError):
        ProtectiveSpec(ProtectiveKind.STOP_LOSS, "ETH/USDT:USDT", "long", 1.0, "tb1-1s0")
    with pytest.raises(ValueError):
        ProtectiveSpec(ProtectiveKind.TRAILING_STOP, "ETH/USDT:USDT", "long", 1.0, "tb1-1r0")
    with pytest.raises(ValueError):
        ProtectiveSpec(ProtectiveKind.TAKE_PROFIT, "ETH/USDT:USDT", "flat", 1.0, "tb1-1t0", stop_price=1.0)
    short_stop = ProtectiveSpec(ProtectiveKind.STOP_LOSS, "ETH/USDT:USDT", "short", 1.0, "tb1-1s0", stop_price=2100.0)
    assert short_stop.order_side == "buy"
