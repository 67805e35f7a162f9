"""Creating a topic right after a cluster started, before its nodes are registered.

A node becomes a node of the metadata (one that takes replicas) once the controller's leader
registered it, a moment after it became a voter. A topic created in that moment was refused
with INVALID_ARGUMENT ("the 0 active nodes of the cluster"), which a client does not retry,
or, with voters still unregistered, placed on fewer replicas than the default asks for. Now
the cluster answers UNAVAILABLE (certainly not applied) until every voter is registered, and
the client's retry creates it. The window is short, so the test opens it several times.
"""

from __future__ import annotations

from pathlib import Path

from replog.client import Client
from tests.cluster.conftest import Cluster, wait_until

_STARTS = 6


def test_a_topic_created_as_soon_as_a_fresh_cluster_leads_gets_the_default_replicas(
    tmp_path: Path,
) -> None:
    for start in range(_STARTS):
        cluster = Cluster(tmp_path / str(start))
        try:
            node = cluster.start_node("n1", bootstrap=True)
            wait_until(node.is_leader, 10, "n1 to lead")
            with Client(node.grpc_address) as client:
                created = client.create_topic("orders", 2)
            assert created.replication_factor == 1, (start, created)
            assert [p.replicas for p in created.partitions] == [("n1",), ("n1",)], created
        finally:
            cluster.stop_all()
