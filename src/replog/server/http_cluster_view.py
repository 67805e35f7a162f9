"""``GET /v1/cluster?view=leader``: the cluster as its controller leader sees it, whichever
node is asked (the CLI's ``replog cluster status`` does the same over gRPC).

A follower knows only its own view: every other member's match index and lag read 0 there,
and it cannot tell whether a follower is keeping up. Asked for the leader's view, it asks
the leader (``Cluster/Status`` over the node's own channel, 2 s at most) and answers that,
with ``asked`` naming itself; when there is no leader or it does not answer, its own view,
with ``view_of`` saying whose it is."""

from __future__ import annotations

import asyncio
import logging

import grpc

from replog.cluster.admin import NodeChannel, cluster_call
from replog.cluster.cluster_node import ClusterNode
from replog.v1 import cluster_pb2

__all__ = ["leader_view"]

log = logging.getLogger("replog.server")

_ASK_TIMEOUT_S = 2.0


async def leader_view(cluster: ClusterNode) -> tuple[cluster_pb2.StatusResponse, bool]:
    """The leader's status answer and True, or this node's own and False when this node
    leads, no leader is known or the leader does not answer in time."""
    own = cluster.status()
    if own.role == "leader" or not own.leader_id:
        return own, own.role == "leader"
    addr = next((m.rpc_addr for m in own.members if m.id == own.leader_id), "")
    if not addr:
        return own, False
    try:
        async with NodeChannel(addr, cluster.credentials) as channel:
            call = cluster_call(
                channel, "Status", cluster_pb2.StatusRequest(), cluster_pb2.StatusResponse
            )
            answer: cluster_pb2.StatusResponse = await asyncio.wait_for(call, _ASK_TIMEOUT_S)
    except (grpc.RpcError, TimeoutError, OSError) as exc:
        log.debug("asking the leader %s for its view failed: %s", addr, exc)
        return own, False
    return answer, answer.role == "leader"
