"""A node's view of the cluster, as ``replog.v1.Cluster/Status`` reports it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from replog.cluster.members import AddressBook
from replog.cluster.raft_node import RaftNode
from replog.raft.ready import Role
from replog.v1 import cluster_pb2

__all__ = ["cluster_status"]


def cluster_status(
    node: RaftNode,
    name: str,
    book: AddressBook,
    members: list[tuple[int, str, str, bool]],
    live: Callable[[int], bool] = lambda _: True,
) -> cluster_pb2.StatusResponse:
    """The controller group's members (``members``: raft id, name, address, voter) with
    their roles, replication progress and last contact, as ``node`` (named ``name``) sees
    them; a member other than ``node`` that node liveness (``live``) holds down has the role
    ``unreachable``."""
    raft = node.raft
    now = asyncio.get_running_loop().time()
    lead = raft.lead
    out = []
    for m, member_name, addr, voter in members:
        pr = raft.progress.get(m) if raft.role is Role.LEADER else None
        match = raft.log.last_index() if m == node.id else (pr.match if pr else 0)
        contact = node.last_contact.get(m)
        role = "leader" if m == lead else ("follower" if voter else "learner")
        if m != node.id and not live(m):
            role = "unreachable"
        out.append(
            cluster_pb2.Member(
                id=member_name,
                rpc_addr=addr,
                role=role,
                voter=voter,
                is_leader=m == lead,
                match_index=match,
                lag=max(0, raft.log.committed - match) if match else 0,
                last_contact_s=-1.0 if contact is None or m == node.id else now - contact,
            )
        )
    return cluster_pb2.StatusResponse(
        node_id=name,
        leader_id=book.name(lead) if lead is not None else "",
        term=raft.term,
        commit_index=raft.log.committed,
        members=out,
        role=raft.role.value,
    )
