"""A single-node server whose disk fails stops like a cluster node does (fail-stop): the failed
produce gets an error, the server turns unready at once, and it refuses everything after.

The failure is injected at the file layer of the server's real Log: the next write of the
active store raises ENOSPC, as a full disk would.
"""

from __future__ import annotations

import errno
import http.client
import json
from typing import Any

import grpc
import pytest

from replog.client import Client
from replog.errors import ReplogError, StorageIOError
from tests.integration.conftest import ThreadedServer, wait_until


def _readyz(server: ThreadedServer) -> int:
    host, port = server.http_address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        json.loads(response.read())
        return response.status
    finally:
        connection.close()


class _FullDisk:
    """The active store's real file, except that writes fail as on a full disk."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def append(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_failed_write_makes_the_single_node_server_fail_stop(server: ThreadedServer) -> None:
    with Client(server.grpc_address) as client:
        assert client.produce(b"before") == 0
        assert _readyz(server) == 200
        agent = server.agent
        assert agent is not None and agent._broker is not None
        store = agent._broker.log("default", 0)._segments[-1].store
        store._file = _FullDisk(store._file)  # type: ignore[assignment]
        with pytest.raises(ReplogError):
            client.produce(b"lost")
        wait_until(lambda: agent.failure is not None, 5, "the server to fail-stop")
        assert isinstance(agent.failure, StorageIOError)
        assert _readyz(server) == 503
        with pytest.raises(ReplogError):
            client.produce(b"after")
        assert client.consume(0).value == b"before"  # what was acknowledged stays readable
    with grpc.insecure_channel(server.grpc_address) as channel:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
