"""``replog cluster``: status, remove, transfer-leader and decommission against a replicated
cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import grpc
import typer

from replog.cli.client_commands import _DEFAULT_SERVER, CaOpt, CertOpt, KeyOpt, ServerOpt
from replog.security.tls import TLSConfig, grpc_channel_credentials
from replog.v1 import cluster_pb2

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


def _call(  # noqa: PLR0917  (the CLI's TLS options travel together)
    server: str, ca: Path | None, cert: Path | None, key: Path | None, method: str, request: Any
) -> Any:
    """Call ``replog.v1.Cluster/method``; follow one ``replog-leader`` redirect."""
    responses: dict[str, Any] = {
        "Status": cluster_pb2.StatusResponse,
        "Remove": cluster_pb2.RemoveResponse,
        "TransferLeader": cluster_pb2.TransferLeaderResponse,
        "Decommission": cluster_pb2.DecommissionResponse,
        "ReassignPartition": cluster_pb2.ReassignPartitionResponse,
    }
    for _ in range(2):
        if ca or cert:
            tls = TLSConfig(
                str(cert) if cert else None, str(key) if key else None, str(ca) if ca else None
            )
            channel = grpc.secure_channel(server, grpc_channel_credentials(tls))
        else:
            channel = grpc.insecure_channel(server)
        with channel:
            stub = channel.unary_unary(
                f"/replog.v1.Cluster/{method}",
                request_serializer=type(request).SerializeToString,
                response_deserializer=responses[method].FromString,
            )
            try:
                return stub(request, timeout=20)
            except grpc.RpcError as exc:
                leader = dict(exc.trailing_metadata() or ()).get("replog-leader")
                if leader and leader != server:
                    server = str(leader)
                    continue
                print(f"replog: error: {exc.details()}", file=sys.stderr)
                raise typer.Exit(1) from None
    raise typer.Exit(1)


@app.command("status")
def status_command(
    server: ServerOpt = _DEFAULT_SERVER, ca: CaOpt = None, cert: CertOpt = None, key: KeyOpt = None
) -> None:
    """Show every member: role, address, match index, lag, last contact (leader's view);
    the nodes of the metadata with their state, and the moves in progress."""
    from rich.console import Console
    from rich.table import Table

    answer = _call(server, ca, cert, key, "Status", cluster_pb2.StatusRequest())
    title = (
        f"node {answer.node_id} ({answer.role}), term {answer.term}, commit {answer.commit_index}"
    )
    table = Table("id", "address", "role", "voter", "match", "lag", "last contact", title=title)
    for m in answer.members:
        contact = "" if m.last_contact_s < 0 else f"{m.last_contact_s:.2f}s"
        table.add_row(
            m.id,
            m.rpc_addr,
            m.role,
            "yes" if m.voter else "no",
            str(m.match_index),
            str(m.lag),
            contact,
        )
    console = Console()
    console.print(table)
    if answer.nodes:
        nodes = Table("id", "address", "state", "partitions", title="nodes")
        for n in answer.nodes:
            nodes.add_row(n.id, n.rpc_addr, n.state, str(n.partitions))
        console.print(nodes)
    if answer.moves:
        console.print(moves_table(answer.moves))


def moves_table(moves: Any) -> Any:
    """A table of partition moves (topic, partition, replicas -> target)."""
    from rich.table import Table

    table = Table("topic", "partition", "replicas", "target", title="moves in progress")
    for m in moves:
        table.add_row(m.topic, str(m.partition), ",".join(m.replicas), ",".join(m.target))
    return table


@app.command("remove")
def remove_command(
    node_id: str,
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Remove member NODE_ID from the cluster."""
    _call(server, ca, cert, key, "Remove", cluster_pb2.RemoveRequest(node_id=node_id))
    print(f"removed {node_id}")


@app.command("transfer-leader")
def transfer_command(
    node_id: str = typer.Argument("", help="The new leader [default: the most caught-up voter]."),
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Hand leadership to NODE_ID."""
    answer = _call(
        server, ca, cert, key, "TransferLeader", cluster_pb2.TransferLeaderRequest(node_id=node_id)
    )
    print(f"leader is now {answer.leader_id}")


@app.command("decommission")
def decommission_command(
    node_id: str,
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Move every replica of NODE_ID to other nodes, then remove it from the cluster.

    Returns once the decommission is recorded; `replog cluster status` shows the moves
    and, at the end, the node as decommissioned."""
    from rich.console import Console

    request = cluster_pb2.DecommissionRequest(node_id=node_id)
    answer = _call(server, ca, cert, key, "Decommission", request)
    print(f"decommissioning {node_id}: {len(answer.moves)} partitions to move")
    if answer.moves:
        Console().print(moves_table(answer.moves))
