"""The cluster (DESIGN.md "Cluster"): membership, leader election, rendezvous assignment.

- assignment: pure rendezvous hashing (which replica runs which bot);
- membership: a TTL'd key per live replica;
- leader: the leader key (SET NX PX, compare-and-extend);
- published_map: the leader's map in Redis and the cluster notices;
- coordinator: this replica's loop tying them together, and `assignment()` for BotRuntime;
- view / metrics: what GET /api/v1/cluster and /metrics show.
"""

from tradebot.runtime.cluster.coordinator import ClusterCoordinator, ClusterStats, ClusterTiming
from tradebot.runtime.cluster.membership import ReplicaInfo, live_replicas
from tradebot.runtime.cluster.view import ClusterView, ReplicaView, read_cluster

__all__ = [
    "ClusterCoordinator",
    "ClusterStats",
    "ClusterTiming",
    "ClusterView",
    "ReplicaInfo",
    "ReplicaView",
    "live_replicas",
    "read_cluster",
]
