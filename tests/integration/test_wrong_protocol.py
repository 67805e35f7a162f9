"""A real ``replog serve`` keeps gRPC's C-core chatter out of its log, and a client speaking
the wrong protocol on a port costs one line of ours at most, never a traceback."""

from __future__ import annotations

import json
import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from replog.security.certs import NODE_SUBJECT, CertificateAuthority
from tests.integration.conftest import ServerProcess, wait_until

Factory = Callable[..., ServerProcess]
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


def send_http1(addr: str) -> None:
    """A plain HTTP/1.1 request; whatever comes back (or nothing) until the peer closes."""
    with socket.create_connection(split(addr), timeout=5) as sock:
        sock.sendall(b"GET /v1/servers HTTP/1.1\r\nHost: replog\r\n\r\n")
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass


def send_tls(addr: str) -> None:
    """A TLS handshake (no client certificate); it fails on a plaintext or mutual-TLS port."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection(split(addr), timeout=5) as raw,
            context.wrap_socket(raw) as sock,
        ):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: replog\r\n\r\n")
            sock.recv(4096)
    except OSError:
        pass


def send_grpc(addr: str) -> None:
    """One plaintext gRPC call (fails: the port speaks something else)."""
    with grpc.insecure_channel(addr) as channel:
        call = channel.unary_unary("/grpc.health.v1.Health/Check")
        with pytest.raises(grpc.RpcError):
            call(b"", timeout=3)


def our_lines(server: ServerProcess) -> list[dict[str, object]]:
    """The server's log (stderr, JSON) once it stopped: each line must be one of ours; the
    only other is the banner on stdout."""
    assert server.terminate() == 0
    text = server.log_path.read_text()
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        ours = line.startswith(("{", "replog serving "))
        assert ours, f"a line not of ours in the server log: {line!r}"
    return [json.loads(line) for line in lines if line.startswith("{")]


def refusals(server: ServerProcess) -> list[str]:
    text = server.log_path.read_text()
    return [line for line in text.splitlines() if "refused a connection" in line]


def test_wrong_protocols_on_a_plaintext_server_cost_one_line_each_and_no_traceback(
    process_factory: Factory, tmp_path: Path
) -> None:
    server = process_factory(tmp_path / "data")
    send_grpc(server.http_address)  # gRPC on the HTTP port
    send_tls(server.http_address)  # TLS on the plaintext HTTP port
    send_http1(server.grpc_address)  # HTTP/1 on the gRPC port
    send_tls(server.grpc_address)  # TLS on the plaintext gRPC port
    wait_until(lambda: len(refusals(server)) >= 2, 10, "the HTTP port's refusals")
    lines = [str(x["msg"]) for x in our_lines(server) if "refused" in str(x["msg"])]
    grpc_lines = [x for x in lines if "HTTP/2" in x and "gRPC port" in x]
    tls_lines = [x for x in lines if "TLS handshake" in x]
    assert grpc_lines and tls_lines, lines
    assert all(x.startswith("refused a connection from 127.0.0.1:") for x in lines), lines


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    directory = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority()
    node = ca.issue(NODE_SUBJECT, sans=["127.0.0.1"], server=True)
    (directory / "ca.pem").write_bytes(ca.cert_pem)
    (directory / "node.pem").write_bytes(node.cert_pem)
    (directory / "node-key.pem").write_bytes(node.key_pem)
    return [
        *("--tls-cert", str(directory / "node.pem")),
        *("--tls-key", str(directory / "node-key.pem")),
        *("--tls-ca", str(directory / "ca.pem")),
    ]


def test_failed_tls_handshakes_on_the_grpc_port_leave_no_c_core_lines(
    process_factory: Factory, tmp_path: Path, tls_files: list[str]
) -> None:
    server = process_factory(tmp_path / "data", *tls_files)
    send_http1(server.grpc_address)  # plaintext HTTP on the TLS gRPC port
    send_grpc(server.grpc_address)  # plaintext gRPC on the TLS gRPC port
    send_tls(server.grpc_address)  # TLS without the client certificate mutual TLS needs
    send_http1(server.http_address)  # plaintext HTTP on the TLS HTTP port
    our_lines(server)


def test_a_grpc_verbosity_the_user_set_is_kept(
    process_factory: Factory, tmp_path: Path, tls_files: list[str]
) -> None:
    env = {**os.environ, "GRPC_VERBOSITY": "INFO"}
    server = process_factory(tmp_path / "data", *tls_files, env=env)

    def handshake_failure_logged() -> bool:
        send_http1(server.grpc_address)
        return "Handshake failed" in server.log_path.read_text()

    wait_until(handshake_failure_logged, 10, "gRPC's own handshake line")
    assert server.terminate() == 0
