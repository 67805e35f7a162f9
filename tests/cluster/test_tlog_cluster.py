"""The verifiable log on a 3-node cluster: every replica signs checkpoints of its committed
records with the cluster's one key, origin ``<cluster id>/<topic>/<partition>``; replicas
signing one size sign the same note, so a reader may be served by any of them, and a record
altered on one replica's disk fails the reads that replica serves."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from replog.cli.app import _register, app
from replog.client import Client
from replog.errors import VerificationError
from replog.storage.codec import FRAME_HEADER, crc32c, scan_frames
from replog.tlog.checkpoint import Checkpoint, open_checkpoint
from replog.tlog.keyfile import KeyFiles, write_key_files
from replog.tlog.proof import verify_consistency
from replog.v1 import tlog_pb2 as pb
from replog.v1 import tlog_pb2_grpc
from replog.v1.record_pb2 import Record
from tests.cluster.conftest import Cluster, Node, ProcCluster, ProcNode, wait_until

pytestmark = pytest.mark.timeout(60)

TOPIC = "t"
runner = CliRunner(env={"COLUMNS": "200"})
_register()


@pytest.fixture
def keys(tmp_path: Path) -> KeyFiles:
    return write_key_files(tmp_path / "keys", "replog-test")


def note_of(address: str, topic: str, partition: int, size: int = 0) -> str:
    """A node's checkpoint note ("" when it has none yet, or its replica is starting)."""
    with grpc.insecure_channel(address) as channel:
        stub = tlog_pb2_grpc.TlogStub(channel)
        request = pb.GetCheckpointRequest(topic=topic, partition=partition, size=size)
        try:
            return str(stub.GetCheckpoint(request, timeout=5).note)
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                return ""
            raise


def committed_size(node: Node, topic: str, partition: int) -> int:
    """The tree size a replica's commit index vouches for."""
    backend = node.cluster.topics.partition(topic, partition)
    return int(backend.high_watermark)


def settled_notes(cluster: Cluster, topic: str, partition: int, keys: KeyFiles) -> str:
    """Wait until every running replica has signed its whole committed log, all of one size;
    return that note (the same bytes on every replica)."""
    nodes = cluster.running()

    def same() -> str | None:
        notes = {note_of(n.grpc_address, topic, partition) for n in nodes}
        sizes = {committed_size(n, topic, partition) for n in nodes}
        if len(notes) != 1 or len(sizes) != 1 or "" in notes:
            return None
        note = notes.pop()
        return note if open_checkpoint(note, keys.verifier).size == sizes.pop() else None

    note: str = wait_until(same, 15, f"every replica's checkpoint of {topic}/{partition}")
    return note


