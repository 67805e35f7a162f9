"""Resource limits: bounded memory per request and per stream, bounded streams per identity,
idle connections closed. Memory is the server process's peak RSS (VmHWM), so the server runs
as a real ``replog serve`` process, killed by PID at the end."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from replog.client import Client
from replog.server.limits import DEFAULT_MAX_BATCH_RECORDS
from replog.v1 import log_pb2
from tests.integration.conftest import ServerProcess, ThreadedServer

pytestmark = pytest.mark.timeout(120)

MIB = 1 << 20
#: What a 16 MiB request may add to the server's peak RSS (parsing it naively took ~1 GiB).
REQUEST_RSS_BUDGET = 96 * MIB


def _peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


class HealthProbe:
    """Asks /healthz over and over in a thread; ``worst`` is the slowest answer (s)."""

    def __init__(self, http_address: str) -> None:
        self.host, port = http_address.rsplit(":", 1)
        self.port = int(port)
        self.worst = 0.0
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
            started = time.monotonic()
            try:
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                self.answers += 1
                took = time.monotonic() - started
            except OSError:
                took = float("inf")
            finally:
                conn.close()
            self.worst = max(self.worst, took)
            self._stop.wait(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def proc(tmp_path: Path, process_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return process_factory(tmp_path / "data", "--sync", "never", "--log-level", "warning")


def _http(address: str, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


# -- produce: records per request ---------------------------------------------------------------


def _empty_records(size: int) -> bytes:
    return b"\x0a\x00" * (size // 2)


def _one_record_of_empty_headers(size: int) -> bytes:
    headers = b"\x3a\x00" * ((size - 8) // 2)
    inner = b"\x0a\x01x" + headers
    length = bytearray()
    n = len(inner)
    while n > 0x7F:
        length.append((n & 0x7F) | 0x80)
        n >>= 7
    length.append(n)
    return b"\x0a" + bytes(length) + inner


def _overlong_tags(size: int) -> bytes:
    return b"\x8a\x00\x00" * (size // 3)  # field 1 with a two-byte tag: still a record


@pytest.mark.parametrize(
    "make", [_empty_records, _one_record_of_empty_headers, _overlong_tags], ids=lambda f: f.__name__
)
def test_a_16_mib_grpc_batch_of_tiny_messages_is_refused_in_bounded_memory(
    proc: ServerProcess, make: Callable[[int], bytes]
) -> None:
    data = make(16 * MIB)
    before = _peak_rss(proc.proc.pid)
    options = [("grpc.max_send_message_length", 64 * MIB)]
    with (
        HealthProbe(proc.http_address) as probe,
        grpc.insecure_channel(proc.grpc_address, options=options) as channel,
    ):
        call = channel.unary_unary("/replog.v1.Log/ProduceBatch")
        with pytest.raises(grpc.RpcError) as info:
            call(data, timeout=10)
        time.sleep(0.1)  # the probe asks once more after the answer
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT, info.value
    assert any(s in (info.value.details() or "") for s in ("at most", "over the limit"))
    grown = _peak_rss(proc.proc.pid) - before
    assert grown < REQUEST_RSS_BUDGET, f"peak RSS grew by {grown / MIB:.0f} MiB"
    assert probe.answers and probe.worst < 1.0, f"/healthz took up to {probe.worst:.2f} s"


def test_a_16_mib_http_batch_of_empty_records_is_refused_in_bounded_memory(
    proc: ServerProcess,
) -> None:
    record = b'{"value": ""}'
    count = (16 * MIB - 20) // (len(record) + 1)
    body = b'{"records": [' + b",".join([record] * count) + b"]}"
    before = _peak_rss(proc.proc.pid)
    with HealthProbe(proc.http_address) as probe:
        status, answer = _http(proc.http_address, "POST", "/v1/records:batch", body)
        time.sleep(0.1)
    assert status == 400, answer
    assert answer["error"]["code"] == "INVALID_ARGUMENT" and "at most" in answer["error"]["message"]
    grown = _peak_rss(proc.proc.pid) - before
    assert grown < REQUEST_RSS_BUDGET, f"peak RSS grew by {grown / MIB:.0f} MiB"
    assert probe.answers and probe.worst < 1.0, f"/healthz took up to {probe.worst:.2f} s"


def test_a_batch_at_the_record_limit_is_accepted_and_one_more_is_refused(
    server: ThreadedServer,
) -> None:
    limit = DEFAULT_MAX_BATCH_RECORDS
    with grpc.insecure_channel(server.grpc_address) as channel:
        call = channel.unary_unary(
            "/replog.v1.Log/ProduceBatch",
            response_deserializer=log_pb2.ProduceBatchResponse.FromString,
        )
        assert call(_empty_records(2 * limit), timeout=30).count == limit
        with pytest.raises(grpc.RpcError) as info:
            call(_empty_records(2 * (limit + 1)), timeout=30)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"at most {limit} records" in (info.value.details() or "")
    body = json.dumps({"records": [{"value": ""}] * (limit + 1)}).encode()
    status, answer = _http(server.http_address, "POST", "/v1/records:batch", body)
    assert status == 413 and f"at most {limit} records" in answer["error"]["message"]
    assert answer["error"]["code"] == "BATCH_TOO_LARGE"
    body = json.dumps({"records": [{"value": base64.b64encode(b"x").decode()}] * 3}).encode()
    assert _http(server.http_address, "POST", "/v1/records:batch", body)[0] == 200
    with Client(server.grpc_address) as client:
        assert client.consume_batch(0).high_watermark == limit + 3
