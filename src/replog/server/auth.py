"""Authentication and authorization at the edges: a gRPC interceptor and an HTTP middleware.

Both find the caller's identity in its verified client certificate and hand it, with the
action the call needs and the topic it addresses (``server/acl_objects.py``), to one
function: :meth:`Gatekeeper.check`. No identity (no certificate) is UNAUTHENTICATED / 401;
an identity the ACL does not grant is PERMISSION_DENIED / 403. A denied call never reaches
a handler, so it changes nothing; a ProduceStream message for a topic the caller may not
write ends the stream before anything of it is appended.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web

from replog.errors import PermissionDeniedError
from replog.security.acl import ANY_TOPIC, CLUSTER, Action, Authorizer
from replog.security.identity import subject_from_der, subject_from_grpc_auth
from replog.server.acl_objects import grpc_object, http_permission
from replog.v1.admin_pb2 import ListTopicsResponse

__all__ = [
    "ACCESS_KEY",
    "CURRENT_ACCESS",
    "GRPC_ACTIONS",
    "Access",
    "Decision",
    "Gatekeeper",
    "GrpcAuthInterceptor",
    "grpc_action",
    "http_action",
    "http_auth_middleware",
    "http_subject",
    "request_access",
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
    # An id for idempotent produces: whoever may produce to some topic (Kafka: Write on any).
    "/replog.v1.Log/InitProducerId": Action.PRODUCE,
    # Cluster: joining is what a node does (its identity holds ``replicate``); reading the
    # status is like GetServers / GET /v1/cluster; changing membership or leadership is admin.
    "/replog.v1.Cluster/Join": Action.REPLICATE,
    "/replog.v1.Cluster/Status": Action.CONSUME,
    "/replog.v1.Cluster/Remove": Action.ADMIN,
    "/replog.v1.Cluster/TransferLeader": Action.ADMIN,
    "/replog.v1.Cluster/Decommission": Action.ADMIN,
    "/replog.v1.Cluster/ReassignPartition": Action.ADMIN,
    # A partition leader tells the controller leader its move finished: node to node.
    "/replog.v1.Cluster/CompleteReassignment": Action.REPLICATE,
    # A node hands a topic change it authorised for its caller to the controller leader.
    "/replog.v1.Cluster/ProposeMetadata": Action.REPLICATE,
    # Admin: changing a topic is admin on it; reading topics is like reading records.
    "/replog.v1.Admin/CreateTopic": Action.ADMIN,
    "/replog.v1.Admin/DeleteTopic": Action.ADMIN,
    "/replog.v1.Admin/AlterTopicConfig": Action.ADMIN,
    "/replog.v1.Admin/CreatePartitions": Action.ADMIN,
    "/replog.v1.Admin/ListTopics": Action.CONSUME,
    "/replog.v1.Admin/DescribeTopic": Action.CONSUME,
    # Groups: ``consume`` on the group (``group:<name>``); the handler checks ``consume`` on
    # each topic a member subscribes to or commits. Deleting a group is admin on it.
    "/replog.v1.Groups/Heartbeat": Action.CONSUME,
    "/replog.v1.Groups/CommitOffsets": Action.CONSUME,
    "/replog.v1.Groups/FetchOffsets": Action.CONSUME,
    "/replog.v1.Groups/DescribeGroup": Action.CONSUME,
    "/replog.v1.Groups/ListGroups": Action.CONSUME,
    "/replog.v1.Groups/DeleteGroup": Action.ADMIN,
    # The verifiable log: reading checkpoints and proofs is like reading records.
    "/replog.v1.Tlog/GetCheckpoint": Action.CONSUME,
    "/replog.v1.Tlog/GetInclusionProof": Action.CONSUME,
    "/replog.v1.Tlog/GetConsistencyProof": Action.CONSUME,
    "/replog.v1.Tlog/GetRangeProof": Action.CONSUME,
}
#: Services anyone who completed the TLS handshake may call: probes and reflection.
_OPEN_GRPC_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
_OPEN_HTTP_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
#: Open paths whose answer depends on who asks: ``/metrics`` names topics and groups (their
#: series) only to a cluster admin when an ACL is on.
_FILTERED_HTTP_PATHS = frozenset({"/metrics"})
#: The web console's routes (static files that hold no data; the calls they make are checked).
_OPEN_HTTP_ROUTES = frozenset({"/ui", "/ui/", "/ui/{file}"})
#: Routes any identity may call, and only an identity: who the caller is, what it may do.
_IDENTITY_HTTP_ROUTES = frozenset({"/v1/whoami"})


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


def _denied(subject: str, action: Action, obj: str) -> str:
    if obj == CLUSTER:
        return f"{subject!r} may not {action.value}"
    if obj == ANY_TOPIC:
        return f"{subject!r} may not {action.value} any topic"
    return f"{subject!r} may not {action.value} topic {obj!r}"


class Gatekeeper:
    """Applies the ACL to identities. Without an ACL, every caller is allowed.

    ``authorizer`` is replaceable at run time (SIGHUP reloads it in place instead).
    """

    def __init__(self, authorizer: Authorizer | None) -> None:
        self.authorizer = authorizer

    def check(self, subject: str | None, action: Action, peer: str, obj: str = CLUSTER) -> Decision:
        """Decide whether ``subject`` may do ``action`` on ``obj`` (a topic name, CLUSTER or
        ANY_TOPIC); log every denial."""
        if self.authorizer is None:
            return Decision(True)
        if subject is None:
            log.warning("denied: no client identity, action=%s peer=%s", action, peer)
            return Decision(False, 401, "a client certificate is required")
        if self.authorizer.allowed(subject, action, obj):
            return Decision(True)
        log.warning("denied: subject=%s action=%s peer=%s object=%s", subject, action, peer, obj)
        return Decision(False, 403, _denied(subject, action, obj))


class Access:
    """One authenticated caller's permissions, for a handler that learns the topic only
    from the request body (creating a topic) or filters what it answers (listing topics)."""

    def __init__(self, gate: Gatekeeper, subject: str | None, peer: str) -> None:
        self._gate = gate
        self._subject = subject
        self._peer = peer

    @property
    def subject(self) -> str | None:
        """The caller's identity (None: no certificate)."""
        return self._subject

    def may(self, action: Action, obj: str) -> bool:
        """Whether the caller may do ``action`` on ``obj`` (no log: for filtering)."""
        authorizer = self._gate.authorizer
        if authorizer is None:
            return True
        return self._subject is not None and authorizer.allowed(self._subject, action, obj)

    def require(self, action: Action, obj: str) -> None:
        """Raise PermissionDeniedError unless the caller may do ``action`` on ``obj``."""
        decision = self._gate.check(self._subject, action, self._peer, obj)
        if not decision.allowed:
            raise PermissionDeniedError(decision.message)