def get(node: Node, path: str) -> tuple[int, bytes]:
    host, port = node.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_every_replica_signs_the_same_checkpoints_and_any_replica_serves_verified_reads(
    cluster: Cluster, keys: KeyFiles
) -> None:
    cluster.bootstrap(3, signing_key=str(keys.private), checkpoint_interval_ms=30)
    nodes = cluster.nodes
    cluster_id = nodes[0].cluster.inbox.cluster_id
    assert cluster_id and all(n.cluster.inbox.cluster_id == cluster_id for n in nodes)
    key = keys.verifier.encode()
    with Client([n.grpc_address for n in nodes], timeout=10) as client:
        client.create_topic(TOPIC, 3, replication_factor=3)
        client.create_topic("solo", 1, replication_factor=1)
        for p in range(3):
            client.produce_batch([f"{p}-{i}".encode() for i in range(50)], topic=TOPIC, partition=p)
    older = {p: settled_notes(cluster, TOPIC, p, keys) for p in range(3)}
    with Client([n.grpc_address for n in nodes], timeout=10) as client:
        for p in range(3):
            client.produce_batch(
                [f"{p}-{i}".encode() for i in range(50, 300)], topic=TOPIC, partition=p
            )
    for p in range(3):
        newer = open_checkpoint(settled_notes(cluster, TOPIC, p, keys), keys.verifier)
        old = open_checkpoint(older[p], keys.verifier, origin=f"{cluster_id}/{TOPIC}/{p}")
        assert newer.size > old.size and newer.origin == old.origin
        # every replica still holds the older one; each proves one replica's note extends another's
        for node in nodes:
            assert note_of(node.grpc_address, TOPIC, p, old.size) == older[p]
        check_consistency(nodes[p], TOPIC, p, old, newer)
    settled_notes(cluster, "default", 0, keys)  # the controller group's log is signed too
    for node in nodes:  # a reader of any replica verifies every record
        with Client(node.grpc_address, verify_key=key, timeout=10) as client:
            for p in range(3):
                batch = client.consume_batch(
                    0, topic=TOPIC, partition=p, max_records=1000, verify=True
                )
                assert [r.value for r in batch.records] == [f"{p}-{i}".encode() for i in range(300)]
    follower = cluster.followers()[0]
    status, body = get(follower, f"/v1/topics/{TOPIC}/partitions/1/checkpoint")
    assert status == 200 and body.decode() == settled_notes(cluster, TOPIC, 1, keys)
    status, body = get(
        follower, f"/v1/topics/{TOPIC}/partitions/1/proof/consistency?old_size=1&new_size=10"
    )
    assert status == 200 and len(json.loads(body)["proof"]) > 0
    # a size past the commit index: a follower sends the reader to the leader, which refuses it
    beyond = f"/v1/topics/{TOPIC}/partitions/1/proof/inclusion?offset=3&tree_size=99999"
    for node in nodes:
        status, body = get(node, beyond)
        leads = node.cluster.topics_host.local(TOPIC, 1).node.is_leader  # type: ignore[union-attr]
        assert status == (400 if leads else 503), body
        assert "committed" in json.loads(body)["error"]["message"], body
    check_no_replica_here(cluster, keys)
    stopped = nodes[2]
    stopped.stop()
    result = runner.invoke(
        app, ["verify", "--data-dir", str(stopped.data_dir), "--key", str(keys.public)]
    )
    assert result.exit_code == 0, result.output
    for name in ("default/0", *(f"{TOPIC}/{p}" for p in range(3))):
        assert f"ok {name}: " in result.output, result.output


def check_consistency(
    node: Node, topic: str, partition: int, old: Checkpoint, new: Checkpoint
) -> None:
    with grpc.insecure_channel(node.grpc_address) as channel:
        stub = tlog_pb2_grpc.TlogStub(channel)
        request = pb.GetConsistencyProofRequest(
            topic=topic, partition=partition, old_size=old.size, new_size=new.size
        )
        proof = list(stub.GetConsistencyProof(request, timeout=5).hashes)
    verify_consistency(old.size, new.size, old.root, new.root, proof)


