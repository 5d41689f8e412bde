"""The ccxt client factory's URL rewriting and error maps, and the translation of ccxt's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import ccxt.async_support as ccxt
import pytest

from tradebot.exchange import errors
from tradebot.exchange.ccxt_factory import ExchangeClientFactory, build_client


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    return []


@pytest.fixture
async def factory() -> AsyncIterator[ExchangeClientFactory]:
    f = ExchangeClientFactory("http://127.0.0.1:8090")
    yield f
    await f.close()


async def test_every_rest_and_websocket_url_points_at_the_base(factory: ExchangeClientFactory) -> None:
    client = factory.public_client("binanceusdm")
    api = client.urls["api"]
    rest = [u for k, v in api.items() if k != "ws" for u in _strings(v)]
    assert rest and all(u.startswith("http://127.0.0.1:8090/") for u in rest)
    assert api["fapiPublic"] == "http://127.0.0.1:8090/fapi/v1"
    assert api["fapiPrivateV3"] == "http://127.0.0.1:8090/fapi/v3"
    assert all(u.startswith("ws://127.0.0.1:8090/") for u in _strings(api["ws"]))
    assert api["ws"]["linear"] == "ws://127.0.0.1:8090/ws"
    assert client.get_ws_url("linear", "market") == "ws://127.0.0.1:8090/market/ws"
    assert client.options["fetchCurrencies"] is False and client.enableRateLimit is True


async def test_linear_error_codes_are_merged(factory: ExchangeClientFactory) -> None:
    exact = factory.public_client("binanceusdm").exceptions["exact"]
    assert exact["-4116"] is ccxt.InvalidOrder
    assert exact["-2019"] is ccxt.InsufficientFunds
    assert exact["-4164"] is ccxt.InvalidOrder
    assert exact["-1021"] is ccxt.InvalidNonce
    assert exact["-1022"] is ccxt.AuthenticationError
    assert exact["-1001"] is ccxt.ExchangeNotAvailable


async def test_clients_are_shared_per_exchange_and_per_key(factory: ExchangeClientFactory) -> None:
    assert factory.public_client("binanceusdm") is factory.public_client("binanceusdm")
    a = factory.private_client("binanceusdm", "key-a", "secret")
    assert factory.private_client("binanceusdm", "key-a", "secret") is a
    assert factory.private_client("binanceusdm", "key-b", "secret") is not a
    rotated = factory.private_client("binanceusdm", "key-a", "new-secret")
    assert rotated is not a and rotated.secret == "new-secret"
    await factory.release_private_client("binanceusdm", "key-b")


async def test_https_base_gives_wss_and_a_path_prefix_is_kept() -> None:
    client = build_client("binanceusdm", base_url="https://sim.example:9443/prefix/")
    try:
        assert client.urls["api"]["fapiPublic"] == "https://sim.example:9443/prefix/fapi/v1"
        assert client.urls["api"]["ws"]["linear"] == "wss://sim.example:9443/prefix/ws"
    finally:
        await client.close()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported exchange"):
        build_client("kraken")
    with pytest.raises(ValueError, match="api_key and secret"):
        build_client("binanceusdm", api_key="k")
    with pytest.raises(ValueError, match="base URL"):
        build_client("binanceusdm", base_url="127.0.0.1:8090")


@pytest.mark.parametrize(
    ("ccxt_error", "ours"),
    [
        (ccxt.InsufficientFunds, errors.InsufficientBalance),
        (ccxt.AuthenticationError, errors.InvalidCredentials),
        (ccxt.PermissionDenied, errors.InvalidCredentials),
        (ccxt.OrderNotFound, errors.OrderNotFound),
        (ccxt.InvalidOrder, errors.Rejected),
        (ccxt.DuplicateOrderId, errors.Rejected),
        (ccxt.BadSymbol, errors.Rejected),
        (ccxt.BadRequest, errors.Rejected),
        (ccxt.NetworkError, errors.Retryable),
        (ccxt.RequestTimeout, errors.Retryable),
        (ccxt.RateLimitExceeded, errors.Retryable),
        (ccxt.DDoSProtection, errors.Retryable),
        (ccxt.ExchangeNotAvailable, errors.Retryable),
        (ccxt.InvalidNonce, errors.Retryable),
        (ccxt.OperationFailed, errors.Retryable),
        (ccxt.ExchangeError, errors.ExchangeError),
    ],
)
def test_translate_groups_ccxt_errors_by_what_the_caller_must_do(
    ccxt_error: type[ccxt.BaseError], ours: type[errors.ExchangeError]
) -> None:
    translated = errors.translate(ccxt_error('binanceusdm {"code":-4116,"msg":"ClientOrderId is duplicated."}'))
    assert type(translated) is ours
    assert translated.code == "-4116"


def test_translated_chains_the_cause() -> None:
    cause = ccxt.InsufficientFunds('binanceusdm {"code": -2019, "msg": "Margin is insufficient."}')
    with pytest.raises(errors.InsufficientBalance) as info, errors.translated():
        raise cause
    assert info.value.__cause__ is cause and info.value.code == "-2019"
    assert isinstance(info.value, errors.Rejected)


async def test_a_subclass_gets_the_same_configuration_and_urls() -> None:
    import ccxt.pro

    class Tapped(ccxt.pro.binanceusdm):  # type: ignore[misc]  # ccxt is untyped: its classes are Any
        pass

    client = build_client("binanceusdm", base_url="http://127.0.0.1:1", client_class=Tapped)
    try:
        assert isinstance(client, Tapped)
        assert client.urls["api"]["ws"]["linear"] == "ws://127.0.0.1:1/ws"
        assert client.exceptions["exact"]["-4116"] is ccxt.InvalidOrder
        assert client.options["fetchCurrencies"] is False
    finally:
        await client.close()
