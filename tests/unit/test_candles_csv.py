"""Candle CSV loading: ms and ISO timestamps, headers, and one clear error per bad file."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest

import tradebot.backtests.candle_csv as candles_module
from tradebot.backtests.candle_csv import load_candles_csv, parse_candles_csv
from tradebot.strategies.candles import Candle, CandleDataError, Candles

MS_CSV = """timestamp,open,high,low,close,volume
1704067200000,100,101,99,100.5,12.5
1704070800000,100.5,102,100,101.5,3
1704074400000,101.5,103,101,102.5,0
"""


def test_ms_timestamps_with_header() -> None:
    c = parse_candles_csv(MS_CSV)
    assert len(c) == 3
    assert c.ts.tolist() == [1704067200000, 1704070800000, 1704074400000]
    assert c.open.tolist() == [100.0, 100.5, 101.5]
    assert c.close.tolist() == [100.5, 101.5, 102.5]
    assert c.volume.tolist() == [12.5, 3.0, 0.0]
    assert c.candle(1) == Candle(1704070800000, 100.5, 102.0, 100.0, 101.5, 3.0)


def test_iso_timestamps_in_several_spellings_are_utc() -> None:
    text = """timestamp,open,high,low,close,volume
2024-01-01T00:00:00Z,1,1,1,1,1
2024-01-01 01:00:00,1,1,1,1,1
2024-01-01T03:00:00+01:00,1,1,1,1,1
2024-01-01T03:00:00.250+00:00,1,1,1,1,1
"""
    c = parse_candles_csv(text)
    assert c.ts.tolist() == [1704067200000, 1704070800000, 1704074400000, 1704078000250]


def test_without_header_and_with_blank_lines_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("\ufeff1000,1,2,0.5,1.5,10\n\n2000,1.5,2,1,2,10\n", encoding="utf-8")
    c = load_candles_csv(path)
    assert c.ts.tolist() == [1000, 2000]
    assert c.high.tolist() == [2.0, 2.0]


def test_header_in_any_order_with_extra_columns() -> None:
    text = "Close,Open,Timestamp,Volume,Low,High,trades\n1.5,1,1000,10,0.5,2,7\n"
    c = parse_candles_csv(text)
    assert (c.ts[0], c.open[0], c.high[0], c.low[0], c.close[0], c.volume[0]) == (1000, 1.0, 2.0, 0.5, 1.5, 10.0)


def test_arrays_are_read_only() -> None:
    c = parse_candles_csv(MS_CSV)
    with pytest.raises(ValueError):
        c.close[0] = 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("timestamp,open,high,low,close\n1,1,1,1,1\n", "header lacks column(s) volume"),
        ("timestamp,open,high,low,close,volume\n", "no candles"),
        (MS_CSV + "1704078000000,1,1,1\n", "line 5: expected 6 columns, found 4"),
        (MS_CSV + "1704078000000,1,x,1,1,1\n", "line 5: column 'high' is not a number: 'x'"),
        (MS_CSV + "yesterday,1,1,1,1,1\n", "line 5: timestamp 'yesterday' is neither milliseconds nor an ISO"),
        (MS_CSV + "1704078000000.5,1,1,1,1,1\n", "line 5: timestamp '1704078000000.5' is not a non-negative"),
        (MS_CSV + "1704078000000,1,1,1,-1,1\n", "line 5: close must be a finite price > 0"),
        (MS_CSV + "1704078000000,1,1,1,nan,1\n", "line 5: close must be a finite price > 0"),
        (MS_CSV + "1704078000000,1,1,1,1,-3\n", "line 5: volume must be"),
        (MS_CSV + "1704078000000,1,0.9,0.8,0.95,1\n", "line 5: high is below open or close"),
        (MS_CSV + "1704078000000,1,1.2,1.1,1.1,1\n", "line 5: low is above open or close"),
        (MS_CSV + "1704074400000,1,1,1,1,1\n", "line 5: timestamp is not after the previous candle's"),
        ("1704067200000000,1,1,1,1,1\n", "line 1: timestamp is not in milliseconds"),
    ],
)
def test_bad_files_give_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(CandleDataError) as info:
        parse_candles_csv(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CandleDataError, match="no such file"):
        load_candles_csv(tmp_path / "missing.csv")
    with pytest.raises(CandleDataError, match="is a directory"):
        load_candles_csv(tmp_path)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CandleDataError, match="UTF-8"):
        load_candles_csv(binary)


def test_errors_from_a_file_name_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(MS_CSV + "1,1,1,1,1,1\n")
    with pytest.raises(CandleDataError, match=r"bad\.csv: line 5"):
        load_candles_csv(path)


def test_from_arrays_and_from_candles() -> None:
    rows = [Candle(i * 60_000, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 1.0) for i in range(5)]
    c = Candles.from_candles(rows)
    assert list(c) == rows
    assert np.array_equal(c.close, [1.5, 2.5, 3.5, 4.5, 5.5])
    with pytest.raises(CandleDataError, match="no candles"):
        Candles.from_candles([])
    with pytest.raises(CandleDataError, match="shape"):
        Candles(np.zeros(2, np.int64), np.ones(2), np.ones(2), np.ones(2), np.ones(3), np.ones(2))


@pytest.mark.parametrize(
    "header", ["timestamp,open,high,low,close,volume\n", "volume,close,low,high,open,timestamp\n", ""]
)
def test_fast_numeric_parser_agrees_with_the_line_by_line_parser(header: str) -> None:
    rng = np.random.default_rng(3)
    n = 2000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high, low = np.maximum(open_, close) * 1.001, np.minimum(open_, close) * 0.999
    ts = 1_700_000_000_000 + np.arange(n) * 60_000
    reverse = header.startswith("volume")
    rows = []
    for i in range(n):
        cells = [str(int(ts[i])), repr(float(open_[i])), repr(float(high[i])), repr(float(low[i])),
                 repr(float(close[i])), "1.5"]  # fmt: skip
        rows.append(",".join(reversed(cells) if reverse else cells))
    text = header + "\n".join(rows) + "\n"
    fast = candles_module._parse_numeric_fast(text)
    assert fast is not None
    with mock.patch.object(candles_module, "_parse_numeric_fast", return_value=None):
        slow = parse_candles_csv(text)
    for name in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
    assert fast.close.tolist() == close.tolist()


def test_fast_parser_defers_to_the_line_by_line_parser_for_errors() -> None:
    # A blank line in the middle: the error's line number must count it.
    text = MS_CSV.replace("\n1704070800000", "\n\n1704070800000") + "1704078000000,1,1,2,1,1\n"
    assert candles_module._parse_numeric_fast(text) is None
    with pytest.raises(CandleDataError, match="line 6: low is above open or close"):
        parse_candles_csv(text)
