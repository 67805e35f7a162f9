"""Issue 16: an HTTP request a node refuses because another node leads answers 503 with
``Replog-Leader`` naming that node's HTTP address (which then answers it), and the servers
and cluster views name every node's HTTP address."""

from __future__ import annotations

import http.client
import json
from typing import Any

from tests.cluster.conftest import Cluster, Node, wait_until


def _http(address: str, method: str, path: str, body: Any = None) -> tuple[int, Any, str]:
    """(status, JSON body, Replog-Leader header or "") of one request to ``address``."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        answer = json.loads(payload) if payload else None
        return response.status, answer, response.getheader("Replog-Leader", "")
    finally:
        conn.close()


def _all_known(nodes: list[Node]) -> bool:
    """Whether every node's metadata holds every node's HTTP address."""
    wanted = {n.name: n.http_address for n in nodes}
    return all(
        {k: v.http_address for k, v in n.cluster.topics_host.metadata.state.nodes.items()} == wanted
        for n in nodes
    )


def test_a_refusal_names_the_leader_s_http_address_which_answers(cluster: Cluster) -> None:
    nodes = cluster.bootstrap(3, offsets_topic_partitions=1)
    wait_until(lambda: _all_known(nodes), 10, "every node's HTTP address everywhere")
    leader = cluster.leader()
    follower = next(n for n in nodes if n is not leader)

    status, body, _ = _http(follower.http_address, "GET", "/v1/servers")
    assert status == 200
    assert {s["id"]: s["http_addr"] for s in body["servers"]} == {
        n.name: n.http_address for n in nodes
    }
    status, body, _ = _http(follower.http_address, "GET", "/v1/cluster")
    assert {m["id"]: m["http_addr"] for m in body["members"]} == {
        n.name: n.http_address for n in nodes
    }

    # A group's offsets asked of a node that is not its coordinator (the middleware's path).
    def coordinator() -> str | None:
        for node in nodes:
            status, _, _ = _http(node.http_address, "GET", "/v1/groups/g1/offsets")
            if status == 200:
                return node.http_address
        return None

    coordinating = wait_until(coordinator, 15, "a coordinator for g1")
    others = [n for n in nodes if n.http_address != coordinating]
    for node in others:
        status, body, lead = _http(node.http_address, "GET", "/v1/groups/g1/offsets")
        assert (status, body["error"]["code"], lead) == (503, "UNAVAILABLE", coordinating)
    assert _http(coordinating, "GET", "/v1/groups/g1/offsets")[:2] == (200, {"offsets": []})

    # An admin call a follower refuses (``_admin``'s path), then sent where it points.
    status, body, lead = _http(follower.http_address, "POST", "/v1/cluster:transfer-leader", {})
    assert (status, body["error"]["code"]) == (503, "NOT_LEADER")
    assert lead == leader.http_address != leader.grpc_address
    status, body, _ = _http(lead, "POST", "/v1/cluster:transfer-leader", {"id": follower.name})
    assert (status, body) == (200, {"leader_id": follower.name})


def test_a_node_names_its_advertised_http_address_not_the_bound_one(cluster: Cluster) -> None:
    node = cluster.start_node("n1", bootstrap=True, http_advertised_addr="replog-1.test:8443")

    def recorded() -> str:
        info = node.cluster.topics_host.metadata.state.nodes.get("n1")
        return "" if info is None else info.http_address

    wait_until(lambda: recorded() == "replog-1.test:8443", 10, "the advertised address")
    status, body, _ = _http(node.http_address, "GET", "/v1/servers")
    assert (status, body["servers"][0]["http_addr"]) == (200, "replog-1.test:8443")


def test_a_follower_answers_the_leaders_view_of_the_cluster_when_asked(cluster: Cluster) -> None:
    nodes = cluster.bootstrap(3, offsets_topic_partitions=1)
    leader = cluster.leader()
    follower = next(n for n in nodes if n is not leader)

    def leaders_view() -> Any:
        status, body, _ = _http(follower.http_address, "GET", "/v1/cluster?view=leader")
        assert status == 200
        caught_up = all(m["match_index"] > 0 for m in body["members"])
        return body if body["view_of"] == leader.name and caught_up else None

    body = wait_until(leaders_view, 10, "the leader's view, every member caught up")
    assert body["asked"] == {"node_id": follower.name, "role": "follower"}
    assert body["node_id"] == leader.name and body["role"] == "leader"
    _, own, _ = _http(follower.http_address, "GET", "/v1/cluster")  # its own view, as before
    assert own["node_id"] == follower.name and "view_of" not in own
    status, bad, _ = _http(follower.http_address, "GET", "/v1/cluster?view=mine")
    assert status == 400 and "view must be leader" in bad["error"]["message"]