#: The caller's :class:`Access` while a unary gRPC handler runs (None without an ACL).
CURRENT_ACCESS: ContextVar[Access | None] = ContextVar("replog_access", default=None)

#: Where the HTTP middleware leaves the caller's :class:`Access` for the handler.
ACCESS_KEY = web.RequestKey("replog_access", Access)


def _grpc_code(decision: Decision) -> grpc.StatusCode:
    if decision.status == 401:
        return grpc.StatusCode.UNAUTHENTICATED
    return grpc.StatusCode.PERMISSION_DENIED


def _visible_topics(response: Any, access: Access) -> Any:
    """A ListTopics answer without the topics the caller may not consume."""
    message = ListTopicsResponse.FromString(response) if isinstance(response, bytes) else response
    if not isinstance(message, ListTopicsResponse):
        return response
    kept = [t for t in message.topics if access.may(Action.CONSUME, t.name)]
    if len(kept) == len(message.topics):
        return response
    filtered = ListTopicsResponse(topics=kept)
    return filtered.SerializeToString() if isinstance(response, bytes) else filtered


def _wrap_behavior(
    behavior: Callable[..., Any],
    gate: Gatekeeper,
    method: str,
    action: Action,
    kind: str,
) -> Callable[..., Any]:
    """``behavior`` behind the check of ``action`` on the topic its request names. ``kind``
    is how the call streams: "unary", "stream" (server streaming) or "requests" (a request
    stream: each message's topic is checked as it arrives, see ``_checked_messages``)."""

    async def check(context: grpc.aio.ServicerContext[Any, Any], obj: str) -> Access:
        subject = subject_from_grpc_auth(context.auth_context())
        decision = gate.check(subject, action, context.peer(), obj)
        if not decision.allowed:
            await context.abort(_grpc_code(decision), decision.message)
        return Access(gate, subject, context.peer())

    if kind == "requests":

        async def requests_behavior(requests: Any, context: Any) -> Any:
            access = await check(context, ANY_TOPIC)
            checked = _checked_messages(requests, method, action, access)
            try:
                async for item in behavior(checked, context):
                    yield item
            except PermissionDeniedError as exc:  # a handler that did not map it itself
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))

        return requests_behavior

    if kind == "requests-unary":

        async def requests_unary_behavior(requests: Any, context: Any) -> Any:
            access = await check(context, ANY_TOPIC)
            checked = _checked_messages(requests, method, action, access)
            try:
                return await behavior(checked, context)
            except PermissionDeniedError as exc:  # a handler that did not map it itself
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))

        return requests_unary_behavior

    if kind == "stream":

        async def stream_behavior(request: Any, context: Any) -> Any:
            await check(context, grpc_object(method, request))
            async for item in behavior(request, context):
                yield item

        return stream_behavior

    async def unary_behavior(request: Any, context: Any) -> Any:
        access = await check(context, grpc_object(method, request))
        CURRENT_ACCESS.set(access)  # for a handler that checks more objects (groups' topics)
        response = await behavior(request, context)
        if method == "/replog.v1.Admin/ListTopics":
            response = _visible_topics(response, access)
        return response

    return unary_behavior


