"""/api/v1/auth: thin handlers over the account service (CONTRACT.md "Auth")."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tradebot.accounts.emails import EMAIL_SCHEMA_PATTERN, MAX_EMAIL_CHARS, normalize_email
from tradebot.accounts.service import AuthenticatedUser
from tradebot.http.appkeys import ACCOUNTS, PRINCIPAL
from tradebot.http.client_ip import client_ip
from tradebot.http.json_response import json_response
from tradebot.http.request_body import parse_body
from tradebot.http.routing import RouteTable
from tradebot.security.passwords import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS

routes = RouteTable()

PREFIX = "/api/v1/auth"
TAGS = ["auth"]
# Tokens and account data must not sit in shared caches (OWASP ASVS 8.1.1).
NO_STORE = {"Cache-Control": "no-store"}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# Normalised (trimmed, lower-case) and checked; the length cap stops huge inputs before the regex.
Email = Annotated[
    str,
    Field(max_length=MAX_EMAIL_CHARS + 64, json_schema_extra={"format": "email", "pattern": EMAIL_SCHEMA_PATTERN}),
    AfterValidator(normalize_email),
]


# Never trimmed or otherwise changed: what the user typed is what is hashed.
NewPassword = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD_CHARS,
        max_length=MAX_PASSWORD_CHARS,
        description=(
            "8–1024 characters, used exactly as typed (never trimmed); not among the 100,000 most common"
            " passwords (case-insensitively), not the email or its local part, not one character repeated"
        ),
    ),
]
AnyPassword = Field(min_length=1, max_length=MAX_PASSWORD_CHARS)


class RegisterBody(_Body):
    email: Email
    password: NewPassword


class LoginBody(_Body):
    # Not format-checked: a malformed address is just an unknown one (401, like any other).
    email: str = Field(min_length=1, max_length=MAX_EMAIL_CHARS + 64)
    password: str = AnyPassword
    remember_me: bool = False


class PasswordChangeBody(_Body):
    current_password: str = AnyPassword
    new_password: NewPassword


class ResetRequestBody(_Body):
    email: Email


class ResetConfirmBody(_Body):
    token: str = Field(min_length=1, max_length=200)
    new_password: NewPassword


class RegisteredUser(BaseModel):
    """The new account."""

    id: int
    email: str
    created_at: dt.datetime


class CurrentUser(BaseModel):
    """The authenticated user."""

    id: int
    email: str
    is_active: bool
    created_at: dt.datetime


class AccessToken(BaseModel):
    """A bearer token for the Authorization header."""

    access_token: str
    token_type: Literal["bearer"]
    expires_in: int


def _caller(request: web.Request) -> AuthenticatedUser:
    p = request[PRINCIPAL]
    return AuthenticatedUser(p.user_id, p.email, p.token_id, p.token_expires_at)


@routes.route(
    "POST",
    f"{PREFIX}/register",
    summary="Create an account",
    body=RegisterBody,
    responses={201: RegisteredUser},
    errors=[409, 429],
    public=True,
    tags=TAGS,
)
async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, RegisterBody)
    user = await request.app[ACCOUNTS].register(body.email, body.password, client_ip=client_ip(request))
    out = RegisteredUser(id=user.id, email=user.email, created_at=user.created_at)
    return json_response(out, status=201, headers=NO_STORE)


@routes.route(
    "POST",
    f"{PREFIX}/login",
    summary="Exchange email and password for an access token",
    body=LoginBody,
    responses={200: AccessToken},
    errors=[401, 429],
    public=True,
    tags=TAGS,
)
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginBody)
    issued = await request.app[ACCOUNTS].login(
        body.email, body.password, remember_me=body.remember_me, client_ip=client_ip(request)
    )
    out = AccessToken(access_token=issued.token, token_type="bearer", expires_in=issued.expires_in)
    return json_response(out, headers=NO_STORE)


@routes.route("POST", f"{PREFIX}/logout", summary="Revoke this token", responses={204: None}, tags=TAGS)
async def logout(request: web.Request) -> web.Response:
    await request.app[ACCOUNTS].logout(_caller(request))
    return web.Response(status=204)


@routes.route("GET", f"{PREFIX}/me", summary="The authenticated user", responses={200: CurrentUser}, tags=TAGS)
async def me(request: web.Request) -> web.Response:
    user = await request.app[ACCOUNTS].me(request[PRINCIPAL].user_id)
    out = CurrentUser(id=user.id, email=user.email, is_active=user.is_active, created_at=user.created_at)
    return json_response(out, headers=NO_STORE)


@routes.route(
    "POST",
    f"{PREFIX}/password",
    summary="Change the password; every earlier token is refused",
    body=PasswordChangeBody,
    responses={204: None},
    errors=[429],
    tags=TAGS,
)
async def change_password(request: web.Request) -> web.Response:
    body = await parse_body(request, PasswordChangeBody)
    await request.app[ACCOUNTS].change_password(
        request[PRINCIPAL].user_id, body.current_password, body.new_password
    )
    return web.Response(status=204)


@routes.route(
    "POST",
    f"{PREFIX}/password-reset/request",
    summary="Mail a password reset link (202 whether or not the email exists)",
    body=ResetRequestBody,
    responses={202: None},
    errors=[429],
    public=True,
    tags=TAGS,
)
async def request_password_reset(request: web.Request) -> web.Response:
    body = await parse_body(request, ResetRequestBody)
    await request.app[ACCOUNTS].request_password_reset(body.email, client_ip=client_ip(request))
    return web.Response(status=202)


@routes.route(
    "POST",
    f"{PREFIX}/password-reset/confirm",
    summary="Set a new password with a reset token",
    body=ResetConfirmBody,
    responses={204: None},
    errors=[400],
    public=True,
    tags=TAGS,
)
async def confirm_password_reset(request: web.Request) -> web.Response:
    body = await parse_body(request, ResetConfirmBody)
    await request.app[ACCOUNTS].confirm_password_reset(body.token, body.new_password)
    return web.Response(status=204)
