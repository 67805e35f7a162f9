"""The gRPC Admin service behind the real auth interceptor and ACL, over mutual TLS.

The Admin servicer here is a stand-in that records what reached it and answers a fixed
topic list (the real one is another part of issue 12): what is under test is the
interceptor, which must refuse before the servicer runs and filter what ListTopics answers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from replog.security.acl import Authorizer
from replog.security.certs import CertificateAuthority
from replog.security.tls import TLSConfig, grpc_channel_credentials, grpc_server_credentials
from replog.server.auth import Gatekeeper, GrpcAuthInterceptor
from replog.v1 import admin_pb2, admin_pb2_grpc

POLICY = """\
p, billing, orders.*, consume
p, topics-admin, orders.*, admin
p, ops, *, admin
p, ops, *, consume
"""
TOPICS = ("default", "orders.eu", "orders.us", "payments")


class StandInAdmin(admin_pb2_grpc.AdminServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.reached: list[tuple[str, str]] = []

    async def CreateTopic(self, request: Any, context: Any) -> Any:
        self.reached.append(("CreateTopic", request.name))
        return admin_pb2.CreateTopicResponse(topic=admin_pb2.TopicInfo(name=request.name))

    async def DeleteTopic(self, request: Any, context: Any) -> Any:
        self.reached.append(("DeleteTopic", request.name))
        return admin_pb2.DeleteTopicResponse()

    async def DescribeTopic(self, request: Any, context: Any) -> Any:
        self.reached.append(("DescribeTopic", request.name))
        return admin_pb2.DescribeTopicResponse(topic=admin_pb2.TopicInfo(name=request.name))

    async def ListTopics(self, request: Any, context: Any) -> Any:
        self.reached.append(("ListTopics", ""))
        return admin_pb2.ListTopicsResponse(topics=[admin_pb2.TopicInfo(name=n) for n in TOPICS])


class AdminServer:
    """A grpc.aio server with the auth interceptor, on its own loop thread."""

    def __init__(self, directory: Path) -> None:
        ca = CertificateAuthority()
        (directory / "ca.pem").write_bytes(ca.cert_pem)
        for name in ("node", "billing", "topics-admin", "ops"):
            issued = (
                ca.issue(name, sans=["127.0.0.1"], server=True)
                if name == "node"
                else ca.issue(name)
            )
            (directory / f"{name}.pem").write_bytes(issued.cert_pem)
            (directory / f"{name}-key.pem").write_bytes(issued.key_pem)
        (directory / "policy.csv").write_text(POLICY)
        self.dir = directory
        self.servicer = StandInAdmin()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._server: aio.Server | None = None
        started: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        started.result(timeout=20)

    def _run(self, started: Future[None]) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            gate = Gatekeeper(Authorizer(str(self.dir / "policy.csv")))
            server = aio.server(interceptors=[GrpcAuthInterceptor(gate)])
            admin_pb2_grpc.add_AdminServicer_to_server(self.servicer, server)
            tls = TLSConfig(
                str(self.dir / "node.pem"), str(self.dir / "node-key.pem"), str(self.dir / "ca.pem")
            )
            self.port = server.add_secure_port("127.0.0.1:0", grpc_server_credentials(tls))
            await server.start()
            self._server = server

        self.loop.run_until_complete(start())
        started.set_result(None)
        self.loop.run_forever()

    def stub(self, who: str) -> tuple[grpc.Channel, admin_pb2_grpc.AdminStub]:
        tls = TLSConfig(
            str(self.dir / f"{who}.pem"), str(self.dir / f"{who}-key.pem"), str(self.dir / "ca.pem")
        )
        channel = grpc.secure_channel(f"127.0.0.1:{self.port}", grpc_channel_credentials(tls))
        return channel, admin_pb2_grpc.AdminStub(channel)

    def stop(self) -> None:
        assert self._server is not None
        asyncio.run_coroutine_threadsafe(self._server.stop(None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[AdminServer]:
    server = AdminServer(tmp_path)
    yield server
    server.stop()


def _code(call: Any) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_admin_on_a_pattern_creates_and_deletes_matching_topics_only(admin: AdminServer) -> None:
    channel, stub = admin.stub("topics-admin")
    with channel:
        ok = admin_pb2.CreateTopicRequest(name="orders.x", partitions=2)
        assert _code(lambda: stub.CreateTopic(ok, timeout=5)) == grpc.StatusCode.OK
        denied = grpc.StatusCode.PERMISSION_DENIED
        for name in ("payments.x", "", "orders*"):  # "" is default; "orders*" is no topic name
            request = admin_pb2.CreateTopicRequest(name=name)
            assert _code(lambda r=request: stub.CreateTopic(r, timeout=5)) == denied
        delete = admin_pb2.DeleteTopicRequest(name="payments")
        assert _code(lambda: stub.DeleteTopic(delete, timeout=5)) == denied
        describe = admin_pb2.DescribeTopicRequest(name="orders.eu")
        assert _code(lambda: stub.DescribeTopic(describe, timeout=5)) == denied  # needs consume
    assert admin.servicer.reached == [("CreateTopic", "orders.x")]


def test_list_topics_answers_only_the_topics_the_caller_may_consume(admin: AdminServer) -> None:
    channel, stub = admin.stub("billing")
    with channel:
        listed = stub.ListTopics(admin_pb2.ListTopicsRequest(), timeout=5)
        assert [t.name for t in listed.topics] == ["orders.eu", "orders.us"]
        described = stub.DescribeTopic(admin_pb2.DescribeTopicRequest(name="orders.us"), timeout=5)
        assert described.topic.name == "orders.us"
        payments = admin_pb2.DescribeTopicRequest(name="payments")
        assert (
            _code(lambda: stub.DescribeTopic(payments, timeout=5))
            == grpc.StatusCode.PERMISSION_DENIED
        )
        create = admin_pb2.CreateTopicRequest(name="orders.new")
        assert (
            _code(lambda: stub.CreateTopic(create, timeout=5)) == grpc.StatusCode.PERMISSION_DENIED
        )
    channel, stub = admin.stub("ops")
    with channel:
        listed = stub.ListTopics(admin_pb2.ListTopicsRequest(), timeout=5)
        assert tuple(t.name for t in listed.topics) == TOPICS
    channel, stub = admin.stub("topics-admin")  # admin, but no consume: lists nothing at all
    with channel:
        request = admin_pb2.ListTopicsRequest()
        assert (
            _code(lambda: stub.ListTopics(request, timeout=5)) == grpc.StatusCode.PERMISSION_DENIED
        )
