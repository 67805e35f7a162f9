"""Decommission under load on real ``replog serve`` processes: the node being decommissioned
is killed with SIGKILL half-way and restarted; the moves finish, the node leaves (and does
not come back when its restart asks to join again), and every acknowledged record of every
partition is still on its new replicas."""

from __future__ import annotations

import time

from typer.testing import CliRunner

from replog.cli import cluster as cluster_cli
from replog.client import Client
from tests.cluster.conftest import ProcCluster, wait_until
from tests.cluster.test_moves_on_a_cluster import Producer, _check_records


def test_decommission_under_load_survives_a_kill_9_of_the_leaving_node(
    procs: ProcCluster,
) -> None:
    procs.bootstrap(4, "--log-level", "info")
    with Client(procs.addresses()) as client:
        client.create_topic("load", 8, replication_factor=3)
        placed = client.describe_topic("load").partitions
    victim = "n2"
    others = [n for n in procs.names if n != victim]
    producer = Producer([procs.nodes[n].grpc_address for n in others], "load", 8)
    producer.start()
    try:
        wait_until(lambda: producer.count() >= 40, 30, "records before the decommission")
        server = procs.nodes[others[0]].grpc_address
        began = time.monotonic()
        result = CliRunner().invoke(cluster_cli.app, ["decommission", victim, "--server", server])
        assert result.exit_code == 0, result.output
        moving = sum(victim in p.replicas for p in placed) + 1  # and the controller group

        def status() -> object:
            leader = procs.leader(others)
            assert leader is not None
            return procs.nodes[leader].status(timeout=5)

        def progressed() -> bool:
            answer = status()
            return answer is not None and len(answer.moves) < moving  # type: ignore[attr-defined]

        wait_until(progressed, 60, "a first move to complete")
        procs.nodes[victim].kill()
        seen = producer.count()
        wait_until(lambda: producer.count() >= seen + 20, 30, "records with the node killed")
        procs.nodes[victim].start()

        def decommissioned() -> bool:
            answer = status()
            if answer is None:
                return False
            states = {n.id: n.state for n in answer.nodes}  # type: ignore[attr-defined]
            members = {m.id for m in answer.members}  # type: ignore[attr-defined]
            return states.get(victim) == "decommissioned" and victim not in members

        try:
            wait_until(decommissioned, 120, f"{victim} to be decommissioned")
        except AssertionError:
            print(f"status: {status()}")
            raise
        print(f"\ndecommission of {victim} under load (kill -9 and restart on the way): "
              f"{time.monotonic() - began:.1f} s")  # fmt: skip
        # Restarted on a new port, it asks to join again: the leader refuses.
        log_path = procs.nodes[victim].log_path
        wait_until(lambda: "cannot join again" in log_path.read_text(), 30, "the refusal")
        assert decommissioned()
        seen = producer.count()
        wait_until(lambda: producer.count() >= seen + 20, 30, "records afterwards")
    finally:
        producer.stop()
    with Client(procs.nodes[others[0]].grpc_address) as client:
        partitions = client.describe_topic("load").partitions
    assert all(victim not in p.replicas and len(p.replicas) == 3 for p in partitions)
    for p in partitions:
        mine = {k: v for k, v in producer.acked.items() if k[0] == p.partition}
        for name in p.replicas:
            _check_records(procs.nodes[name], "load", mine)
