"""Which exchange failures are final and which are retried, from the errors ccxt itself raises."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt.async_support as ccxt
import pytest

from tradebot.exchange import errors
from tradebot.exchange.ccxt_factory import build_client

URL = "http://127.0.0.1:1/fapi/v1/userTrades?symbol=BTCUSDT&orderId=7&timestamp=1&signature=x"
MISSING_ROUTE = "<html><head><title>404 Not Found</title></head><body>404 Not Found</body></html>"


@pytest.fixture
def client() -> Iterator[ccxt.Exchange]:
    # No request is made: the client is only used for its own error mapping of an HTTP answer.
    yield build_client("binanceusdm", base_url="http://127.0.0.1:1")


def _ccxt_error_for(client: ccxt.Exchange, status: int, reason: str, body: str) -> ccxt.BaseError:
    """What ccxt raises for this HTTP answer, through binanceusdm's own handlers."""
    parsed = client.parse_json(body)
    with pytest.raises(ccxt.BaseError) as info:
        client.handle_errors(status, reason, URL, "GET", {}, body, parsed, {}, None)
        client.handle_http_status_code(status, reason, URL, "GET", body)
    return info.value


@pytest.mark.parametrize(
    ("status", "reason", "body"),
    [(404, "Not Found", MISSING_ROUTE), (404, "Not Found", ""), (405, "Method Not Allowed", ""), (410, "Gone", "")],
)
async def test_a_missing_endpoint_is_final(client: ccxt.Exchange, status: int, reason: str, body: str) -> None:
    raised = _ccxt_error_for(client, status, reason, body)
    assert isinstance(raised, ccxt.NetworkError)  # what made it look transient
    ours = errors.translate(raised)
    assert type(ours) is errors.NotServed and isinstance(ours, errors.Rejected)
    assert not isinstance(ours, errors.Retryable)
    await client.close()


@pytest.mark.parametrize(("status", "reason"), [(400, "Bad Request"), (451, "Unavailable For Legal Reasons")])
async def test_a_refusal_without_an_exchange_code_is_final(client: ccxt.Exchange, status: int, reason: str) -> None:
    ours = errors.translate(_ccxt_error_for(client, status, reason, "<html>refused</html>"))
    assert type(ours) is errors.Rejected
    await client.close()


@pytest.mark.parametrize(
    ("status", "reason", "body"),
    [
        (500, "Internal Server Error", ""),
        (502, "Bad Gateway", "<html>bad gateway</html>"),
        (503, "Service Unavailable", '{"code": -1001, "msg": "Internal error; unable to process your request."}'),
        (504, "Gateway Timeout", ""),
        (408, "Request Timeout", ""),
        (403, "Forbidden", ""),  # Binance's WAF limit: lifts after a while
        (429, "Too Many Requests", '{"code": -1003, "msg": "Too many requests"}'),
        (418, "I'm a teapot", '{"code": -1003, "msg": "Way too many requests; IP banned"}'),
        (400, "Bad Request", '{"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}'),
    ],
)
async def test_transient_answers_stay_retryable(client: ccxt.Exchange, status: int, reason: str, body: str) -> None:
    ours = errors.translate(_ccxt_error_for(client, status, reason, body))
    assert isinstance(ours, errors.Retryable), (status, type(ours))
    await client.close()


@pytest.mark.parametrize(
    "raised",
    [
        ccxt.ExchangeNotAvailable(f"binanceusdm GET {URL}"),  # connection refused / reset: no HTTP status
        ccxt.RequestTimeout(f"binanceusdm GET {URL}"),
        ccxt.NetworkError("binanceusdm connection closed by remote server, closing code 1006"),
    ],
)
def test_failures_without_an_answer_stay_retryable(raised: ccxt.BaseError) -> None:
    assert type(errors.translate(raised)) is errors.Retryable


def test_http_status_reads_only_ccxts_status_form() -> None:
    assert errors.http_status(f"binanceusdm GET {URL} 404 Not Found ") == 404
    assert errors.http_status(f"binanceusdm POST {URL} 503 Service Unavailable <html>") == 503
    assert errors.http_status(f"binanceusdm GET {URL}") is None
    assert errors.http_status('binanceusdm {"code": -1021, "msg": "404 things"}') is None
