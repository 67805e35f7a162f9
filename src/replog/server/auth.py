"""Authentication and authorization at the edges: a gRPC interceptor and an HTTP middleware.

Both find the caller's identity in its verified client certificate and hand it, with the
action the call needs, to one function: :meth:`Gatekeeper.check`. No identity (no
certificate) is UNAUTHENTICATED / 401; an identity the ACL does not grant is
PERMISSION_DENIED / 403. A denied call never reaches a handler, so it changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web

from replog.security.acl import Action, Authorizer
from replog.security.identity import subject_from_der, subject_from_grpc_auth

__all__ = [
    "GRPC_ACTIONS",
    "Decision",
    "Gatekeeper",
    "GrpcAuthInterceptor",
    "grpc_action",
    "http_action",
    "http_auth_middleware",
]

log = logging.getLogger("replog.security")

#: The action each gRPC method of the Log and Cluster services needs (see :func:`grpc_action`).
GRPC_ACTIONS: Mapping[str, Action] = {
    "/replog.v1.Log/Produce": Action.PRODUCE,
    "/replog.v1.Log/ProduceBatch": Action.PRODUCE,
    "/replog.v1.Log/ProduceStream": Action.PRODUCE,
    "/replog.v1.Log/Consume": Action.CONSUME,
    "/replog.v1.Log/ConsumeBatch": Action.CONSUME,
    "/replog.v1.Log/ConsumeStream": Action.CONSUME,
    "/replog.v1.Log/ConsumeBatchStream": Action.CONSUME,
    "/replog.v1.Log/GetServers": Action.CONSUME,
    # Cluster: joining is what a node does (its identity holds ``replicate``); reading the
    # status is like GetServers / GET /v1/cluster; changing membership or leadership is admin.
    "/replog.v1.Cluster/Join": Action.REPLICATE,
    "/replog.v1.Cluster/Status": Action.CONSUME,
    "/replog.v1.Cluster/Remove": Action.ADMIN,
    "/replog.v1.Cluster/TransferLeader": Action.ADMIN,
    # Admin: changing topics is admin; reading their descriptions is like GetServers.
    "/replog.v1.Admin/CreateTopic": Action.ADMIN,
    "/replog.v1.Admin/DeleteTopic": Action.ADMIN,
    "/replog.v1.Admin/AlterTopicConfig": Action.ADMIN,
    "/replog.v1.Admin/CreatePartitions": Action.ADMIN,
    "/replog.v1.Admin/ListTopics": Action.CONSUME,
    "/replog.v1.Admin/DescribeTopic": Action.CONSUME,
}
#: Services anyone who completed the TLS handshake may call: probes and reflection.
_OPEN_GRPC_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
_OPEN_HTTP_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})


def grpc_action(method: str) -> Action | None:
    """The action a gRPC method needs; None for health and reflection.

    Default deny: a method no table knows (a service added later) needs ``admin``; node-to-node
    Raft traffic (``Stream``, ``InstallSnapshot`` and ``Forward``, the produce a follower
    forwards to the leader) needs ``replicate``.
    """
    if method.startswith(_OPEN_GRPC_SERVICES):
        return None
    action = GRPC_ACTIONS.get(method)
    if action is not None:
        return action
    if method.startswith("/replog.v1.Raft/"):
        return Action.REPLICATE
    return Action.ADMIN


@dataclass(frozen=True)
class Decision:
    """The outcome of a check: allowed, or why not (``status`` is 401 or 403)."""

    allowed: bool
    status: int = 200
    message: str = ""


class Gatekeeper:
    """Applies the ACL to identities. Without an ACL, every caller is allowed.

    ``authorizer`` is replaceable at run time (SIGHUP reloads it in place instead).
    """

    def __init__(self, authorizer: Authorizer | None) -> None:
        self.authorizer = authorizer

    def check(self, subject: str | None, action: Action, peer: str) -> Decision:
        """Decide whether ``subject`` may do ``action``; log every denial."""
        if self.authorizer is None:
            return Decision(True)
        if subject is None:
            log.warning("denied: no client identity, action=%s peer=%s", action, peer)
            return Decision(False, 401, "a client certificate is required")
        if self.authorizer.allowed(subject, action):
            return Decision(True)
        log.warning("denied: subject=%s action=%s peer=%s", subject, action, peer)
        return Decision(False, 403, f"{subject!r} may not {action.value}")


def _wrap_behavior(
    behavior: Callable[..., Any], gate: Gatekeeper, action: Action, streaming_response: bool
) -> Callable[..., Any]:
    async def check(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        subject = subject_from_grpc_auth(context.auth_context())
        decision = gate.check(subject, action, context.peer())
        if not decision.allowed:
            code = (
                grpc.StatusCode.UNAUTHENTICATED
                if decision.status == 401
                else grpc.StatusCode.PERMISSION_DENIED
            )
            await context.abort(code, decision.message)

    if streaming_response:

        async def stream_behavior(request: Any, context: Any) -> Any:
            await check(context)
            async for item in behavior(request, context):
                yield item

        return stream_behavior

    async def unary_behavior(request: Any, context: Any) -> Any:
        await check(context)
        return await behavior(request, context)

    return unary_behavior


class GrpcAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Checks each call's identity and permission before its handler runs."""

    def __init__(self, gate: Gatekeeper) -> None:
        self._gate = gate

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wrap the handler of a guarded method in the permission check."""
        handler = await continuation(details)
        action = grpc_action(details.method)
        if handler is None or action is None or self._gate.authorizer is None:
            return handler
        gate = self._gate
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_behavior(handler.unary_unary, gate, action, False),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_behavior(handler.unary_stream, gate, action, True),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_behavior(handler.stream_unary, gate, action, False),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            _wrap_behavior(handler.stream_stream, gate, action, True),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def http_action(method: str, path: str) -> Action | None:
    """The action an HTTP request needs (None for probes, metrics and the API document)."""
    if path in _OPEN_HTTP_PATHS:
        return None
    if path.startswith("/v1/records"):
        return Action.PRODUCE if method == "POST" else Action.CONSUME
    if path.startswith("/v1/cluster") and method != "GET":
        return Action.ADMIN
    return Action.CONSUME


def http_subject(request: web.Request) -> str | None:
    """The subject of the verified client certificate on this request's connection."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    return subject_from_der(ssl_object.getpeercert(binary_form=True))


def _http_peer(request: web.Request) -> str:
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peername, tuple) and len(peername) >= 2:
        return f"{peername[0]}:{peername[1]}"
    return str(request.remote)


def http_auth_middleware(
    gate: Gatekeeper,
    error_response: Callable[[int, str, str], web.StreamResponse],
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """An aiohttp middleware that answers 401/403 (via ``error_response``) before the handler."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        action = http_action(request.method, request.path)
        if action is not None and gate.authorizer is not None:
            decision = gate.check(http_subject(request), action, _http_peer(request))
            if not decision.allowed:
                code = "UNAUTHENTICATED" if decision.status == 401 else "PERMISSION_DENIED"
                return error_response(decision.status, code, decision.message)
        return await handler(request)

    return middleware
