"""``Client`` (blocking) and ``AsyncClient`` (asyncio): the replog gRPC API from Python.

Both share the method table, request encoding, error mapping and retry policy of
``replog.client.core`` and the server choice of ``replog.client.picker``; only the waiting
differs. Every call takes ``timeout`` (seconds per attempt; the client's default when
omitted, None for no limit).

Leader-aware: the client is given one or more bootstrap addresses, learns the members from
``GetServers`` (refreshed every ``refresh_s`` and after a failure), sends produces to the
leader and spreads reads over the followers. A call that fails with UNAVAILABLE marks that
member as failed and is retried on another one when the retry policy allows it (reads
always; produces only when certainly not applied).

Partition-aware: a call for a partition of a topic other than ``default`` goes where that
partition lives (``replog.client.routes``): produces to its leader, reads to its replicas
in turn, learnt from ``DescribeTopic`` and refreshed after a failure; a keyed record's
partition is computed with Kafka's murmur2 once the topic's partition count is known.
Without routes (not yet fetched, or describing is not allowed) calls go as above, and the
server forwards a produce to the partition's leader.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from replog.client.admin import (
    DESCRIBE,
    AdminMethods,
    TopicDescription,
    topic_from,
)
from replog.client.base import (
    _CHANNEL_OPTIONS,
    _CONSUME,
    _DEFAULT,
    _PRODUCE,
    _REFRESH_TIMEOUT_S,
    ServerAddress,
    _members,
    _refresh_timeout,
    _servers,
    _stubs,
    _to_error,
    verifier_for,
)
from replog.client.batch_stream import BatchStream
from replog.client.core import (
    Batch,
    HeadersInput,
    Offset,
    RetryPolicy,
    ValueInput,
    check_offset,
    condition_fields,
    consume_batch_request,
    consume_request,
    encode_batch_request,
    encode_produce_request,
    encode_record,
    encode_values,
)
from replog.client.groups import GroupMethods
from replog.client.picker import DEFAULT_REFRESH_S
from replog.client.reads import ReadMethods
from replog.client.routes import merge_descriptions, merge_routes, needs_more
from replog.errors import (
    PermissionDeniedError,
)
from replog.v1 import admin_pb2, log_pb2
from replog.v1.record_pb2 import Record

__all__ = ["Client", "ServerAddress"]


class Client(ReadMethods, AdminMethods, GroupMethods):
    """A blocking client of a replog server or cluster. ``server`` is ``HOST:PORT``, several
    of them comma-separated or as a list (bootstrap addresses; default from ``REPLOG_SERVER``
    or 127.0.0.1:7400). Thread-safe; use as a context manager or ``close()`` it. Errors are
    replog errors (``OffsetOutOfRangeError``, ``UnavailableError``, ``PermissionDeniedError``,
    ...). Produces go to the leader, reads round-robin to followers (see the module docstring).

    TLS: ``ca`` (PEM file) verifies the server's certificate; ``cert`` and ``key`` (PEM
    files, together) identify this client to a server that requires mutual TLS. Giving any
    of them makes the connection TLS; none is plaintext. A ``Producer`` gets TLS through
    its client: ``Producer(Client(addr, ca=..., cert=..., key=...))``.

    ``verify_key`` (a verifier key, ``name+hash+key``): reads with ``verify=True`` prove each
    record in checkpoints it signed, trusted as in ``verify_state`` (``client.verify``)."""

    def __init__(
        self,
        server: str | Sequence[str] | None = None,
        *,
        timeout: float | None = 10.0,
        retry: RetryPolicy | None = None,
        ca: str | os.PathLike[str] | None = None,
        cert: str | os.PathLike[str] | None = None,
        key: str | os.PathLike[str] | None = None,
        refresh_s: float = DEFAULT_REFRESH_S,
        verify_key: str | None = None,
        verify_state: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(
            server, timeout=timeout, retry=retry, ca=ca, cert=cert, key=key, refresh_s=refresh_s
        )
        self._verifier = verifier_for(verify_key, verify_state)
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def _stub(self, addr: str, method: str) -> Any:
        stubs = self._conns.get(addr)
        if stubs is None:
            with self._lock:
                stubs = self._conns.get(addr)
                if stubs is None:
                    channel = (
                        grpc.insecure_channel(addr, options=_CHANNEL_OPTIONS)
                        if self._creds is None
                        else grpc.secure_channel(addr, self._creds, options=_CHANNEL_OPTIONS)
                    )
                    self._channels[addr] = channel
                    stubs = self._conns[addr] = _stubs(channel)
        return stubs[method]

    def _refresh(self, timeout: float | None) -> None:
        if self.picker.begin_refresh(time.monotonic()):
            self._refresh_begun(timeout)

    def _refresh_begun(self, timeout: float | None) -> None:
        """Ask the members for the view (``begin_refresh`` said it is due)."""
        picker = self.picker
        retry_after_s = 1.0
        try:
            for addr in picker.refresh_candidates():
                try:
                    response = self._stub(addr, "GetServers")(
                        log_pb2.GetServersRequest(), timeout=_refresh_timeout(timeout)
                    )
                except grpc.RpcError as exc:
                    if not self._ask_another(exc):
                        retry_after_s = picker.refresh_s  # e.g. not allowed to ask
                        break
                    continue
                picker.update(_members(response), time.monotonic(), asked=addr)
                return
        finally:
            if picker.refreshing:
                picker.refresh_failed(time.monotonic(), retry_after_s=retry_after_s)

    def _call(
        self,
        method: str,
        request: Any,
        *,
        idempotent: bool,
        timeout: Any,
        route: str = _CONSUME,
        topic: str = "",
        partition: int | None = None,
    ) -> Any:
        timeout = self.timeout if timeout is _DEFAULT else timeout
        delays = self.retry.delays()
        while True:
            self._refresh(timeout)
            if partition is not None and self._routes_due(topic):
                self._fetch_routes(topic)
            addr = self._pick(route, topic, partition)
            try:
                return self._stub(addr, method)(request, timeout=timeout)
            except grpc.RpcError as exc:
                delay = self._delay_after(
                    addr, exc, delays, idempotent=idempotent, topic=topic, partition=partition
                )
                time.sleep(delay)

    def _group_call(
        self, method: str, request: Any, group: str, *, idempotent: bool, timeout: Any
    ) -> Any:
        """One call of ``group``'s, to its coordinator (following the servers' hints)."""
        timeout = self.timeout if timeout is _DEFAULT else timeout
        delays = self.retry.delays()
        while True:
            self._refresh(timeout)
            addr = self._pick_coordinator(group)
            try:
                return self._stub(addr, method)(request, timeout=timeout)
            except grpc.RpcError as exc:
                delay = self._group_delay_after(group, addr, exc, delays, idempotent=idempotent)
                if delay:
                    time.sleep(delay)

    def _each_server(self, method: str, request: Any, timeout: Any) -> list[Any]:
        """``method``'s answer from every server of the cluster (an error if none answers)."""
        timeout = self.timeout if timeout is _DEFAULT else timeout
        self._refresh(timeout)
        answers, failure = [], None
        for addr in self._server_addresses():
            try:
                answers.append(self._stub(addr, method)(request, timeout=timeout))
            except grpc.RpcError as exc:
                failure = _to_error(exc)
        if failure is not None and not answers:
            raise failure
        return answers

    def _start_call(
        self, method: str, request: Any, *, timeout: float | None, topic: str, partition: int
    ) -> tuple[str, grpc.Future[Any]]:
        """Start one produce-routed call of ``method`` without waiting for it (no retry):
        the address it went to and its gRPC future (see ``_failed_call`` for its error).

        A periodic refresh of the view or of the topic's routes, while the leader is known,
        runs on a thread of its own: the caller (a producer's only sender) does not wait."""
        picker, now = self.picker, time.monotonic()
        leader = picker.leader
        if leader is None or picker.is_failed(leader):
            self._refresh(timeout)
        elif picker.begin_refresh(now):
            threading.Thread(target=self._refresh_begun, args=(timeout,), daemon=True).start()
        if self._routes_due(topic):
            if self.routes.leader(topic, partition, now):
                threading.Thread(target=self._fetch_routes, args=(topic,), daemon=True).start()
            else:
                self._fetch_routes(topic)
        addr = self._pick(_PRODUCE, topic, partition)
        return addr, self._stub(addr, method).future(request, timeout=timeout)

    def init_producer_id(self, *, timeout: float | None = _DEFAULT) -> tuple[int, int]:
        """A fresh ``(producer_id, producer_epoch)`` for idempotent produces (see
        ``Producer``); UnsupportedError from a server that does not hand them out."""
        response = self._call(
            "InitProducerId", log_pb2.InitProducerIdRequest(), idempotent=True, timeout=timeout
        )
        return int(response.producer_id), int(response.producer_epoch)

    def _fetch_routes(self, topic: str) -> None:
        """Learn ``topic``'s partition leaders and replicas (see ``replog.client.routes``)."""
        answers, denied = self._describe_answers(topic, stop_when_known=True)
        routes = merge_routes(answers, self._route_answers()[1]) if answers else []
        self.routes.update(topic, routes, time.monotonic(), hold=denied and not routes)

    def _describe_answers(
        self, topic: str, *, stop_when_known: bool
    ) -> tuple[list[tuple[str, TopicDescription]], bool]:
        """(node id, its description of ``topic``) from the servers in turn (the leader
        first; with ``stop_when_known``, until every partition's leader is known), and
        whether one refused for lack of permission."""
        asked, addresses = self._route_answers()
        names = {a: n for n, a in addresses.items()}
        answers: list[tuple[str, TopicDescription]] = []
        denied = False
        for addr in asked:
            try:
                response = self._stub(addr, DESCRIBE)(
                    admin_pb2.DescribeTopicRequest(name=topic), timeout=_REFRESH_TIMEOUT_S
                )
            except grpc.RpcError as exc:
                denied = denied or isinstance(_to_error(exc), PermissionDeniedError)
                continue
            answers.append((names.get(addr, addr), topic_from(response.topic)))
            if stop_when_known and not needs_more(merge_routes(answers, addresses)):
                break
        return answers, denied

    def _complete(self, description: TopicDescription) -> TopicDescription:
        """A description one node gave, completed by the others' for the partitions whose
        leader it does not know (a cluster node knows only the partitions it holds)."""
        if all(p.leader for p in description.partitions) or len(self.picker.members) < 2:
            return description
        answers, _ = self._describe_answers(description.name, stop_when_known=False)
        return merge_descriptions(answers) if answers else description

    def produce(
        self,
        value: ValueInput,
        key: bytes | None = None,
        headers: HeadersInput = None,
        *,
        topic: str = "",
        partition: int | None = None,
        timeout: float | None = _DEFAULT,
        expected_offset: int | None = None,
        expected_key_offset: int | None = None,
    ) -> Offset:
        """Append one record to ``topic`` (default: ``default``); return its offset (an
        ``Offset``: an int whose ``partition`` says where it went) once acknowledged.

        ``partition`` None: the server chooses by the key (Kafka's murmur2 partitioner),
        or a sticky partition for a record without one. UnknownTopicError and
        UnknownPartitionError when the topic or partition does not exist.
        ``expected_offset``: append only if the partition's next offset is this, else
        ExpectedOffsetError (its ``actual``); ``expected_key_offset``: only if the key's
        latest record is there (-1: none yet; the topic needs ``key_index=true``), else
        ExpectedKeyOffsetError. Nothing is appended when a condition fails.
        """
        request = encode_produce_request(
            encode_record(value, key, headers), topic, partition
        ) + condition_fields(expected_offset, expected_key_offset, batch=False)
        if key and partition is None and self._routes_due(topic):
            self._refresh(self.timeout if timeout is _DEFAULT else timeout)
            self._fetch_routes(topic)  # the partition count places the key
        response = self._call(
            "Produce",
            request,
            idempotent=False,
            timeout=timeout,
            route=_PRODUCE,
            topic=topic,
            partition=self._partition_of(topic, partition, key),
        )
        return self._acknowledged(response.offset, 1, topic, response.partition)

    def produce_batch(
        self,
        values: list[ValueInput] | tuple[ValueInput, ...],
        *,
        topic: str = "",
        partition: int | None = None,
        timeout: float | None = _DEFAULT,
        expected_offset: int | None = None,
        expected_key_offset: int | None = None,
    ) -> tuple[Offset, int]:
        """Append values atomically at contiguous offsets of one partition of ``topic``;
        return ``(base_offset, count)`` (``base_offset.partition`` is the partition).

        ``partition`` None: the partition of the records' keys (all keyed records must map
        to one, else InvalidArgumentError), or a sticky one when none has a key. The
        conditions are those of ``produce``, for the whole batch (``expected_key_offset``:
        every record carries the one key).
        """
        return self.produce_encoded(
            encode_values(values),
            topic=topic,
            partition=partition,
            timeout=timeout,
            expected_offset=expected_offset,
            expected_key_offset=expected_key_offset,
        )

    def produce_encoded(
        self,
        records: list[bytes],
        *,
        topic: str = "",
        partition: int | None = None,
        timeout: float | None = _DEFAULT,
        expected_offset: int | None = None,
        expected_key_offset: int | None = None,
    ) -> tuple[Offset, int]:
        """``produce_batch`` of already serialized Records (see ``core.encode_record``)."""
        request = encode_batch_request(records, topic, partition) + condition_fields(
            expected_offset, expected_key_offset, batch=True
        )
        response = self._call(
            "ProduceBatch",
            request,
            idempotent=False,
            timeout=timeout,
            route=_PRODUCE,
            topic=topic,
            partition=partition,
        )
        count = int(response.count)
        return self._acknowledged(response.base_offset, count, topic, response.partition), count

    def consume(
        self,
        offset: int,
        *,
        topic: str = "",
        partition: int = 0,
        min_offset: int | None = None,
        timeout: float | None = _DEFAULT,
        verify: bool = False,
    ) -> Record:
        """The record at ``offset`` of ``topic`` (default: ``default``) ``partition``;
        OffsetOutOfRangeError outside the partition's range.

        ``min_offset`` (read-your-writes): the server first waits until it has committed
        that offset, within the call's timeout. By default it is the last offset this
        client's own produces to that partition were acknowledged at; 0 reads without
        waiting. ``verify``: proven first (VerificationError naming the offset that is not;
        DeadlineExceededError if no checkpoint covers it within the timeout).
        """
        floor = self.picker.read_floor(min_offset, topic, partition)
        request = consume_request(offset, floor, topic, partition)
        method = self._read_method("Consume", verify)
        response = self._call(
            method, request, idempotent=True, timeout=timeout, topic=topic, partition=partition
        )
        return self._record_of(response, topic, partition, timeout)

    def consume_batch(
        self,
        offset: int,
        max_records: int = 1000,
        max_wait_ms: int = 0,
        *,
        max_bytes: int = 0,
        topic: str = "",
        partition: int = 0,
        min_offset: int | None = None,
        timeout: float | None = _DEFAULT,
        verify: bool = False,
    ) -> Batch:
        """Records from ``offset`` of ``topic`` ``partition`` (waiting up to ``max_wait_ms``
        at its end), once the server has committed ``min_offset`` (default: this client's
        last write to that partition); ``verify``: each proven first (see ``consume``)."""
        method = self._read_method("ConsumeBatch", verify)
        floor = self.picker.read_floor(min_offset, topic, partition)
        request = consume_batch_request(
            offset, max_records, max_bytes, max_wait_ms, floor, topic, partition
        )
        if timeout is _DEFAULT and self.timeout is not None:
            timeout = self.timeout + max_wait_ms / 1000
        response = self._call(
            method, request, idempotent=True, timeout=timeout, topic=topic, partition=partition
        )
        return self._batch_of(response, topic, partition, timeout)

    def stream_batches(
        self,
        offset: int,
        *,
        max_records: int = 0,
        topic: str = "",
        partition: int = 0,
        verify: bool = False,
    ) -> Iterator[Batch]:
        """Batches of records from ``offset`` of ``topic`` ``partition`` on, tailing new
        ones until closed; ``verify``: each record proven first (see ``consume``; the
        client's timeout bounds the wait for a checkpoint).

        A lost connection is re-established (with backoff) from the next offset.
        """
        method = self._read_method("ConsumeBatchStream", verify)
        return self._batches(check_offset(offset), max_records, topic, partition, method)

    def batch_stream(
        self, offset: int, *, max_records: int = 0, topic: str = "", partition: int = 0
    ) -> BatchStream:
        """One stream of batches from ``offset`` of ``topic`` ``partition`` on, tailing new
        ones, that any thread may ``cancel``; unlike ``stream_batches`` it does not
        reconnect: a failure is raised to the iterating thread."""
        request = consume_batch_request(
            check_offset(offset), max_records, 0, 0, 0, topic, partition
        )
        self._refresh(self.timeout)
        if self._routes_due(topic):
            self._fetch_routes(topic)
        addr = self._pick(_CONSUME, topic, partition)
        call = self._stub(addr, "ConsumeBatchStream")(request)
        return BatchStream(call, lambda exc: self._failed_call(addr, exc, topic, partition))

    def stream(
        self,
        offset: int,
        *,
        max_records: int = 0,
        topic: str = "",
        partition: int = 0,
        verify: bool = False,
    ) -> Iterator[Record]:
        """Records from ``offset`` of ``topic`` ``partition`` on, tailing new ones; stop by
        closing the iterator. ``verify``: as ``stream_batches``."""
        batches = self.stream_batches(
            offset, max_records=max_records, topic=topic, partition=partition, verify=verify
        )
        return (record for batch in batches for record in batch.records)

    def servers(self, *, timeout: float | None = _DEFAULT) -> list[ServerAddress]:
        """The cluster's servers (a single server reports itself as leader)."""
        response = self._call(
            "GetServers", log_pb2.GetServersRequest(), idempotent=True, timeout=timeout
        )
        return _servers(response)

    def close(self) -> None:
        """Close the connections. Idempotent."""
        with self._lock:
            channels, self._channels, self._conns = list(self._channels.values()), {}, {}
        for channel in channels:
            channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
