"""``replog cluster``: status, remove, transfer-leader and decommission against a replicated
cluster."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Any, NoReturn

import grpc
import typer

from replog.cli.client_commands import _DEFAULT_SERVER, CaOpt, CertOpt, KeyOpt, ServerOpt
from replog.security.tls import TLSConfig, grpc_channel_credentials
from replog.v1 import cluster_pb2

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


_RESPONSES: dict[str, Any] = {
    "Status": cluster_pb2.StatusResponse,
    "Remove": cluster_pb2.RemoveResponse,
    "TransferLeader": cluster_pb2.TransferLeaderResponse,
    "Decommission": cluster_pb2.DecommissionResponse,
    "ReassignPartition": cluster_pb2.ReassignPartitionResponse,
}


def _fail(message: str) -> NoReturn:
    print(f"replog: error: {message}", file=sys.stderr)
    raise typer.Exit(1)


def _once(server: str, tls: TLSConfig | None, method: str, request: Any) -> Any:
    """One call of ``replog.v1.Cluster/method`` on ``server`` (raises grpc.RpcError)."""
    if tls is not None:
        channel = grpc.secure_channel(server, grpc_channel_credentials(tls))
    else:
        channel = grpc.insecure_channel(server)
    with channel:
        stub = channel.unary_unary(
            f"/replog.v1.Cluster/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=_RESPONSES[method].FromString,
        )
        return stub(request, timeout=20)


def _call(  # noqa: PLR0917  (the CLI's TLS options travel together)
    server: str, ca: Path | None, cert: Path | None, key: Path | None, method: str, request: Any
) -> tuple[Any, str, set[str]]:
    """Call ``replog.v1.Cluster/method`` on the first of the comma-separated ``server``
    addresses that answers, following ``replog-leader`` redirects; the answer, the address
    that gave it and the addresses found unreachable. Exits with one line on an error."""
    tls = None
    if ca or cert:
        tls = TLSConfig(
            str(cert) if cert else None, str(key) if key else None, str(ca) if ca else None
        )
    queue = [s.strip() for s in server.split(",") if s.strip()]
    if not queue:
        _fail("--server needs at least one HOST:PORT")
    tried: set[str] = set()
    down: set[str] = set()
    last = ""
    while queue and len(tried) < 16:
        addr = queue.pop(0)
        if addr in tried:
            continue
        tried.add(addr)
        try:
            return _once(addr, tls, method, request), addr, down
        except grpc.RpcError as exc:
            leader = dict(exc.trailing_metadata() or ()).get("replog-leader")
            if leader and str(leader) not in tried:
                queue.insert(0, str(leader))
                continue
            if exc.code() is not grpc.StatusCode.UNAVAILABLE:
                _fail(str(exc.details()))
            down.add(addr)
            last = f"{addr}: {exc.details()}"
    _fail(f"no server answered ({last})")


def _leader_status(
    server: str, ca: Path | None, cert: Path | None, key: Path | None
) -> tuple[Any, set[str]]:
    """The cluster status as its leader sees it, whichever node ``server`` names first
    (the answering node's own view when there is no leader or it does not answer), and the
    addresses found unreachable."""
    answer, addr, down = _call(server, ca, cert, key, "Status", cluster_pb2.StatusRequest())
    if answer.role == "leader" or not answer.leader_id:
        return answer, down
    leader = next((m.rpc_addr for m in answer.members if m.id == answer.leader_id), "")
    if not leader or leader == addr:
        return answer, down
    with contextlib.suppress(typer.Exit):
        with contextlib.redirect_stderr(io.StringIO()):
            better, _, more = _call(leader, ca, cert, key, "Status", cluster_pb2.StatusRequest())
        return better, down | more
    return answer, down | {leader}


@app.command("status")
def status_command(
    server: ServerOpt = _DEFAULT_SERVER, ca: CaOpt = None, cert: CertOpt = None, key: KeyOpt = None
) -> None:
    """Show every member: role, address, match index, lag, last contact (leader's view);
    the nodes of the metadata with their state, and the moves in progress."""
    from rich.console import Console
    from rich.table import Table

    answer, down = _leader_status(server, ca, cert, key)
    title = (
        f"node {answer.node_id} ({answer.role}), term {answer.term}, commit {answer.commit_index}"
    )
    table = Table("id", "address", "role", "voter", "match", "lag", "last contact", title=title)
    for m in answer.members:
        contact = "" if m.last_contact_s < 0 else f"{m.last_contact_s:.2f}s"
        table.add_row(
            m.id,
            m.rpc_addr,
            "unreachable" if m.rpc_addr in down and m.id != answer.node_id else m.role,
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
    node_id: str = typer.Argument(
        "", help="The new leader.", show_default="the most caught-up voter"
    ),
    server: ServerOpt = _DEFAULT_SERVER,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
) -> None:
    """Hand leadership to NODE_ID."""
    request = cluster_pb2.TransferLeaderRequest(node_id=node_id)
    answer, _, _ = _call(server, ca, cert, key, "TransferLeader", request)
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
    answer, _, _ = _call(server, ca, cert, key, "Decommission", request)
    print(f"decommissioning {node_id}: {len(answer.moves)} partitions to move")
    if answer.moves:
        Console().print(moves_table(answer.moves))
