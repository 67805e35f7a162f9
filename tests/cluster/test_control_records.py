"""Consumers of a cluster node skip control records and always advance (issue: read path).

The node is a real ``replog serve`` process (killed by PID at the end: a frozen event loop
ignores SIGTERM) whose log has segments that end in a control record: a single-node cluster
bootstrapped, given two records, restarted (the new leader writes a no-op), then given
records too large to share the segment with it. Every way of reading from offset 0 must
deliver every user record, and the node must keep answering meanwhile.

The tests only read, so they share one node (started once for the module on a copy of that
data dir); a control record it commits while they run (the controller registering it) is
one more record to skip, which every test tolerates.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from replog.client import Client, RetryPolicy
from replog.errors import ReplogError
from replog.storage.inspect import iter_records, list_segments
from replog.v1 import log_pb2
from tests.integration.conftest import ServerProcess, wait_until

pytestmark = pytest.mark.timeout(60)

SEGMENT = ("--segment-bytes", "4096", "--max-record-bytes", "3500", "--log-level", "warning")
VALUES = [b"a" * 1000, b"a" * 1000, b"b" * 3000, b"b" * 3000, b"b" * 3000]
_NO_RETRY = RetryPolicy(max_attempts=1)


def _leads(address: str) -> bool:
    with Client(address, timeout=2, retry=_NO_RETRY) as client:
        try:
            return any(s.is_leader for s in client.servers())
        except Exception:
            return False


def _segment_ends(log_dir: Path) -> list[int]:
    """Offsets of the last record of each segment but the last."""
    bases = [s.base for s in list_segments(str(log_dir))]
    return [base - 1 for base in bases[1:]]


def _control_offsets(log_dir: Path) -> set[int]:
    return {record.offset for record, _ in iter_records(str(log_dir)) if record.type}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A single-node cluster's data dir with segments ending in control records."""
    root = tmp_path_factory.mktemp("control")
    data = root / "n1"
    started: list[ServerProcess] = []
    try:
        first = ServerProcess(data, root, "--node-id", "n1", "--bootstrap", *SEGMENT)
        started.append(first)
        wait_until(lambda: _leads(first.grpc_address), 15, "n1 to lead")
        with Client(first.grpc_address) as client:
            for value in VALUES[:2]:
                client.produce(value)
        assert first.terminate() == 0
        again = ServerProcess(data, root, "--node-id", "n1", *SEGMENT)
        started.append(again)
        wait_until(lambda: _leads(again.grpc_address), 15, "n1 to lead again")
        with Client(again.grpc_address) as client:
            for value in VALUES[2:]:
                client.produce(value)
        assert again.terminate() == 0
    finally:
        for proc in started:
            proc.kill()
    ends = set(_segment_ends(data / "log"))
    assert ends & _control_offsets(data / "log"), "no segment ends in a control record"
    yield data
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def node(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A running node on a copy of the template (it writes another no-op as it starts),
    shared by the module's tests (they only read); killed by PID at the end."""
    root = tmp_path_factory.mktemp("node")
    data = root / "n1"
    shutil.copytree(template, data)
    proc = ServerProcess(data, root, "--node-id", "n1", *SEGMENT)
    try:
        wait_until(lambda: _leads(proc.grpc_address), 15, "the node to lead")
        yield proc
    finally:
        proc.kill()


def _healthy(node: ServerProcess) -> bool:
    """Whether /healthz answers within 1 s (a frozen event loop does not)."""
    host, port = node.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=1)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _assert_delivered(values: list[bytes], node: ServerProcess) -> None:
    healthy = _healthy(node)
    assert [(v[:1], len(v)) for v in values] == [(v[:1], len(v)) for v in VALUES]
    assert values == VALUES
    assert healthy, "the node stopped answering while a consumer read"


def _grpc_stream(node: ServerProcess, method: str, request: object, response: object) -> list:
    """Records of a server stream until every user record came (or 5 s passed)."""
    values: list[bytes] = []
    with grpc.insecure_channel(node.grpc_address) as channel:
        call = channel.unary_stream(
            f"/replog.v1.Log/{method}",
            request_serializer=type(request).SerializeToString,  # type: ignore[attr-defined]
            response_deserializer=response.FromString,  # type: ignore[attr-defined]
        )(request, timeout=5)
        try:
            for message in call:
                if method == "ConsumeStream":
                    values.append(message.record.value)
                else:
                    values.extend(r.value for r in message.records)
                if len(values) >= len(VALUES):
                    break
        except grpc.RpcError as exc:
            assert exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED, exc
        finally:
            call.cancel()
    return values


