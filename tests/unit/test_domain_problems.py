"""Domain refusals become problem responses in one place: the registry the problems middleware consults.

The responses themselves (status, type, title, detail, errors, headers) are checked end to end by
the API tests; here: the middleware answers from the registry, every refusal has its own entry, and
no handler translates a domain error by itself.
"""

from __future__ import annotations

import ast
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tradebot.accounts.errors import AccountError, RateLimited
from tradebot.backtests.errors import BacktestError
from tradebot.bots.errors import BotError, BotLimitReached, InvalidBotSettings
from tradebot.http.domain_problems import DOMAIN_PROBLEMS, problem_for
from tradebot.http.middlewares import problems
from tradebot.security.password_policy import WeakPassword

HTTP = Path(__file__).resolve().parents[2] / "tradebot" / "http"
DOMAIN_BASES: tuple[type[Exception], ...] = (AccountError, BotError, BacktestError)
# A bad token is not a bad password: the bearer authenticator answers with its own 401.
# The Telegram desk answers chat commands, not HTTP requests: it turns the bots service's refusals
# into the chat's answers itself.
ALLOWED_CATCHES = {
    ("accounts_app.py", "InvalidCredentials"),
    ("telegram_app.py", "BotNotFound"),
    ("telegram_app.py", "CommandRefused"),
}


def _subclasses(cls: type[Exception]) -> set[type[Exception]]:
    out = set(cls.__subclasses__())
    for sub in tuple(out):
        out |= _subclasses(sub)
    return out


def domain_errors() -> set[type[Exception]]:
    found: set[type[Exception]] = {WeakPassword}
    for base in DOMAIN_BASES:
        found |= {base} | _subclasses(base)
    return found


def test_every_domain_error_has_its_own_entry() -> None:
    missing = sorted(f"{c.__module__}.{c.__qualname__}" for c in domain_errors() if c not in DOMAIN_PROBLEMS)
    assert not missing, f"add these to tradebot.http.domain_problems.DOMAIN_PROBLEMS: {missing}"


def test_the_most_specific_entry_wins_and_the_base_is_the_fallback() -> None:
    class Unlisted(BotError):
        pass

    limit = problem_for(BotLimitReached(3))
    assert limit is not None and limit.status == 409 and "maximum of 3 bots" in limit.detail
    fallback = problem_for(Unlisted())
    assert fallback is not None and (fallback.status, fallback.detail) == (400, "request refused")
    assert problem_for(ValueError("a bug")) is None


def _caught_names(node: ast.expr | None) -> list[str]:
    if node is None:
        return []
    if isinstance(node, ast.Tuple):
        return [n for elt in node.elts for n in _caught_names(elt)]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    return [node.id] if isinstance(node, ast.Name) else []


def test_no_handler_translates_a_domain_error_itself() -> None:
    names = {c.__name__ for c in domain_errors()}
    found = []
    for path in sorted(HTTP.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ExceptHandler):
                found += [
                    f"{path.name}:{node.lineno}: except {name}"
                    for name in _caught_names(node.type)
                    if name in names and (path.name, name) not in ALLOWED_CATCHES
                ]
    assert not found, "let the problems middleware map these (tradebot.http.domain_problems):\n" + "\n".join(found)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]]) -> TestClient[
    web.Request, web.Application
]:
    def raising(error: Exception) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            raise error

        return handler

    app = web.Application(middlewares=[problems])
    app.router.add_get("/limit", raising(BotLimitReached(7)))
    app.router.add_get("/settings", raising(InvalidBotSettings([("symbol", "unknown symbol")])))
    app.router.add_get("/rate", raising(RateLimited(1.2)))
    app.router.add_get("/weak", raising(WeakPassword("must not be a single character repeated", "new_password")))
    app.router.add_get("/bug", raising(RuntimeError("a bug")))
    return await aiohttp_client(app)


async def test_the_middleware_answers_a_domain_error_with_its_problem(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/limit")
    assert resp.status == 409 and resp.content_type == "application/problem+json"
    assert await resp.json() == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "this account already has the maximum of 7 bots (TRADEBOT_MAX_BOTS_PER_USER); "
        "delete one to create another",
    }
    resp = await client.get("/settings")
    body = await resp.json()
    assert resp.status == 422 and body["errors"] == [{"field": "symbol", "message": "unknown symbol"}]
    assert body["title"] == "Unprocessable Content" and body["detail"] == "invalid value for: symbol"
    resp = await client.get("/rate")
    assert resp.status == 429 and resp.headers["Retry-After"] == "2"
    resp = await client.get("/weak")
    body = await resp.json()
    assert resp.status == 422
    assert body["errors"] == [{"field": "new_password", "message": "must not be a single character repeated"}]


async def test_an_error_no_entry_covers_is_still_a_500(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/bug")
    assert resp.status == 500 and (await resp.json())["detail"].startswith("internal error")