async def _checked_messages(
    requests: AsyncIterator[Any], method: str, action: Action, access: Access
) -> AsyncIterator[Any]:
    """The messages of a request stream, each one checked before the handler sees it.

    The first refused one raises PermissionDeniedError where the handler reads its next
    message: it answers the messages before it and ends the call with PERMISSION_DENIED,
    and nothing of the refused message is appended.
    """
    async for message in requests:
        access.require(action, grpc_object(method, message))
        yield message


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
        gate, method = self._gate, details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_behavior(handler.unary_unary, gate, method, action, "unary"),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_behavior(handler.unary_stream, gate, method, action, "stream"),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_behavior(handler.stream_unary, gate, method, action, "requests-unary"),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            _wrap_behavior(handler.stream_stream, gate, method, action, "requests"),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def http_action(request: web.Request) -> tuple[Action, str] | None:
    """The (action, object) an HTTP request needs (None for probes, metrics and the API
    document, the web console's files and ``/v1/whoami``): see ``acl_objects.http_permission``."""
    route = _route(request)
    if request.path in _OPEN_HTTP_PATHS or route in _OPEN_HTTP_ROUTES:
        return None
    if route in _IDENTITY_HTTP_ROUTES:
        return None
    return http_permission(request.method, route, request.match_info.get("name"))


def _route(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


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
        needs = http_action(request)
        identity_only = needs is None and _route(request) in _IDENTITY_HTTP_ROUTES
        if (needs is not None or identity_only) and gate.authorizer is not None:
            subject, peer = http_subject(request), _http_peer(request)
            if needs is not None:
                decision = gate.check(subject, needs[0], peer, needs[1])
            else:
                decision = Decision(subject is not None, 401, "a client certificate is required")
            if not decision.allowed:
                code = "UNAUTHENTICATED" if decision.status == 401 else "PERMISSION_DENIED"
                return error_response(decision.status, code, decision.message)
            request[ACCESS_KEY] = Access(gate, subject, peer)
        elif gate.authorizer is not None and request.path in _FILTERED_HTTP_PATHS:
            request[ACCESS_KEY] = Access(gate, http_subject(request), _http_peer(request))
        return await handler(request)

    return middleware


def request_access(request: web.Request) -> Access | None:
    """The caller's permissions the auth middleware left on ``request`` (None: no ACL)."""
    return request.get(ACCESS_KEY)
