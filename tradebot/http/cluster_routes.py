"""/api/v1/cluster: the leader and the live replicas with the bots each runs (CONTRACT.md).

Operators only (TRADEBOT_ADMIN_EMAILS): replica ids carry host names and pids, and bot counts tell
one tenant about the others. Everybody else gets the same 404 as a route that does not exist.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web
from pydantic import BaseModel

from tradebot.http.appkeys import DB, PRINCIPAL, REDIS, SETTINGS
from tradebot.http.json_response import json_response
from tradebot.http.problems import Problem
from tradebot.http.routing import RouteTable
from tradebot.runtime.cluster.view import read_cluster

routes = RouteTable()


class ReplicaOut(BaseModel):
    """A live replica."""

    id: str
    started_at: str
    bots: int


class ClusterOut(BaseModel):
    """The cluster as Redis (membership, leader) and PostgreSQL (running bots) see it now."""

    leader: str | None
    replicas: list[ReplicaOut]


@routes.route(
    "GET",
    "/api/v1/cluster",
    summary="Leader and live replicas",
    description="Operators only (TRADEBOT_ADMIN_EMAILS); 404 for everybody else. `bots` counts the bots "
    "whose state says they run on that replica. 503 while Redis, which holds membership and leadership, "
    "does not answer.",
    responses={200: ClusterOut},
    errors=[404, 503],
    tags=["cluster"],
)
async def get_cluster(request: web.Request) -> web.Response:
    app = request.app
    if request[PRINCIPAL].email.strip().lower() not in app[SETTINGS].admin_email_set:
        raise Problem(404, f"no route for {request.path}")
    try:
        view = await read_cluster(app[REDIS], app[DB], app[SETTINGS].redis_prefix)
    except (OSError, aioredis.RedisError) as e:
        raise Problem(503, "cluster membership is unavailable (Redis does not answer)",
                      headers={"Retry-After": "5"}) from e
    body = ClusterOut(leader=view.leader,
                      replicas=[ReplicaOut(id=r.id, started_at=r.started_at, bots=r.bots) for r in view.replicas])
    return json_response(body)
