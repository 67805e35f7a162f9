"""Issue #6: the leader-aware client, read-your-writes on a follower, HTTP cluster admin, and
the persisted node id, against real 3-node clusters on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

from replog.client import Client, Producer
from replog.errors import ConfigError
from replog.v1 import log_pb2
from tests.cluster.conftest import Cluster, Node, wait_until
from tests.integration.conftest import ThreadedServer


def _http(node: Node, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    host, port = node.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        if "json" in response.getheader("Content-Type", ""):
            return response.status, json.loads(payload)
        return response.status, payload.decode()
    finally:
        conn.close()


def _calls(node: Node, method: str) -> int:
    """How many ``method`` gRPC calls ``node`` answered OK (its /metrics)."""
    text = _http(node, "GET", "/metrics")[1]
    pattern = rf'replog_requests_total{{api="grpc",method="{method}",status="OK"}} (\S+)'
    found = re.search(pattern, text)
    return int(float(found.group(1))) if found else 0


def test_produces_go_to_the_leader_and_reads_spread_over_the_followers(three: Cluster) -> None:
    leader, followers = three.leader(), three.followers()
    with Client(followers[0].grpc_address) as client:
        offsets = [client.produce(b"v%d" % i) for i in range(10)]
        servers = client.servers()
        for offset in offsets * 3:
            assert client.consume(offset, min_offset=offset).value == b"v%d" % (
                offsets.index(offset)
            )
    assert sorted(s.is_voter for s in servers) == [True, True, True]
    assert _calls(leader, "Produce") == 10
    assert [_calls(f, "Produce") for f in followers] == [0, 0]  # nothing forwarded
    reads = [_calls(f, "Consume") for f in followers]
    assert sum(reads) == 30 and min(reads) >= 10, reads
    assert _calls(leader, "Consume") == 0


def test_read_your_writes_waits_on_a_follower_until_it_committed_the_offset(
    three: Cluster,
) -> None:
    follower = three.followers()[0]
    with Client(three.leader().grpc_address) as client:
        first = client.produce(b"first")
    target = first + 50  # not written yet: the consume must wait for it
    channel = grpc.insecure_channel(follower.grpc_address)
    consume = channel.unary_unary(
        "/replog.v1.Log/ConsumeBatch",
        request_serializer=log_pb2.ConsumeBatchRequest.SerializeToString,
        response_deserializer=log_pb2.ConsumeBatchResponse.FromString,
    )
    try:
        with pytest.raises(grpc.RpcError) as refused:  # bounded by max_wait_ms
            consume(log_pb2.ConsumeBatchRequest(offset=first, min_offset=target, max_wait_ms=100))
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        pending = consume.future(
            log_pb2.ConsumeBatchRequest(
                offset=first, min_offset=target, max_wait_ms=10_000, max_records=1000
            ),
            timeout=15,
        )
        with Client(three.leader().grpc_address) as client:
            while not pending.done():
                last = client.produce(b"more")
        answer = pending.result()
        assert answer.high_watermark > target and last >= target
        assert answer.records[0].value == b"first" and len(answer.records) > 1
    finally:
        channel.close()


def test_the_client_fails_over_when_the_node_it_talks_to_stops(three: Cluster) -> None:
    bootstrap = three.followers()[0]
    with Client(bootstrap.grpc_address, timeout=5) as client:
        before = client.produce(b"before")
        assert client.consume(before, min_offset=before).value == b"before"
        bootstrap.stop()
        after = client.produce(b"after")
        assert [client.consume(o, min_offset=after).value for o in (before, after)] == [
            b"before",
            b"after",
        ]
        values = [r.value for r in client.consume_batch(0, max_records=100).records]
    assert values == [b"before", b"after"]


def test_a_producer_keeps_going_while_its_leader_is_stopped(three: Cluster) -> None:
    old = three.leader()
    addresses = ",".join(n.grpc_address for n in three.nodes)
    sent: list[Any] = []
    stop = threading.Event()
    with Client(addresses, timeout=5) as client, Producer(client, linger_ms=2) as producer:

        def send() -> None:
            i = 0
            while not stop.is_set():
                sent.append(producer.send(b"p%d" % i))
                i += 1
                if i % 50 == 0:
                    sent[-1].result(10)  # keep the pace moderate

        sender = threading.Thread(target=send)
        sender.start()
        try:
            wait_until(lambda: len(sent) > 200, 10, "records before the stop")
            old.stop()
            count = len(sent)
            wait_until(lambda: len(sent) > count + 200, 15, "records after the stop")
        finally:
            stop.set()
            sender.join(10)
        producer.flush(15)
        offsets = [f.result(0) for f in sent]  # every record acknowledged
        assert len(set(offsets)) == len(offsets)
        new = three.leader()
        assert new is not old
        assert [s.rpc_addr for s in client.servers() if s.is_leader] == [new.grpc_address]
        records = client.consume_batch(0, max_records=len(sent) + 10, min_offset=max(offsets))
    assert [r.value for r in records.records] == [b"p%d" % i for i in range(len(sent))]


def test_http_cluster_view_and_admin_routes(three: Cluster) -> None:
    leader, follower = three.leader(), three.followers()[0]
    status, view = _http(follower, "GET", "/v1/cluster")
    assert status == 200 and view["node_id"] == follower.name and view["role"] == "follower"
    assert view["leader_id"] == leader.name and view["term"] >= 1 and view["commit_index"] > 0
    assert sorted(m["id"] for m in view["members"]) == ["n1", "n2", "n3"]
    status, view = _http(leader, "GET", "/v1/cluster")
    lags = {m["id"]: (m["role"], m["lag"], m["last_contact_s"]) for m in view["members"]}
    assert lags[leader.name] == ("leader", 0, None)
    assert all(lag[2] is not None and lag[2] < 5 for n, lag in lags.items() if n != leader.name)
    assert len(_http(follower, "GET", "/v1/servers")[1]["servers"]) == 3

    status, body = _http(follower, "POST", "/v1/cluster:transfer-leader", {})
    assert status == 503 and body["error"]["code"] == "NOT_LEADER"
    status, body = _http(leader, "POST", "/v1/cluster:transfer-leader", {"id": follower.name})
    assert (status, body) == (200, {"leader_id": follower.name})
    assert three.leader() is follower
    status, body = _http(follower, "POST", "/v1/cluster:remove", {"id": "nope"})
    assert status == 404
    status, body = _http(follower, "POST", "/v1/cluster:remove", {"id": leader.name})
    assert (status, body) == (200, {"removed": leader.name})
    wait_until(lambda: leader.name not in _member_ids(follower), 10, "the removal")


def _member_ids(node: Node) -> list[str]:
    return [m["id"] for m in _http(node, "GET", "/v1/cluster")[1]["members"]]


def test_the_node_id_is_saved_and_a_different_one_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "n1"
    first = ThreadedServer(data, server_id="n1", bootstrap=True, raft_tick_ms=50)
    first.start()
    try:
        wait_until(lambda: first.agent.cluster.node.is_leader, 10, "n1 to lead")  # type: ignore[union-attr]
    finally:
        first.stop()
    assert (data / "node-id").read_text().strip() == "n1"
    again = ThreadedServer(data, raft_tick_ms=50).start()  # no --node-id
    try:
        assert again.agent is not None and again.agent.cluster is not None
        assert again.agent.cluster.name == "n1"
        with Client(again.grpc_address) as client:
            wait_until(lambda: [s.id for s in client.servers() if s.is_leader] == ["n1"], 10)
    finally:
        again.stop()
    other = ThreadedServer(data, server_id="n2")
    try:
        with pytest.raises(ConfigError, match="does not match"):
            other.start()
    finally:
        other.stop()  # closes its event loop


def test_serve_refuses_a_node_id_that_differs_from_the_saved_one_in_one_line(
    tmp_path: Path,
) -> None:
    data = tmp_path / "n1"
    data.mkdir()
    (data / "node-id").write_text("n1\n")
    (data / "raft-state.json").write_text("{}")  # looks clustered
    cli = [sys.executable, "-c", "from replog.cli.app import main; main()", "serve"]
    done = subprocess.run(
        [*cli, "--data-dir", str(data), "--node-id", "n2", "--grpc-addr", "127.0.0.1:0"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "does not match" in lines[0], lines