def test_consume_stream_from_zero_delivers_every_record_past_control_records(
    node: ServerProcess,
) -> None:
    request = log_pb2.ConsumeRequest(offset=0)
    values = _grpc_stream(node, "ConsumeStream", request, log_pb2.ConsumeResponse)
    _assert_delivered(values, node)


@pytest.mark.parametrize("limits", [{"max_records": 1}, {"max_bytes": 1}, {}])
def test_consume_batch_stream_with_tiny_limits_advances_past_control_records(
    node: ServerProcess, limits: dict[str, int]
) -> None:
    request = log_pb2.ConsumeBatchRequest(offset=0, **limits)
    values = _grpc_stream(node, "ConsumeBatchStream", request, log_pb2.ConsumeBatchResponse)
    _assert_delivered(values, node)


def test_an_http_event_stream_from_zero_delivers_every_record(node: ServerProcess) -> None:
    host, port = node.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    values: list[bytes] = []
    try:
        conn.request("GET", "/v1/records:stream?offset=0")
        response = conn.getresponse()
        assert response.status == 200
        while len(values) < len(VALUES):
            line = response.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                record = json.loads(line[len(b"data: ") :])
                values.append(base64.b64decode(record["value"]))
    except TimeoutError:
        pass
    finally:
        conn.close()
    _assert_delivered(values, node)


@pytest.mark.parametrize("max_records", [1, 100])
def test_http_paging_with_next_offset_reaches_the_high_watermark(
    node: ServerProcess, max_records: int
) -> None:
    import base64

    host, port = node.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    values: list[bytes] = []
    offset, pages = 0, 0
    try:
        while pages < 50:
            pages += 1
            conn.request("GET", f"/v1/records?offset={offset}&max_records={max_records}")
            body = json.loads(conn.getresponse().read())
            values.extend(base64.b64decode(r["value"]) for r in body["records"])
            assert body["next_offset"] >= offset
            offset = body["next_offset"]
            if offset >= body["high_watermark"]:
                break
    finally:
        conn.close()
    _assert_delivered(values, node)


def test_client_stream_from_zero_delivers_every_record(node: ServerProcess) -> None:
    values: list[bytes] = []
    client = Client(node.grpc_address, retry=_NO_RETRY)

    def read() -> None:
        try:
            for record in client.stream(0, max_records=1):
                values.append(record.value)
                if len(values) >= len(VALUES):
                    return
        except ReplogError:
            pass  # the channel closed under a reader still waiting

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    try:
        _assert_delivered(values, node)
    finally:
        client.close()  # ends a reader still waiting
        reader.join(5)


@pytest.mark.parametrize("follow", [False, True])
def test_the_consume_command_from_zero_prints_every_record(
    node: ServerProcess, follow: bool
) -> None:
    cmd = [sys.executable, "-c", "from replog.cli.app import main; main()", "consume"]
    cmd += ["--server", node.grpc_address, "--offset", "0", "--count", str(len(VALUES))]
    cmd += ["--follow"] if follow else []
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("replog consume did not finish")
    assert done.returncode == 0, done.stderr
    _assert_delivered(done.stdout.splitlines(), node)


def test_a_batch_read_at_any_offset_returns_a_record_or_moves_on(node: ServerProcess) -> None:
    with Client(node.grpc_address, retry=_NO_RETRY) as client:
        high = client.consume_batch(0).high_watermark
        for offset in range(high):
            for limits in ({"max_records": 1}, {"max_bytes": 1}, {}):
                batch = client.consume_batch(offset, **limits)
                assert batch.next_offset is not None, (offset, limits)
                assert offset < batch.next_offset <= batch.high_watermark, (offset, limits)
                if batch.records:
                    assert batch.records[0].offset >= offset
                    assert batch.next_offset > batch.records[-1].offset
        end = client.consume_batch(high)  # at the end: nothing, and it does not run ahead
        # (a control record, e.g. the controller registering the node, may commit meanwhile)
        assert not end.records and high <= end.next_offset <= end.high_watermark
