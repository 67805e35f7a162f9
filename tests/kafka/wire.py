"""Raw Kafka wire helpers for tests that speak the protocol byte by byte."""

from __future__ import annotations

import socket
import struct

from tests.kafka.conftest import KafkaServer

__all__ = ["connect", "log_end", "read_frame", "request"]


def connect(server: KafkaServer) -> socket.socket:
    """A plain TCP connection to the server's Kafka port."""
    host, port = server.kafka_address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def request(api_key: int, version: int, correlation_id: int, body: bytes = b"") -> bytes:
    """A request frame with a v1 header (client id "t") and ``body``."""
    payload = struct.pack(">hhih", api_key, version, correlation_id, 1) + b"t" + body
    return struct.pack(">i", len(payload)) + payload


def read_frame(sock: socket.socket) -> bytes:
    """One response frame, without its size prefix."""
    size = struct.unpack(">i", _read_exactly(sock, 4))[0]
    return _read_exactly(sock, size)


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, "the server closed the connection"
        data += chunk
    return data


def log_end(server: KafkaServer) -> int:
    """The high watermark of ``default``/0: what a test checks stayed unchanged."""
    assert server.agent is not None and server.agent.topics is not None
    return server.agent.topics.partition("default", 0).high_watermark