def check_no_replica_here(cluster: Cluster, keys: KeyFiles) -> None:
    """A node without a replica of a partition answers UNAVAILABLE naming one."""
    host = next(n for n in cluster.nodes if n.cluster.topics_host.local("solo", 0) is not None)
    others = [n for n in cluster.nodes if n is not host]
    for node in others:
        with grpc.insecure_channel(node.grpc_address) as channel:
            stub = tlog_pb2_grpc.TlogStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetCheckpoint(pb.GetCheckpointRequest(topic="solo"), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        trailers = dict(refused.value.trailing_metadata() or ())
        assert trailers.get("replog-leader") == host.grpc_address
        status, body = get(node, "/v1/topics/solo/partitions/0/checkpoint")
        assert status == 503, body
        assert "holds no replica of solo/0" in json.loads(body)["error"]["message"]


def newest_of_all(nodes: list[ProcNode], topic: str, partition: int, at_least: int) -> str:
    """Wait until every node in ``nodes`` serves one newest note of at least ``at_least``."""

    def same() -> str | None:
        notes = {note_of(n.grpc_address, topic, partition) for n in nodes}
        if len(notes) != 1 or "" in notes:
            return None
        note = notes.pop()
        return note if int(note.split("\n")[1]) >= at_least else None

    note: str = wait_until(same, 15, f"every node's checkpoint of {at_least} records")
    return note


def alter_stored_record(log_dir: Path, marker: bytes) -> int:
    """Flip a byte of the stored record holding ``marker`` in a sealed segment and fix its
    frame's CRC, as an attacker with the disk would; the record's offset."""
    stores = sorted(log_dir.glob("*.store"))
    for path in stores[:-1]:  # sealed segments only
        content = bytearray(path.read_bytes())
        scan = scan_frames(bytes(content), 0, 1 << 20)
        for position, payload in zip(scan.positions, scan.payloads, strict=True):
            if marker in payload:
                altered = payload.replace(marker, marker[:-1] + b"X")
                start = position + FRAME_HEADER.size
                content[start : start + len(payload)] = altered
                content[position : position + FRAME_HEADER.size] = FRAME_HEADER.pack(
                    len(altered), crc32c(altered)
                )
                path.write_bytes(bytes(content))
                return int(Record.FromString(payload).offset)
    raise AssertionError(f"no sealed segment holds {marker!r}")


def read_verified(client: Client, count: int) -> list[bytes]:
    """The first ``count`` records of TOPIC/0, every batch verified."""
    values: list[bytes] = []
    offset = 0
    while len(values) < count:
        batch = client.consume_batch(offset, topic=TOPIC, partition=0, verify=True)
        values += [r.value for r in batch.records]
        offset = batch.records[-1].offset + 1
    return values


def numbered(first: int, count: int) -> list[bytes]:
    return [f"record {i:04d}".encode() for i in range(first, first + count)]


def test_checkpoints_outlive_a_killed_leader_and_a_record_altered_on_one_replica_fails_there(
    direct_procs: ProcCluster, keys: KeyFiles, tmp_path: Path
) -> None:
    procs = direct_procs
    procs.bootstrap(
        3,
        *("--signing-key", str(keys.private), "--checkpoint-interval-ms", "30"),
        *("--segment-bytes", "4096", "--max-record-bytes", "1024"),
    )
    key, state = keys.verifier.encode(), tmp_path / "trust.json"
    with Client(procs.addresses(), timeout=10) as client:
        client.create_topic(TOPIC, 3, replication_factor=3)
        for first in range(0, 600, 100):
            base, count = client.produce_batch(numbered(first, 100), topic=TOPIC, partition=0)
        end = base + count
        victim = client.describe_topic(TOPIC).partitions[0].leader
    everyone = [procs.node(n) for n in procs.names]
    origin = open_checkpoint(newest_of_all(everyone, TOPIC, 0, end), keys.verifier).origin
    with Client(procs.addresses(), verify_key=key, verify_state=state, timeout=10) as client:
        assert read_verified(client, 600) == numbered(0, 600)
    trusted = json.loads(state.read_text())["logs"][origin]["size"]

    procs.node(victim).kill()  # kill -9 of the partition's leader
    survivors = [procs.node(n) for n in procs.names if n != victim]
    with Client([n.grpc_address for n in survivors], timeout=10) as client:
        base, count = client.produce_batch(numbered(600, 100), topic=TOPIC, partition=0)
    end = base + count
    newest_of_all(survivors, TOPIC, 0, end)
    with Client(procs.addresses(), verify_key=key, verify_state=state, timeout=10) as client:
        assert read_verified(client, 700) == numbered(0, 700)  # the trust carried over
    assert json.loads(state.read_text())["logs"][origin]["size"] > trusted

    altered = alter_stored_record(
        procs.node(victim).data_dir / "topics" / TOPIC / "0" / "log", b"record 0077"
    )
    procs.node(victim).start()
    newest_of_all(everyone, TOPIC, 0, end)  # the altered replica caught up and signs again
    for node in survivors:  # only the altered replica serves now
        node.terminate()
    for node in survivors:
        node.wait_exited()
    with Client(
        procs.node(victim).grpc_address, verify_key=key, verify_state=state, timeout=10
    ) as client:
        with pytest.raises(VerificationError, match=f"record {altered} ") as caught:
            read_verified(client, 700)
        assert caught.value.offset == altered
        assert (
            client.consume(altered + 1, topic=TOPIC, partition=0, verify=True).value
            == b"record 0078"
        )
