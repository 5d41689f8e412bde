"""The old system's request stack, rebuilt for bench_api.py: FastAPI on uvicorn (uvloop, httptools),
one SQLAlchemy 2.0 AsyncSession per request on asyncpg, pyjwt, a Redis revocation check and one user
SELECT per authenticated request. Same database, tables, token and Redis keys as tradebot.

Only the `bench` extra installs what it needs; nothing in tradebot imports it. Configured by
environment variables: OLD_DATABASE_URL (postgresql+asyncpg://…), OLD_REDIS_URL, OLD_REDIS_PREFIX,
OLD_JWT_SECRET. Run: uvicorn bench.old_stack:app --loop uvloop --http httptools
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any

import jwt
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, Numeric, String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DATABASE_URL = os.environ.get("OLD_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("OLD_REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("OLD_REDIS_PREFIX", "tradebot")
JWT_SECRET = os.environ.get("OLD_JWT_SECRET", "x" * 48)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String)
    is_active: Mapped[bool] = mapped_column(Boolean)
    token_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class BotConfig(Base):
    __tablename__ = "bot_configs"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    api_key_id: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String)
    symbol: Mapped[str] = mapped_column(String)
    timeframe: Mapped[str] = mapped_column(String)
    ema_period: Mapped[int] = mapped_column(Integer)
    leverage: Mapped[int] = mapped_column(Integer)
    order_size_pct: Mapped[float] = mapped_column(Float)
    allow_short: Mapped[bool] = mapped_column(Boolean)
    max_daily_trades: Mapped[int] = mapped_column(Integer)
    max_daily_loss_pct: Mapped[float] = mapped_column(Float)
    stop_loss_pct: Mapped[float | None] = mapped_column(Float)
    take_profit_pct: Mapped[float | None] = mapped_column(Float)
    is_active: Mapped[bool] = mapped_column(Boolean)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class BotState(Base):
    __tablename__ = "bot_state"
    bot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bot_configs.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String)
    in_position: Mapped[bool] = mapped_column(Boolean)
    position_side: Mapped[str | None] = mapped_column(String)
    position_size: Mapped[Decimal] = mapped_column(Numeric)
    entry_price: Mapped[Decimal | None] = mapped_column(Numeric)
    daily_pnl: Mapped[Decimal] = mapped_column(Numeric)
    daily_trades_count: Mapped[int] = mapped_column(Integer)
    last_error_message: Mapped[str | None] = mapped_column(String)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    replica_id: Mapped[str | None] = mapped_column(String)


class Trade(Base):
    __tablename__ = "trades"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bot_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String)
    side: Mapped[str] = mapped_column(String)
    price: Mapped[Decimal] = mapped_column(Numeric)
    amount: Mapped[Decimal] = mapped_column(Numeric)
    fee: Mapped[Decimal | None] = mapped_column(Numeric)
    realized_pnl: Mapped[Decimal] = mapped_column(Numeric)
    client_order_id: Mapped[str] = mapped_column(String)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class UserOut(_Out):
    id: int
    email: str
    is_active: bool
    created_at: dt.datetime


class StateOut(_Out):
    status: str
    in_position: bool
    position_side: str | None
    position_size: float
    entry_price: float | None
    daily_pnl: float
    daily_trades_count: int
    last_error_message: str | None
    last_run_at: dt.datetime | None
    last_updated_at: dt.datetime
    replica_id: str | None


class BotOut(_Out):
    id: int
    name: str
    api_key_id: int | None
    symbol: str
    timeframe: str
    ema_period: int
    leverage: int
    order_size_pct: float
    allow_short: bool
    max_daily_trades: int
    max_daily_loss_pct: float
    stop_loss_pct: float | None
    take_profit_pct: float | None
    is_active: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    state: StateOut | None


class BotPage(BaseModel):
    items: list[BotOut]
    next_cursor: str | None


class TradeOut(_Out):
    id: int
    bot_id: int
    symbol: str
    side: str
    price: float
    amount: float
    fee: float | None
    realized_pnl: float
    client_order_id: str
    created_at: dt.datetime


class TradePage(BaseModel):
    items: list[TradeOut]
    next_cursor: str | None


engine = create_async_engine(DATABASE_URL, pool_size=20, max_overflow=30)
Session = async_sessionmaker(engine, expire_on_commit=False)
redis = aioredis.Redis.from_url(REDIS_URL, decode_responses=True, max_connections=2000)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await engine.dispose()
    await redis.aclose()


app = FastAPI(lifespan=lifespan)


async def get_db() -> AsyncIterator[AsyncSession]:
    async with Session() as session:
        yield session


DB = Annotated[AsyncSession, Depends(get_db)]


async def current_user(db: DB, authorization: Annotated[str | None, Header()] = None) -> User:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "not authenticated")
    try:
        claims: dict[str, Any] = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], audience="tradebot-api",
                                            issuer="tradebot")
    except jwt.PyJWTError as e:
        raise HTTPException(401, "invalid token") from e
    if await redis.exists(f"{PREFIX}:revoked:{claims['jti']}"):
        raise HTTPException(401, "revoked")
    user = (await db.execute(select(User).where(User.id == int(claims["sub"])))).scalar_one_or_none()
    if user is None or not user.is_active or user.token_version != claims["ver"]:
        raise HTTPException(401, "invalid token")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/v1/auth/me", response_model=UserOut)
async def me(user: CurrentUser) -> User:
    return user


@app.get("/api/v1/bots", response_model=BotPage)
async def bots(user: CurrentUser, db: DB, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> BotPage:
    rows = (
        await db.execute(
            select(BotConfig, BotState)
            .outerjoin(BotState, BotState.bot_id == BotConfig.id)
            .where(BotConfig.user_id == user.id, BotConfig.deleted_at.is_(None))
            .order_by(BotConfig.id)
            .limit(limit + 1)
        )
    ).all()
    items = [
        BotOut.model_validate({**{k: getattr(c, k) for k in BotOut.model_fields if k != "state"},
                               "state": StateOut.model_validate(s) if s else None})
        for c, s in rows[:limit]
    ]
    return BotPage(items=items, next_cursor=str(items[-1].id) if len(rows) > limit else None)


@app.get("/api/v1/trades", response_model=TradePage)
async def trades(user: CurrentUser, db: DB, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> TradePage:
    rows = (
        await db.execute(
            select(Trade).where(Trade.user_id == user.id)
            .order_by(Trade.created_at.desc(), Trade.id.desc()).limit(limit + 1)
        )
    ).scalars().all()
    items = [TradeOut.model_validate(t) for t in rows[:limit]]
    return TradePage(items=items, next_cursor=str(items[-1].id) if len(rows) > limit else None)


@app.get("/api/v1/status-stream")
async def status_stream(request: Request, authorization: Annotated[str | None, Header()] = None) -> StreamingResponse:
    """The old design's live status: one Redis pub/sub connection per client, relayed as SSE. The
    session is closed before streaming (a dependency's would be held for the stream's life)."""
    async with Session() as db:
        await current_user(db, authorization)
    channel = f"{PREFIX}:bot-events"

    async def events() -> AsyncIterator[str]:
        pubsub = redis.pubsub()
        await pubsub.subscribe(channel)
        try:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None:
                    continue
                data = json.loads(msg["data"])
                yield f"id: {data['id']}\nevent: {data['event']}\ndata: {json.dumps(data['data'])}\n\n"
        finally:
            await asyncio.shield(pubsub.aclose())

    return StreamingResponse(events(), media_type="text/event-stream")
