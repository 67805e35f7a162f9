"""``replog cluster status`` on a real cluster: the leader's view whichever node is named,
and a dead node shown as unreachable."""

from __future__ import annotations

from tests.cluster.conftest import Cluster, wait_until
from tests.integration.test_cluster_cli_single import run


def test_status_named_at_a_follower_shows_the_leaders_view(three: Cluster) -> None:
    leader, follower = three.leader(), three.followers()[0]
    code, out, err = run("cluster", "status", "--server", follower.grpc_address)
    assert code == 0, err
    assert f"node {leader.name} (leader)" in out, out


def test_a_dead_node_is_shown_unreachable_and_a_dead_address_in_the_list_is_skipped(
    three: Cluster,
) -> None:
    leader = three.leader()
    dead, alive = three.followers()
    dead_addr = dead.grpc_address
    dead.stop_without_hand_over()
    servers = f"{dead_addr},{alive.grpc_address}"

    def shows_unreachable() -> str | None:
        code, out, err = run("cluster", "status", "--server", servers)
        assert code == 0, err
        rows = [line for line in out.splitlines() if dead.name in line]
        return out if rows and "unreachable" in rows[0] else None

    out = wait_until(shows_unreachable, 10, f"{dead.name} to be shown unreachable")
    assert f"node {leader.name} (leader)" in out, out
